"""The `webhook` channel: POST the notification as JSON, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Final

import httpx

from cloud.notify.base import Notification, NotifyError

SIGNATURE_HEADER: Final = "X-Coldwatch-Signature"
TIMESTAMP_HEADER: Final = "X-Coldwatch-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>") (the timestamp makes a replay detectable)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookNotifier:
    """POSTs to `url`; any 2xx is delivered, anything else (or no answer within `timeout_s`) a NotifyError."""

    name = "webhook"

    def __init__(self, *, url: str, secret: str | None, timeout_s: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False,
                                    headers={"User-Agent": "coldwatch-notify"})

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<hidden>)"  # the URL may carry a token

    def send(self, notification: Notification) -> None:
        """POST the JSON body; the timestamp header is this attempt's time (epoch ms), so a receiver can refuse
        old replays and still take a retry after a long outage."""
        body = json.dumps(notification.as_json(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(time.time_ns() // 1_000_000)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   "X-Coldwatch-Notification": str(notification.id)}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise NotifyError(self.name, "timed out") from None
        except httpx.HTTPError as exc:
            raise NotifyError(self.name, f"request failed: {type(exc).__name__}") from None
        if not response.is_success:
            raise NotifyError(self.name, f"answered HTTP {response.status_code}")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
