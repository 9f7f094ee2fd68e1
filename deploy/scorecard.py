"""The demo's verdict on detection: ground-truth incidents from the simulator's labels against the alert
events the gateways published (matched by sensor and time).

Rules and the model raise alerts side by side; the scorecard keeps them apart (`AlertEvent.source`), so an alert of
a noisy model is shown as the model's, and an alert during a labelled benign event (a defrost, a short door
opening) says so: neither is mistaken for the rules crying wolf.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol.codec import ProtocolError, decode
from protocol.messages import AlertEvent

EARLY_MS = 10 * 60_000  # an alert may start a little before the label (noise, a door already ajar)


@dataclass
class AlertWatcher:
    """Reads every gateway's `alerts` topic with a service account (not the shared ingest subscription)."""

    host: str
    port: int
    username: str
    password: str
    events: list[AlertEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-scorecard",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = lambda c, *_: c.subscribe("cw/v1/+/alerts", qos=1)
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            event = decode(bytes(message.payload), AlertEvent)
        except ProtocolError:
            return
        with self._lock:
            self.events.append(event)

    def stop(self) -> list[AlertEvent]:
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            return list(self.events)


@dataclass(frozen=True)
class Scorecard:
    """Incidents expected / detected / missed, and alerts that match no incident (false)."""

    expected: list[dict[str, object]]
    detected: list[dict[str, object]]
    missed: list[dict[str, object]]
    false_alerts: list[AlertEvent]
    benign: list[dict[str, object]] = field(default_factory=list)  # labelled benign events (not incidents)
    sources: dict[int, set[str]] = field(default_factory=dict)  # index in `detected` → {"rule", "model"}

    def during(self, e: AlertEvent) -> str | None:
        """The benign event an alert fell in (its kind), if any."""
        for lab in self.benign:
            if _hits(lab, e):
                return str(lab["kind"])
        return None

    def false_by_source(self) -> dict[str, list[AlertEvent]]:
        """Alerts matching no incident, by who raised them ("rule" / "model")."""
        out: dict[str, list[AlertEvent]] = {"rule": [], "model": []}
        for e in self.false_alerts:
            out.setdefault(e.source, []).append(e)
        return out


def _hits(lab: dict[str, object], e: AlertEvent) -> bool:
    """The alert opened on the label's sensor between a little before its start and its end."""
    start, end = int(str(lab["start_ms"])), int(str(lab["end_ms"]))
    return e.sensor == lab["sensor"] and start - EARLY_MS <= e.started_at <= end


def score(label_files: list[Path], events: list[AlertEvent]) -> Scorecard:
    """Match each incident label with an opened alert on the same sensor within its time span."""
    labels: list[dict[str, object]] = []
    for path in label_files:
        if path.exists():
            labels += json.loads(path.read_text())
    opened = [e for e in events if e.state == "open"]
    incidents = [lab for lab in labels if not lab["benign"]]
    detected = [lab for lab in incidents if any(_hits(lab, e) for e in opened)]
    missed = [lab for lab in incidents if lab not in detected]
    false_alerts = [e for e in opened if not any(_hits(lab, e) for lab in incidents)]
    sources = {i: {str(e.source) for e in opened if _hits(lab, e)} for i, lab in enumerate(detected)}
    return Scorecard(incidents, detected, missed, false_alerts, [lab for lab in labels if lab["benign"]], sources)
