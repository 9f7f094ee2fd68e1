"""How the dashboard says things: alert kinds and reasons in words, times, ages, battery levels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from cloud.db.alerts import Alert

KIND_TITLES: Final = {
    "temp_out_of_range": "Temperature outside the allowed band",
    "temp_rate": "Temperature changing unusually fast",
    "battery_low": "Tag battery low",
    "sensor_silent": "Tag stopped reporting",
    "gateway_silent": "Gateway stopped sending (power or network lost?)",
    "cooling_fading": "Cooling capacity fading (pull-downs slowing)",
    "anomaly": "Readings unlike normal operation (anomaly model)",
}
REASON_CODES: Final = (
    ("false_alarm", "False alarm", "nothing was wrong"),
    ("defrost", "Defrost", "a normal defrost cycle"),
    ("loading", "Loading", "doors open while loading / unloading"),
    ("real_excursion", "Real excursion", "the goods really left their band"),
    ("sensor_fault", "Sensor fault", "the tag, not the space, was wrong"),
    ("other", "Other", "needs a note"),
)
ACTION_WORDS: Final = {
    "open": "gateway opened the alert", "update": "gateway updated the alert", "clear": "gateway cleared the alert",
    "acknowledge": "acknowledged", "assign": "assigned", "comment": "commented", "resolve": "resolved",
    "reopen": "reopened",
}
BATTERY_FULL_MV: Final = 3000
BATTERY_EMPTY_MV: Final = 2400
BATTERY_LOW_MV: Final = 2500


def kind_title(kind: str) -> str:
    """A heading for an alert kind (unknown kinds are spelled out from their id)."""
    return KIND_TITLES.get(kind, kind.replace("_", " ").capitalize())


def reason_in_words(alert: Alert, last_reason: str | None = None) -> str:
    """One or two sentences: which rule or model raised it, and the gateway's own reason (`last_reason`: the
    newest reason in the history, for an alert whose clearing event carried none)."""
    if alert.source == "model":
        lead = f"Raised by the anomaly model{f' version {alert.model_version}' if alert.model_version else ''}"
        if alert.value is not None and alert.threshold is not None:
            lead += f": its score {alert.value:.3g} went above the decision threshold {alert.threshold:.3g}"
    elif alert.source == "cloud":
        lead = "Raised by the cloud's watchdog: the gateway itself cannot say it has gone quiet"
    else:
        lead = f"Raised by the hard rule “{kind_title(alert.kind).lower()}”"
        if alert.kind == "temp_out_of_range" and alert.threshold is not None:
            lead += f" (limit {alert.threshold:g} °C{f' for the {alert.profile} profile' if alert.profile else ''})"
        elif alert.kind == "battery_low" and alert.threshold is not None:
            lead += f" (below {alert.threshold:g} mV)"
    lead += "."
    said = alert.reason or last_reason
    if said:
        lead += f" {'The watchdog' if alert.source == 'cloud' else 'The gateway'} said: {said}."
    if alert.device_state == "clear" and alert.ended_at is not None:
        lead += f" The condition ended at {utc(alert.ended_at)}."
    elif alert.device_state != "clear":
        lead += " Nothing has been received since." if alert.source == "cloud" else (
            " The condition is still present at the gateway.")
    return lead


def utc(ms: int | None) -> str:
    """'2025-01-31 12:00:05 UTC' (the page's script shows it in the reader's local time)."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: int | None) -> str:
    """ISO-8601 for a <time datetime=…> attribute."""
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def age(ms: int | None, now_ms: int) -> str:
    """'3 min ago', '2 h ago', 'never'."""
    if ms is None:
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def battery_pct(mv: float | None) -> int | None:
    """A CR2477 coin cell's rough charge from its voltage (linear between empty and full)."""
    if mv is None:
        return None
    return max(0, min(100, round(100 * (mv - BATTERY_EMPTY_MV) / (BATTERY_FULL_MV - BATTERY_EMPTY_MV))))
