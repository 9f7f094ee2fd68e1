"""The notifier contract: a `Notification` to send, the `Notifier` protocol, and `NotifyError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cloud import i18n
from cloud.i18n import _


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

    def subject_in(self, language: str | None) -> str:
        """The subject in `language`: the stored one in English (webhooks and e-mails agree), else written again
        from the kind and the alerts."""
        if (i18n.supported(language) or i18n.DEFAULT) == i18n.DEFAULT:
            return self.subject
        with i18n.activate(language):
            if self.kind == "summary":
                return summary_subject(self.held, len(self.alerts))
            return subject(self.kind, self.gateway_id or "-", self.alerts)

    def as_text(self, language: str | None = None) -> str:
        """A plain-text body (e-mail) in `language` (default English): one line per alert, its field names as in
        the webhook's JSON."""
        with i18n.activate(language):
            lines = [self.subject_in(language), ""]
            if self.held:
                lines += [_("The rate limit held back %(n)s notifications; their alerts:") % {"n": self.held}, ""]
            for a in self.alerts:
                value = "" if a.get("value") is None else f" value={a['value']:g}"
                threshold = "" if a.get("threshold") is None else f" threshold={a['threshold']:g}"
                lines.append(f"- [{severity(a['severity'])}] {a['kind']} gateway={a['gateway_id']} "
                             f"sensor={a['sensor_id']} profile={a.get('profile') or '-'} "
                             f"started={_iso(a['started_at'])}{value}{threshold} alert={a['id']}")
                if a.get("reason"):
                    lines.append(f"  {a['reason']}")
            return "\n".join(lines) + "\n"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def severity(value: str) -> str:
    """A severity in the active language."""
    words = {"critical": _("critical"), "warning": _("warning"), "info": _("info")}
    return words.get(value, value)


def subject(kind: str, gateway_id: str, alerts: list[dict[str, Any]]) -> str:
    """An alert's, incident's or escalation's subject in the active language; `alerts` are snapshots (plan.py)."""
    worst = "critical" if any(a["severity"] == "critical" for a in alerts) else "warning"
    if kind == "alert":
        a = alerts[0]
        return _("[coldwatch] %(severity)s %(kind)s on sensor %(sensor)s (gateway %(gateway)s)") % {
            "severity": severity(a["severity"]), "kind": a["kind"], "sensor": a["sensor_id"], "gateway": gateway_id}
    if kind == "incident":
        return _("[coldwatch] %(severity)s incident on gateway %(gateway)s: %(n)s alerts") % {
            "severity": severity(worst), "gateway": gateway_id, "n": len(alerts)}
    return _("[coldwatch] still unacknowledged: %(n)s critical alert(s) on gateway %(gateway)s") % {
        "n": len(alerts), "gateway": gateway_id}


def summary_subject(held: int, alerts: int) -> str:
    """A rate-limit summary's subject in the active language."""
    return _("[coldwatch] %(held)s notifications held back by the rate limit (%(alerts)s alerts)") % {
        "held": held, "alerts": alerts}


class Notifier(Protocol):
    """A channel: `name` is its registry name; `send` returns once delivered, else raises NotifyError."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver `notification` or raise NotifyError (the dispatcher retries later)."""
        ...
