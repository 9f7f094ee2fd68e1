"""The demo's power cut: one site's gateway loses power after the day, the cloud shows it offline and raises
`gateway_silent`, power comes back and the alert clears itself; each step timed from the cut."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from deploy.stack import Gateway, LocalStack

KEEPALIVE_S: Final = 5  # the demo agents' MQTT keepalive: the broker gives up on a dead one after 1.5 × this
SILENCE_MIN: Final = 1.0  # the demo API's silence limit (the smallest the setting allows; production: 15 min)
WATCHDOG_EVERY_S: Final = 2.0


def api_settings() -> dict[str, str]:
    """What the demo API needs for the silence watchdog to answer within the demo's time."""
    return {"COLDWATCH_GATEWAY_SILENCE_MIN": f"{SILENCE_MIN:g}",
            "COLDWATCH_SILENCE_INTERVAL_S": f"{WATCHDOG_EVERY_S:g}"}


@dataclass
class PowerCut:
    """What happened, in seconds from the cut (None: not within the time allowed)."""

    gateway: str
    offline_s: float | None = None
    silent_alert_s: float | None = None
    online_again_s: float | None = None
    alert_cleared_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return None not in (self.offline_s, self.silent_alert_s, self.online_again_s, self.alert_cleared_s)

    def lines(self) -> list[str]:
        """The summary's lines."""
        def at(value: float | None) -> str:
            return f"after {value:.0f} s" if value is not None else "NOT SEEN"

        return [f"  power cut at {self.gateway} (its agent frozen: no goodbye, the connection left open):",
                f"    shown offline {at(self.offline_s)} (keepalive {KEEPALIVE_S} s)",
                f"    gateway_silent alert {at(self.silent_alert_s)} (silence limit {SILENCE_MIN:g} min)",
                f"    power back: online {at(self.online_again_s)}, alert cleared {at(self.alert_cleared_s)}",
                *(f"    {note}" for note in self.notes)]


def _until(check: Callable[[], bool], start: float, timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def cut_power(stack: LocalStack, gw: Gateway, headers: dict[str, str]) -> PowerCut:
    """Kill `gw`'s agent, wait for offline and the silent alert, start it again, wait for online and the clear."""
    api = httpx.Client(base_url=stack.api_url, headers=headers, timeout=10)
    result = PowerCut(gw.gateway_id)

    def status() -> str | None:
        body: dict[str, Any] = api.get(f"/api/v1/gateways/{gw.gateway_id}").json()
        return body.get("status")

    def silent_alerts() -> list[dict[str, Any]]:
        page: dict[str, Any] = api.get("/api/v1/alerts", params={"gateway": gw.gateway_id, "limit": 50}).json()
        return [a for a in page["items"] if a["kind"] == "gateway_silent"]

    t0 = time.monotonic()
    stack.cut_power(gw)
    try:
        try:
            result.offline_s = _until(lambda: status() == "offline", t0, 30 + 1.5 * KEEPALIVE_S)
            result.silent_alert_s = _until(lambda: bool(silent_alerts()), t0, SILENCE_MIN * 60 + 30)
        finally:
            stack.restore_power(gw)  # never leave a frozen agent behind
        result.online_again_s = _until(lambda: status() == "online", t0, 300)
        result.alert_cleared_s = _until(lambda: all(a["ended_at"] is not None for a in silent_alerts()), t0, 300)
    except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
        result.notes.append(f"stopped: {exc}")
    finally:
        api.close()
    return result
