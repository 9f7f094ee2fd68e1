"""The notifier contract: a `Notification` to send, the `Notifier` protocol, and `NotifyError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


class NotifyError(Exception):
    """A channel could not deliver a notification; `reason` is safe to log and store (never a secret)."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """What a channel sends: one alert, a gateway's incident, an escalation or a rate-limit summary.

    `alerts` are snapshots (id, gateway_id, sensor_id, kind, severity, started_at, value, threshold, reason,
    profile, status) taken when the notification was planned; `held` counts the notifications a summary covers.
    """

    id: int
    kind: str  # alert | incident | escalation | summary
    subject: str
    created_at: int
    gateway_id: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0

    def as_json(self) -> dict[str, Any]:
        """The webhook body."""
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "created_at": self.created_at,
                "gateway": self.gateway_id, "held": self.held, "alerts": self.alerts}

    def as_text(self) -> str:
        """A plain-text body (e-mail): one line per alert."""
        lines = [self.subject, ""]
        if self.held:
            lines += [f"The rate limit held back {self.held} notifications; their alerts:", ""]
        for a in self.alerts:
            value = "" if a.get("value") is None else f" value={a['value']:g}"
            threshold = "" if a.get("threshold") is None else f" threshold={a['threshold']:g}"
            lines.append(f"- [{a['severity']}] {a['kind']} gateway={a['gateway_id']} sensor={a['sensor_id']} "
                         f"profile={a.get('profile') or '-'} started={_iso(a['started_at'])}{value}{threshold}"
                         f" alert={a['id']}")
            if a.get("reason"):
                lines.append(f"  {a['reason']}")
        return "\n".join(lines) + "\n"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Notifier(Protocol):
    """A channel: `name` is its registry name; `send` returns once delivered, else raises NotifyError."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver `notification` or raise NotifyError (the dispatcher retries later)."""
        ...
