"""The cloud's watchdog for gateways that stop sending: a `gateway_silent` alert after a per-profile silence,
cleared by the cloud when data returns; and the thread in the API process that runs it.

A gateway raises `sensor_silent` for a tag it no longer hears; only the cloud can notice the gateway itself going
quiet (power, network, a crashed agent). Silence is measured on the cloud's clock (`Gateway.last_heard_at`, set
by ingest on receipt), so a gateway clock that is off, or a backlog sent late, does not make a gateway look quiet.
One alert per gateway, not per sensor; none when every sensor of the gateway already has an open
`sensor_silent` (the gateway said so itself before it went quiet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import session_scope
from cloud.db.fleet import Gateway, Sensor
from cloud.periodic import PeriodicThread
from cloud.services.clock import now_ms
from cloud.services.completeness import SILENT_KIND
from protocol.messages import alert_id

log = logging.getLogger(__name__)

KIND = SILENT_KIND
SOURCE = "cloud"
ACTOR = "cloud:watchdog"


@dataclass(frozen=True)
class SilencePolicy:
    """How long a gateway may stay quiet: `default_min`, or the shortest of its sensors' profiles in
    `by_profile` (a pharma shipper is judged by its strictest cargo)."""

    default_min: float = 15.0
    by_profile: Mapping[str, float] = field(default_factory=dict)

    def shortest_ms(self) -> int:
        """The shortest limit any gateway can have: a gateway heard more recently is not looked at further."""
        return round(min([self.default_min, *self.by_profile.values()]) * 60_000)

    def limit_ms(self, profiles: set[str]) -> int:
        minutes = [self.by_profile[p] for p in profiles if p in self.by_profile] or [self.default_min]
        return round(min(minutes) * 60_000)


@dataclass
class WatchResult:
    """What one pass changed."""

    opened: list[str] = field(default_factory=list)  # gateway ids
    cleared: list[str] = field(default_factory=list)


def watch(session: Session, *, policy: SilencePolicy, now: int) -> WatchResult:
    """Open a `gateway_silent` alert for every gateway quiet for longer than its limit, and clear the open ones
    whose gateway has been heard since they started."""
    result = WatchResult()
    open_alerts = {a.gateway_id: a for a in session.exec(select(Alert).where(
        Alert.kind == KIND, Alert.device_state != "clear")).all()}
    for alert in open_alerts.values():
        gateway = session.get(Gateway, alert.gateway_id)
        if gateway is not None and gateway.last_heard_at is not None and gateway.last_heard_at > alert.started_at:
            _end(session, alert, at=gateway.last_heard_at)
            result.cleared.append(alert.gateway_id)
    # only gateways quiet for at least the shortest limit: their sensors are read, the fleet's are not
    gateways = session.exec(select(Gateway).where(col(Gateway.last_heard_at) < now - policy.shortest_ms(),
                                                  Gateway.revoked == False)).all()  # noqa: E712
    for gateway in gateways:
        if gateway.id in open_alerts and gateway.id not in result.cleared:
            continue
        assert gateway.last_heard_at is not None
        sensors = session.exec(select(Sensor).where(Sensor.gateway_id == gateway.id)).all()
        profiles = {s.profile for s in sensors if s.profile}
        limit = policy.limit_ms(profiles)
        quiet = now - gateway.last_heard_at
        if quiet <= limit or _told_already(session, gateway.id, [s.id for s in sensors]):
            continue
        _open(session, gateway, sensors=len(sensors), profile=_strictest(policy, profiles), quiet_ms=quiet,
              limit_ms=limit, now=now)
        result.opened.append(gateway.id)
    return result


def _strictest(policy: SilencePolicy, profiles: set[str]) -> str | None:
    ranked = sorted(profiles, key=lambda p: (policy.by_profile.get(p, policy.default_min), p))
    return ranked[0] if ranked else None


def _told_already(session: Session, gateway_id: str, sensor_ids: list[str]) -> bool:
    """Every sensor of the gateway has an open `sensor_silent` alert of its own."""
    if not sensor_ids:
        return False
    silent = set(session.exec(select(Alert.sensor_id).where(
        Alert.gateway_id == gateway_id, Alert.kind == "sensor_silent", Alert.device_state != "clear")).all())
    return silent >= set(sensor_ids)


def _open(session: Session, gateway: Gateway, *, sensors: int, profile: str | None, quiet_ms: int, limit_ms: int,
          now: int) -> None:
    assert gateway.last_heard_at is not None
    reason = (f"nothing received from gateway {gateway.id} for {quiet_ms / 60_000:.0f} min (limit "
              f"{limit_ms / 60_000:g} min{f' for {profile}' if profile else ''}); its {sensors} sensors are unwatched")
    alert = Alert(id=alert_id(gateway.id, "", KIND, gateway.last_heard_at), gateway_id=gateway.id, sensor_id="",
                  kind=KIND, severity="critical", source=SOURCE, device_state="open",
                  started_at=gateway.last_heard_at, updated_at=now, received_at=now, last_event_at=now,
                  value=quiet_ms / 60_000, threshold=limit_ms / 60_000, reason=reason, profile=profile)
    session.add(alert)
    session.flush()
    session.add(AlertHistory(alert_id=alert.id, at=now, actor=ACTOR, action="open", detail={"reason": reason}))
    log.warning("gateway silent gateway=%s quiet_min=%.1f limit_min=%g", gateway.id, quiet_ms / 60_000,
                limit_ms / 60_000)


def _end(session: Session, alert: Alert, *, at: int) -> None:
    alert.device_state, alert.ended_at, alert.updated_at, alert.last_event_at = "clear", at, at, at
    session.add(alert)
    session.add(AlertHistory(alert_id=alert.id, at=at, actor=ACTOR, action="clear",
                             detail={"reason": "data received again"}))
    log.info("gateway heard again gateway=%s alert=%s", alert.gateway_id, alert.id)


class SilenceWatchdog:
    """`step()` once, or `start()` a daemon thread that steps every `interval_s` until `stop()`."""

    def __init__(self, engine: Engine, policy: SilencePolicy, *, interval_s: float,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self._thread = PeriodicThread("silence-watchdog", interval_s, self.step)

    def step(self) -> WatchResult:
        """One pass in one transaction."""
        with session_scope(self.engine) as session:
            return watch(session, policy=self.policy, now=self.clock())

    def start(self) -> SilenceWatchdog:
        """Run in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (waits for the current step)."""
        self._thread.stop()
