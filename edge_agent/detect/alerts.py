"""Alert lifecycle per (sensor, kind): a condition that holds long enough opens one alert, which updates
while it lasts and clears after the condition has been gone for a while. Ids are deterministic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from protocol.messages import AlertEvent, alert_id

State = Literal["open", "update", "clear"]


@dataclass
class _Track:
    """What is known about one (sensor, kind): when the condition began, whether an alert is open."""

    since_ms: int | None = None  # first reading with the condition holding (pending or open)
    open: bool = False
    last_sent_ms: int = 0
    ok_since_ms: int | None = None
    worst: float | None = None


@dataclass
class AlertTracker:
    """Turns a stream of (condition holds?) verdicts into open / update / clear events."""

    gateway: str
    update_every_ms: int = 5 * 60_000
    tracks: dict[tuple[str, str], _Track] = field(default_factory=dict)

    def observe(self, *, sensor: str, kind: str, active: bool, ts_ms: int, min_duration_ms: int,
                clear_after_ms: int, severity: Literal["info", "warning", "critical"], source: Literal["rule", "model"],
                value: float | None = None, threshold: float | None = None, reason: str = "",
                model_version: str | None = None, hold: bool = False, started_ms: int | None = None,
                ) -> AlertEvent | None:
        """Feed one verdict; returns the event to send, if any (its `seq` is set by the outbox).

        `hold`: the condition is gone but not clearly (hysteresis): an open alert stays open, nothing opens.
        `started_ms`: when the condition really began, if earlier than this verdict (e.g. a silent sensor).
        """
        track = self.tracks.get((sensor, kind))
        if track is None:
            if not active:
                return None  # the common case: nothing pending, nothing open, nothing to do
            track = self.tracks[(sensor, kind)] = _Track()
        state: State | None = None
        if hold and track.open:
            track.ok_since_ms = None
        elif active:
            track.ok_since_ms = None
            if track.since_ms is None:
                track.since_ms = started_ms if started_ms is not None else ts_ms
            if value is not None and (track.worst is None or abs(value) > abs(track.worst)):
                track.worst = value
            if not track.open and ts_ms - track.since_ms >= min_duration_ms:
                track.open, state = True, "open"
            elif track.open and ts_ms - track.last_sent_ms >= self.update_every_ms:
                state = "update"
        elif track.open:
            track.ok_since_ms = track.ok_since_ms if track.ok_since_ms is not None else ts_ms
            if ts_ms - track.ok_since_ms >= clear_after_ms:
                state = "clear"
        else:
            del self.tracks[(sensor, kind)]  # a blip shorter than min_duration never opens
            return None
        if state is None:
            return None
        assert track.since_ms is not None
        event = AlertEvent(
            id=alert_id(self.gateway, sensor, kind, track.since_ms), gateway=self.gateway, seq=1, sensor=sensor,
            kind=kind, severity=severity, state=state, source=source, started_at=track.since_ms, updated_at=ts_ms,
            ended_at=ts_ms if state == "clear" else None,
            value=track.worst if state != "clear" else value, threshold=threshold, reason=reason[:500],
            model_version=model_version,
        )
        track.last_sent_ms = ts_ms
        if state == "clear":
            self.tracks.pop((sensor, kind))
        return event

    def idle(self, sensor: str, kind: str) -> bool:
        """Nothing pending or open for (sensor, kind): an inactive verdict there changes nothing (`observe` would
        return None), so a tick may skip it."""
        return (sensor, kind) not in self.tracks

    def open_alerts(self) -> list[tuple[str, str]]:
        """(sensor, kind) of every alert currently open."""
        return [key for key, t in self.tracks.items() if t.open]
