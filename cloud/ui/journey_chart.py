"""A shipment's journey as an inline SVG drawn on the server: every sensor's per-minute means against the band, gaps
left open. No script needed, so the receiver's read-only page shows it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Final

from cloud.services.shipment_record import ShipmentRecord

WIDTH: Final = 900
HEIGHT: Final = 300
LEFT: Final = 48
BOTTOM: Final = 24
MAX_POINTS: Final = 900  # per sensor
COLOURS: Final = ("#1a5fb4", "#c8501a", "#1e8c3c", "#9628a0", "#785a1e", "#00828c", "#dc285a", "#5a5a5a")


@dataclass
class Line:
    """One sensor's polyline segments (SVG `points` strings) and its colour."""

    sensor: str
    label: str | None
    colour: str
    segments: list[str] = field(default_factory=list)


@dataclass
class JourneyChart:
    """What the template draws."""

    width: int
    height: int
    lines: list[Line]
    band_y: tuple[float, float] | None  # top, bottom of the band's shading
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    empty: bool


def _dash(point: str) -> str:
    x, y = (float(v) for v in point.split(","))
    return f"{x - 2},{y} {x + 2},{y}"


def journey_chart(record: ShipmentRecord) -> JourneyChart:
    """The chart of `record` in SVG coordinates."""
    band = record.band
    values = [v for p in record.sensors for _, v in p.points]
    bounds = [b for b in ((band.low_c, band.high_c) if band else ()) if b is not None]
    low, high = (min(values + bounds), max(values + bounds)) if values or bounds else (0.0, 1.0)
    pad = max(0.5, (high - low) * 0.08)
    low, high = low - pad, high + pad
    span = max(1, record.end - record.start)
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - 8

    def x(ts: int) -> float:
        return round(LEFT + (ts - record.start) / span * plot_w, 1)

    def y(v: float) -> float:
        return round(8 + plot_h - (v - low) / (high - low) * plot_h, 1)

    lines = []
    for n, part in enumerate(record.sensors):
        stride = max(1, -(-len(part.points) // MAX_POINTS))
        points = part.points[::stride]
        steps = sorted(b[0] - a[0] for a, b in pairwise(points))
        step = max(60_000, steps[len(steps) // 2]) if steps else 60_000
        line = Line(part.sensor, part.label, COLOURS[n % len(COLOURS)])
        run: list[str] = []
        previous: int | None = None
        for ts, v in points:
            if previous is not None and ts - previous > 3 * step and run:
                line.segments.append(" ".join(run))
                run = []
            run.append(f"{x(ts)},{y(v)}")
            previous = ts
        if run:
            line.segments.append(" ".join(run))
        # a lone point (a minute between gaps) is drawn as a short dash, else it would not show
        line.segments = [seg if " " in seg else _dash(seg) for seg in line.segments]
        lines.append(line)
    band_y = None
    if band is not None:
        top = y(min(high, band.high_c)) if band.high_c is not None else 8.0
        bottom = y(max(low, band.low_c)) if band.low_c is not None else 8.0 + plot_h
        band_y = (top, bottom) if bottom > top else None
    y_ticks = [(y(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.1f}") for i in range(5)]
    x_ticks = []
    for i in range(5):
        ts = record.start + span * i // 4
        x_ticks.append((x(ts), datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%m-%d %H:%M")))
    return JourneyChart(WIDTH, HEIGHT, lines, band_y, y_ticks, x_ticks, empty=not values)
