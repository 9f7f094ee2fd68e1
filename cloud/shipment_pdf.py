"""The shipment record as a PDF (fpdf2): route and goods, the journey's chart for all its sensors against the band,
the totals (time out of range, MKT, completeness), one row per sensor, the excursions, the gaps and the alerts with
their resolution. Text in the same CJK-covering font as the sensor report (cloud/report_pdf.py)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from cloud.report_pdf import _BREAK_FACTOR, _draw_run, _duration, _fmt, _row, _Text, _thin, _utc
from cloud.services.shipment_record import ShipmentRecord

_CHART_W: Final = 180.0
_CHART_H: Final = 75.0
# line colours for the sensors (cycled), distinguishable in print
_COLOURS: Final = ((26, 95, 180), (200, 80, 20), (30, 140, 60), (150, 40, 160), (120, 90, 30), (0, 130, 140),
                   (220, 40, 90), (90, 90, 90))


def _chart(pdf: FPDF, t: _Text, record: ShipmentRecord) -> None:
    x0, y0 = pdf.l_margin, pdf.get_y()
    band = record.band
    values = [v for p in record.sensors for _, v in p.points]
    values += [b for b in ((band.low_c, band.high_c) if band else ()) if b is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.5, (high - low) * 0.08)
    low, high = low - pad, high + pad
    span_t = max(1, record.end - record.start)

    def px(ts: int) -> float:
        return x0 + (ts - record.start) / span_t * _CHART_W

    def py(v: float) -> float:
        return y0 + _CHART_H - (v - low) / (high - low) * _CHART_H

    pdf.set_draw_color(160, 160, 160)
    pdf.set_line_width(0.2)
    pdf.rect(x0, y0, _CHART_W, _CHART_H)
    if band is not None:
        top = py(min(high, band.high_c)) if band.high_c is not None else y0
        bottom = py(max(low, band.low_c)) if band.low_c is not None else y0 + _CHART_H
        if bottom > top:
            pdf.set_fill_color(214, 240, 220)
            pdf.rect(x0, top, _CHART_W, bottom - top, style="F")
    t.font(7)
    pdf.set_text_color(90, 90, 90)
    for i in range(5):
        v = low + (high - low) * i / 4
        pdf.text(x0 - 9, py(v) + 1, f"{v:.1f}")
    for i in range(5):
        ts = record.start + span_t * i // 4
        pdf.text(min(px(ts), x0 + _CHART_W - 22), y0 + _CHART_H + 4, _utc(ts)[5:16])
    pdf.set_line_width(0.35)
    for n, part in enumerate(record.sensors):
        pdf.set_draw_color(*_COLOURS[n % len(_COLOURS)])
        thinned = _thin(part.points)
        steps = sorted(b[0] - a[0] for a, b in pairwise(thinned))
        step = max(60_000, steps[len(steps) // 2]) if steps else 60_000
        run: list[tuple[float, float]] = []
        previous: int | None = None
        for ts, v in thinned:
            if previous is not None and ts - previous > _BREAK_FACTOR * step:
                _draw_run(pdf, run)
                run = []
            run.append((px(ts), py(v)))
            previous = ts
        _draw_run(pdf, run)
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(y0 + _CHART_H + 7)


def _legend(pdf: FPDF, t: _Text, record: ShipmentRecord) -> None:
    t.font(7)
    for n, part in enumerate(record.sensors):
        pdf.set_fill_color(*_COLOURS[n % len(_COLOURS)])
        pdf.rect(pdf.get_x(), pdf.get_y() + 1.2, 3, 1.6, style="F")
        pdf.set_x(pdf.get_x() + 4)
        name = part.sensor + (f" {part.label}" if part.label else "")
        pdf.cell(min(85.0, pdf.get_string_width(t(name)) + 6), 4, t(name))
        if n % 2 == 1:
            pdf.ln(4)
    pdf.ln(5)


def _heading(t: _Text, text: str) -> None:
    t.pdf.ln(3)
    t.font(11, bold=True)
    t.pdf.cell(0, 7, t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _table(t: _Text, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float],
           empty: str) -> None:
    _row(t, header, widths, bold=True)
    if not rows:
        _row(t, (empty, *[""] * (len(widths) - 1)), widths)
    for row in rows:
        _row(t, row, widths)


def shipment_pdf(record: ShipmentRecord, *, public_key_url: str | None = None) -> bytes:
    """The record's PDF; `public_key_url` (where the records key is published) is printed for the receiver."""
    s = record.shipment
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    pdf.set_title(f"coldwatch shipment record {s.reference}")
    pdf.set_creator("coldwatch")
    t = _Text(pdf)
    t.font(15, bold=True)
    pdf.cell(0, 8, t(f"Shipment record {s.reference}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    t.font(9)
    route = f"{s.origin or '?'} -> {s.destination or '?'}"
    band = record.band
    band_text = "no band" if band is None else (
        f"{_fmt(band.low_c, ' °C', 1) if band.low_c is not None else 'no lower limit'} .. "
        f"{_fmt(band.high_c, ' °C', 1) if band.high_c is not None else 'no upper limit'}"
        + (" (the shipment's own limits)" if s.temp_low_c is not None or s.temp_high_c is not None
           else f" ({s.profile})"))
    for line in (f"{route}    customer {s.customer or '-'}    goods {s.product or '-'}",
                 f"{_utc(record.start)} to {_utc(record.end)}    state {s.state}    band {band_text}"):
        pdf.cell(0, 5, t(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    _chart(pdf, t, record)
    _legend(pdf, t, record)
    rows = [("Sensors / gateways", f"{len(record.sensors)} / {len(record.gateways)}"),
            ("Readings", str(record.readings)), ("Missing (gaps and silence)", str(record.missing)),
            ("Completeness", _fmt(record.completeness_pct, " %", 2)),
            ("Min / max", f"{_fmt(record.min_c, ' °C')} / {_fmt(record.max_c, ' °C')}"),
            ("Mean kinetic temperature (warmest sensor)", _fmt(record.mkt_c, " °C")),
            ("Time out of range", _duration(record.time_out_of_band_s)),
            ("Excursions / alerts", f"{record.excursions} / {len(record.alerts)}")]
    for name, value in rows:
        _row(t, (name, value), (80, 100))
    _heading(t, "Sensors")
    _table(t, ("sensor", "readings", "complete", "min / max", "MKT", "out of range"),
           [(p.sensor + (f" {p.label}" if p.label else ""), str(p.report.readings),
             _fmt(p.report.completeness_pct, " %", 1),
             f"{_fmt(p.report.min_c, '', 1)} / {_fmt(p.report.max_c, '', 1)}", _fmt(p.report.mkt_c, " °C", 1),
             _duration(p.report.time_out_of_band_s)) for p in record.sensors],
           (58, 22, 22, 30, 22, 26), "no sensor assigned")
    _heading(t, "Excursions")
    _table(t, ("sensor", "start", "end", "peak", "duration"),
           [(p.sensor, _utc(e.start), _utc(e.end), _fmt(e.peak_c, " °C"), _duration(e.duration_s))
            for p in record.sensors for e in p.report.excursions], (40, 45, 45, 25, 25), "none")
    _heading(t, "Gaps (no data received)")
    _table(t, ("sensor", "after", "before"),
           [(p.sensor, _utc(a), _utc(b)) for p in record.sensors for a, b in p.gaps], (50, 65, 65), "none")
    _heading(t, "Alerts")
    _table(t, ("started", "sensor", "what", "resolution"),
           [(_utc(a.started_at), a.sensor_id or a.gateway_id, a.kind.replace("_", " "),
             f"{a.status}" + (f": {a.resolution}" if a.resolution else "")) for a in record.alerts],
           (40, 40, 55, 45), "none")
    pdf.ln(4)
    t.font(7)
    note = (f"Generated {_utc(record.generated_at)} by coldwatch. This file is signed with Ed25519 (detached "
            "signature, .sig)")
    note += f"; the public key: {public_key_url}" if public_key_url else ""
    pdf.multi_cell(0, 3.5, t(note + "."))
    return bytes(pdf.output())
