"""The site board's data: per site (a gateway's `site`), every cold space (a sensor's `asset`, else its label or
id) as a tile: its current temperature against its band, the trend over the last quarter hour, its open alerts, and
the health of its gateway and tags (silent, low battery)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlmodel import Session, col, select

from cloud.db.alerts import Alert
from cloud.db.fleet import Gateway, Sensor
from cloud.services.clock import now_ms
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.series import bucket_means, latest_by_sensor
from protocol.profiles import PROFILES, Profile

TREND_SPAN_MS: Final = 15 * 60_000
TREND_BUCKET_MS: Final = 5 * 60_000
TREND_EPS_C: Final = 0.3  # a change smaller than this over the trend span is "steady"
TAG_SILENT_MS: Final = 10 * 60_000
GATEWAY_SILENT_MS: Final = 15 * 60_000
BATTERY_LOW_MV: Final = 2500
LATEST_SPAN_MS: Final = 2 * 86_400_000


@dataclass
class TagState:
    """One tag of a space."""

    sensor: str
    temp_c: float | None
    battery_mv: float | None
    silent: bool
    low_battery: bool


@dataclass
class Tile:
    """One cold space."""

    space: str
    profile: str | None
    band: Profile | None
    temp_c: float | None  # the reading furthest from the setpoint among its tags
    trend: str  # rising | falling | steady | unknown
    state: str  # ok | out | alert | silent | unknown
    open_alerts: int
    gateways: list[str]
    gateway_silent: bool
    tags: list[TagState] = field(default_factory=list)
    first_sensor: str = ""

    @property
    def healthy(self) -> bool:
        """Gateway heard, every tag heard, no battery low."""
        return not self.gateway_silent and not any(t.silent or t.low_battery for t in self.tags)


def site_names(session: Session) -> list[str]:
    """Every site a gateway is placed at, sorted."""
    return sorted({s for s in session.exec(select(Gateway.site).where(col(Gateway.site).is_not(None))).all() if s})


def _trend(points: Sequence[tuple[int, float]]) -> str:
    if len(points) < 2:
        return "unknown"
    change = points[-1][1] - points[0][1]
    return "rising" if change > TREND_EPS_C else "falling" if change < -TREND_EPS_C else "steady"


def board(session: Session, influx: InfluxClient | None, *, site: str, now: int | None = None) -> list[Tile]:
    """The site's tiles, sorted by how much they need attention (alerts and excursions first), then by name.
    Without `influx` (it did not answer) temperatures and trends are unknown."""
    now = now if now is not None else now_ms()
    gateways = {g.id: g for g in session.exec(select(Gateway).where(Gateway.site == site)).all()}
    sensors = session.exec(select(Sensor).where(col(Sensor.gateway_id).in_(list(gateways)))
                           .order_by(col(Sensor.id))).all() if gateways else []
    ids = [s.id for s in sensors]
    latest = latest_by_sensor(influx, since_ms=now - LATEST_SPAN_MS) if influx is not None and ids else {}
    trends = bucket_means(influx, sensors=ids, since_ms=now - TREND_SPAN_MS,
                          bucket_ms=TREND_BUCKET_MS) if influx is not None else {}
    open_alerts = session.exec(select(Alert).where(col(Alert.gateway_id).in_(list(gateways)),
                                                   Alert.status != "resolved", Alert.device_state != "clear")).all()
    silent_gateways = {a.gateway_id for a in open_alerts if a.kind == "gateway_silent"}
    silent_gateways |= {g.id for g in gateways.values()
                        if g.last_heard_at is None or now - g.last_heard_at > GATEWAY_SILENT_MS}
    spaces: dict[str, list[Sensor]] = {}
    for sensor in sensors:
        spaces.setdefault(sensor.asset or sensor.label or sensor.id, []).append(sensor)
    tiles = []
    for space, members in spaces.items():
        profile = next((s.profile for s in members if s.profile), None)
        band = PROFILES.get(profile or "")
        tags = []
        for s in members:
            last = latest.get(s.id)
            battery = last["battery_mv"] if last else None
            tags.append(TagState(sensor=s.id, temp_c=last["temp_c"] if last else None, battery_mv=battery,
                                 silent=s.last_seen_at is None or now - s.last_seen_at > TAG_SILENT_MS,
                                 low_battery=battery is not None and battery < BATTERY_LOW_MV))
        temps = [t.temp_c for t in tags if t.temp_c is not None and not t.silent]
        setpoint = band.setpoint_c if band else 0.0
        temp = max(temps, key=lambda v: abs(v - setpoint)) if temps else None
        member_ids = {s.id for s in members}
        alerts = [a for a in open_alerts if a.sensor_id in member_ids]
        worst_trend = [_trend(trends.get(s.id, [])) for s in members]
        trend = next((t for t in ("rising", "falling", "steady") if t in worst_trend), "unknown")
        space_gateways = sorted({s.gateway_id for s in members if s.gateway_id})
        gateway_silent = any(g in silent_gateways for g in space_gateways)
        state = ("alert" if alerts else "out" if temp is not None and band is not None and not band.contains(temp)
                 else "silent" if gateway_silent or all(t.silent for t in tags)
                 else "unknown" if temp is None else "ok")
        tiles.append(Tile(space=space, profile=profile, band=band, temp_c=temp, trend=trend, state=state,
                          open_alerts=len(alerts), gateways=space_gateways, gateway_silent=gateway_silent,
                          tags=tags, first_sensor=members[0].id))
    rank = {"alert": 0, "out": 1, "silent": 2, "unknown": 3, "ok": 4}
    return sorted(tiles, key=lambda t: (rank[t.state], t.space.casefold()))
