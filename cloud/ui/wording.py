"""How the dashboard says things: alert kinds and reasons in words, times, ages, battery levels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from babel.numbers import format_decimal

from cloud import i18n
from cloud.db.alerts import Alert
from cloud.i18n import N_, _

# Marked with N_() and translated with _() where shown: the active language is the reader's, known only then.
KIND_TITLES: Final = {
    "temp_out_of_range": N_("Temperature outside the allowed band"),
    "temp_rate": N_("Temperature changing unusually fast"),
    "battery_low": N_("Tag battery low"),
    "sensor_silent": N_("Tag stopped reporting"),
    "gateway_silent": N_("Gateway stopped sending (power or network lost?)"),
    "cooling_fading": N_("Cooling capacity fading (pull-downs slowing)"),
    "anomaly": N_("Readings unlike normal operation (anomaly model)"),
    "shipment_excursion": N_("Outside the shipment's own limits"),
}
REASON_CODES: Final = (
    ("false_alarm", N_("False alarm"), N_("nothing was wrong")),
    ("defrost", N_("Defrost"), N_("a normal defrost cycle")),
    ("loading", N_("Loading"), N_("doors open while loading / unloading")),
    ("real_excursion", N_("Real excursion"), N_("the goods really left their band")),
    ("sensor_fault", N_("Sensor fault"), N_("the tag, not the space, was wrong")),
    ("other", N_("Other"), N_("needs a note")),
)
ACTION_WORDS: Final = {
    "open": N_("gateway opened the alert"), "update": N_("gateway updated the alert"),
    "clear": N_("gateway cleared the alert"), "acknowledge": N_("acknowledged"), "assign": N_("assigned"),
    "comment": N_("commented"), "resolve": N_("resolved"), "reopen": N_("reopened"),
}
# Enumerated values shown as words (workflow status, severity, gateway and job states); the value itself stays in
# class names and data attributes.
WORDS: Final = {
    "open": N_("open"), "acknowledged": N_("acknowledged"), "resolved": N_("resolved"),
    "critical": N_("critical"), "warning": N_("warning"), "info": N_("info"),
    "online": N_("online"), "offline": N_("offline"), "unknown": N_("unknown"),
    "active": N_("active"), "expired": N_("expired"), "revoked": N_("revoked"),
    "canary": N_("canary"), "promoting": N_("promoting"), "completed": N_("completed"), "halted": N_("halted"),
    "rolled_back": N_("rolled back"), "waiting": N_("waiting"), "sent": N_("sent"), "shadow": N_("shadow"),
    "applied": N_("applied"), "failed": N_("failed"), "reverted": N_("reverted"), "queued": N_("queued"),
    "running": N_("running"), "succeeded": N_("succeeded"), "rest": N_("rest"),
    "planned": N_("planned"), "in_transit": N_("in transit"), "delivered": N_("delivered"),
    "cancelled": N_("cancelled"),
    # product profiles (protocol/profiles.py): the id is the English name
    "frozen": N_("frozen"), "chilled": N_("chilled"), "pharma_2_8": N_("pharma_2_8"), "ambient": N_("ambient"),
}
# What the dashboard's scripts (static/*.js) say, by their English text; `ui_text()` hands the page their
# translations (a JSON data block in base.html), `t("…")` in the script looks them up.
SCRIPT_TEXT: Final = (
    N_("Your session has ended. Log in again."), N_("Your role does not allow this."),
    N_("A database the server needs is unavailable; try again shortly."), N_("The server answered %(status)s."),
    N_("The server cannot be reached. Check the connection and try again."),
    N_("Enter your user name and password."), N_("Wrong user name or password."),
    N_("Could not refresh the alerts."), N_("Showing %(shown)s of"), N_("live"), N_("live · updated %(time)s"),
    N_(" · %(n)s new"), N_("stopped"), N_("reconnecting…"),
    N_("Your session has ended. Log in again to see new alerts."), N_("Acknowledged."), N_("Assigned."),
    N_("Write the comment first."), N_("Comment added."), N_("Reopened."),
    N_("“Other” needs a note: say what happened."), N_("Resolved as %(code)s."), N_("Completeness"),
    N_("Readings"), N_("Missing"), N_("Min / mean / max"), N_("MKT"), N_("Time out of band"), N_("Excursions"),
    N_("%(n)s min"), N_("The report could not be computed: %(error)s"), N_("“From” must be before “To”."),
    N_("At most 31 days at a time."),
    # chart.js
    N_("Temperature °C"), N_("Humidity %"), N_("Battery mV"), N_("Anomaly score"),
    N_("Chart of the sensor's readings"), N_("Loading…"), N_("No readings in this range."),
    N_("Could not load the readings: %(error)s"),
    N_("%(time)s · %(temp)s (min %(min)s, max %(max)s) · %(rh)s · %(battery)s · score %(score)s · %(n)s reading(s)"),
    # ops.js
    N_("Your session has ended. Log in again to follow this page."), N_("Could not refresh this page: %(error)s"),
    N_("The canary fraction is a number from 0 to 1."), N_("The probation must be at least a minute."),
    N_("The alert ratio must be above 0."), N_("The evidence must be above 0 sensor-hours."),
    N_("Tick at least one gateway, or choose every gateway."), N_("Rollout #%(id)s of %(model)s started."),
    N_("Promoted."), N_("Halted."), N_("Rolled back."), N_("Send every gateway of this rollout its previous model?"),
    N_("Stop sending this model to further gateways?"), N_("Epochs: from 1 to 200."),
    N_("A version has letters, digits, “_” and “.” only."), N_("Training job #%(id)s queued."),
    # tokens.js
    N_("The server cannot be reached; reload the page to see the tokens."),
    N_("Could not refresh the tokens: the server answered %(status)s."),
    N_("Give the token a name: what will use it?"), N_("A token is valid for 1 to %(most)s whole days."),
    N_("Copied."), N_("Selected: press Ctrl+C (⌘C) to copy."),
    N_("Revoke the token %(name)s of %(owner)s? Scripts using it are refused from their next request."),
    N_("Revoke the token %(name)s? Scripts using it are refused from their next request."),
    N_("Token %(name)s revoked."),
    # shipments.js
    N_("The lower limit must be below the upper limit."),
)
BATTERY_FULL_MV: Final = 3000
BATTERY_EMPTY_MV: Final = 2400
BATTERY_LOW_MV: Final = 2500


def word(value: str | None) -> str:
    """An enumerated value (status, severity, state) in the reader's language; unknown values as they are."""
    if value is None:
        return ""
    known = WORDS.get(value)
    return _(known) if known else value


status_word = severity_word = word


def resolution_word(code: str | None) -> str:
    """A resolution code (REASON_CODES) as its label in the reader's language; unknown codes as they are."""
    label = next((label for known, label, _hint in REASON_CODES if known == code), None)
    return _(label) if label else (code or "")


def ui_text() -> dict[str, str]:
    """SCRIPT_TEXT's translations into the reader's language (empty in English: the script's own text is it)."""
    if i18n.current() == i18n.DEFAULT:
        return {}
    return {message: _(message) for message in SCRIPT_TEXT}


def kind_title(kind: str) -> str:
    """A heading for an alert kind (unknown kinds are spelled out from their id)."""
    known = KIND_TITLES.get(kind)
    return _(known) if known else kind.replace("_", " ").capitalize()


def reason_in_words(alert: Alert, last_reason: str | None = None) -> str:
    """One or two sentences: which rule or model raised it, and the gateway's own reason (`last_reason`: the
    newest reason in the history, for an alert whose clearing event carried none)."""
    if alert.source == "model":
        if alert.model_version:
            lead = _("Raised by the anomaly model version %(version)s") % {"version": alert.model_version}
        else:
            lead = _("Raised by the anomaly model")
        if alert.value is not None and alert.threshold is not None:
            lead += _(": its score %(score)s went above the decision threshold %(threshold)s") % {
                "score": f"{alert.value:.3g}", "threshold": f"{alert.threshold:.3g}"}
    elif alert.source == "cloud":
        lead = _("Raised by the cloud's watchdog: the gateway itself cannot say it has gone quiet")
    else:
        lead = _("Raised by the hard rule “%(rule)s”") % {"rule": kind_title(alert.kind).lower()}
        if alert.kind == "temp_out_of_range" and alert.threshold is not None:
            if alert.profile:
                lead += _(" (limit %(limit)s °C for the %(profile)s profile)") % {
                    "limit": f"{alert.threshold:g}", "profile": alert.profile}
            else:
                lead += _(" (limit %(limit)s °C)") % {"limit": f"{alert.threshold:g}"}
        elif alert.kind == "battery_low" and alert.threshold is not None:
            lead += _(" (below %(limit)s mV)") % {"limit": f"{alert.threshold:g}"}
    lead += _(".")
    said = alert.reason or last_reason
    if said:
        lead += (_(" The watchdog said: %(reason)s.") if alert.source == "cloud"
                 else _(" The gateway said: %(reason)s.")) % {"reason": said}
    if alert.device_state == "clear" and alert.ended_at is not None:
        lead += _(" The condition ended at %(time)s.") % {"time": utc(alert.ended_at)}
    elif alert.device_state != "clear":
        lead += _(" Nothing has been received since.") if alert.source == "cloud" else (
            _(" The condition is still present at the gateway."))
    return lead


def utc(ms: int | None) -> str:
    """'2025-01-31 12:00:05 UTC' in English, the locale's own date and time in others ('2025年1月31日 12:00:05
    UTC'); always UTC (the page's script shows it in the reader's local time)."""
    return "—" if ms is None else i18n.format_utc(ms)


def iso(ms: int | None) -> str:
    """ISO-8601 for a <time datetime=…> attribute."""
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def decimal(value: float | None, digits: int = 1) -> str:
    """A number with `digits` decimals in the reader's locale, no grouping ('—' for None)."""
    if value is None:
        return "—"
    return format_decimal(value, format="0." + "0" * digits if digits else "0", locale=i18n.locale())


def age(ms: int | None, now_ms: int) -> str:
    """'3 min ago', '2 h ago', 'never'."""
    if ms is None:
        return _("never")
    seconds = max(0, (now_ms - ms) // 1000)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            n = seconds // size
            if unit == "d":
                return _("%(n)d d ago") % {"n": n}
            if unit == "h":
                return _("%(n)d h ago") % {"n": n}
            return _("%(n)d min ago") % {"n": n}
    return _("%(n)d s ago") % {"n": seconds}


def battery_pct(mv: float | None) -> int | None:
    """A CR2477 coin cell's rough charge from its voltage (linear between empty and full)."""
    if mv is None:
        return None
    return max(0, min(100, round(100 * (mv - BATTERY_EMPTY_MV) / (BATTERY_FULL_MV - BATTERY_EMPTY_MV))))
