"""A site with a habit the simulator does not know (loading: a short +3 °C bump, three times a day) and two real
incidents (a door left open), as readings in InfluxDB and alerts in SQL: the retraining test's and bench's data."""

from __future__ import annotations

from typing import Literal

import numpy as np

from models.training.data import Series, series_of

LOADING = 15 * 60_000


Window = tuple[str, int, int, str]  # sensor, start ms, end ms, resolution code


def site_data(t0_ms: int, *, seed: int = 3, rooms: int = 4, days: float = 2.0) -> tuple[list[Series], list[Window]]:
    """`rooms` chilled rooms over `days` with the site's own habit the simulator does not know (loading: +3 °C
    for 15 min, three times a day), plus two rooms whose door was left open (real incidents)."""
    from firmware_sim.scenarios import generate, normal

    rng = np.random.default_rng(seed)
    out: list[Series] = []
    windows: list[Window] = []
    plain = normal("chilled", seed, sensors=rooms, days=days, start_ms=t0_ms)
    for i, s in enumerate(series_of(plain)):
        temp = s.temp_c.copy()
        mac = f"c2:00:00:00:10:{i:02x}"
        busy = [(lab.start_ms - 3_600_000, lab.end_ms + 3_600_000) for lab in plain.labels if lab.sensor == s.sensor]
        starts: list[float] = []
        for _ in range(10_000):  # three a day, apart from the simulator's own defrosts and door openings
            if len(starts) == round(3 * days):
                break
            start = t0_ms + float(rng.uniform(4, 24 * days - 2)) * 3_600_000
            if all(not (lo <= t <= hi) for lo, hi in busy for t in (start, start + LOADING + 1_200_000)) and all(
                    abs(start - other) > 3 * 3_600_000 for other in starts):
                starts.append(start)
        for start in sorted(starts):
            rise = np.clip((s.ts_ms - start) / 600_000, 0, 1) * np.clip((start + LOADING - s.ts_ms) / 600_000 + 1, 0, 1)
            temp = temp + 3.0 * rise  # up over 10 min, 15 min at +3 °C, down over 10 min
            windows.append((mac, int(start), int(start + LOADING), "loading"))
        out.append(Series(mac, "chilled", s.ts_ms, temp, s.rh_pct, s.battery_mv))
    for j, incident_seed in enumerate((11, 12)):
        data = generate("door_left_open", incident_seed, days=days, start_ms=t0_ms)
        s = next(iter(series_of(data)))
        mac = f"c2:00:00:00:11:{j:02x}"
        out.append(Series(mac, "chilled", s.ts_ms, s.temp_c, s.rh_pct, s.battery_mv))
        windows += [(mac, lab.start_ms, lab.end_ms, "real_excursion") for lab in data.labels
                    if lab.sensor == s.sensor and not lab.benign]
    return out, windows


def store_site(series: list[Series], windows: list[Window], *, influx_url: str, influx_db: str,
               database_url: str) -> list[str]:
    """Readings into InfluxDB, sensors and alerts into SQL as ingest would; returns the alert ids."""
    from cloud.db.engine import make_engine
    from cloud.ingest.sql_sink import SqlSink, event_work, telemetry_work
    from cloud.tsdb.influx import InfluxClient
    from cloud.tsdb.lineprotocol import readings_lines
    from protocol.messages import AlertEvent, Reading, TelemetryBatch, alert_id

    with InfluxClient(url=influx_url, database=influx_db) as influx:
        influx.ensure_database(create=True)
        for s in series:
            readings = [Reading(sensor=s.sensor, ts=int(t), profile="chilled", temp_c=round(float(c), 2),
                                rh_pct=None if np.isnan(h) else round(float(h), 1),
                                battery_mv=None if np.isnan(b) else int(b))
                        for t, c, h, b in zip(s.ts_ms, s.temp_c, s.rh_pct, s.battery_mv, strict=True)
                        if not np.isnan(c)]
            lines = readings_lines("site1", readings).lines
            for k in range(0, len(lines), 5000):
                influx.write(lines[k:k + 5000])
    engine = make_engine(database_url)
    work = [telemetry_work(TelemetryBatch(gateway="site1", seq=n + 1, sent_at=int(s.ts_ms[-1]), readings=[
        Reading(sensor=s.sensor, ts=int(s.ts_ms[0]), profile="chilled", temp_c=3.0),
        Reading(sensor=s.sensor, ts=int(s.ts_ms[-1]), profile="chilled", temp_c=3.0)]))
        for n, s in enumerate(series)]
    ids = []
    for n, (mac, start, end, code) in enumerate(windows):
        aid = alert_id("site1", mac, "anomaly", start)
        ids.append(aid)
        steps: tuple[tuple[int, Literal["open", "clear"], int], ...] = ((2 * n + 1, "open", start),
                                                                        (2 * n + 2, "clear", end))
        for seq, state, at in steps:
            work.append(event_work(AlertEvent(
                id=aid, gateway="site1", seq=seq, sensor=mac, kind="anomaly", severity="warning", state=state,
                source="model", started_at=start, updated_at=at, ended_at=end if state == "clear" else None,
                reason=code)))
    SqlSink(engine).apply(work)
    engine.dispose()
    return ids
