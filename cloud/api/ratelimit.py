"""Login rate limiting: backoff per (user name, client address) and per address, a wider limit per user name, in
bounded memory; and the client's real address behind trusted proxies.

In memory, per API process (docs/cloud.md): enough to stop password guessing against one process; a fleet of API
processes behind a balancer multiplies the allowance by their number. Nobody can lock an account out for everyone
from one address: the pair and the address back off, the account only after `USER_SPREAD` times as many failures
from anywhere (distributed guessing).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

from cloud.config import Proxies

USER_SPREAD: Final = 10  # failures per user name, from all addresses together, before it backs off as well
MAX_KEYS: Final = 50_000  # the oldest keys are forgotten past this (a spray of names or addresses)
BASE_DELAY_S: Final = 1.0


class LoginLimiter:
    """`blocked(user, addr)` → seconds to wait (0: go ahead); `failed(user, addr)` records a failure;
    `succeeded(user, addr)` clears the pair's failures."""

    def __init__(self, *, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, user: str, addr: str) -> list[tuple[str, int]]:
        name = user.lower()[:200]
        return [(f"pair:{name}@{addr}", self.max_failures), (f"addr:{addr}", self.max_failures),
                (f"user:{name}", self.max_failures * USER_SPREAD)]

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked(self, user: str, addr: str) -> float:
        """Seconds to wait: past a key's limit, 1 s after its last failure, doubling with each further failure, at
        most the window (0 when no key is over its limit). Creates nothing."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key, limit in self._keys(user, addr):
                times = self._recent(key, now)
                if times is not None and len(times) >= limit:
                    delay = min(self.window_s, BASE_DELAY_S * 2.0 ** min(len(times) - limit, 30))
                    wait = max(wait, times[-1] + delay - now)
            return max(wait, 0.0)

    def failed(self, user: str, addr: str) -> None:
        """Count a failed login for the pair, the address and the user name."""
        now = self._clock()
        with self._lock:
            for key, limit in self._keys(user, addr):
                times = self._recent(key, now) or deque(maxlen=limit * 4)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, user: str, addr: str) -> None:
        """A successful login clears the pair's failures (not the address's nor the name's)."""
        with self._lock:
            self._failures.pop(self._keys(user, addr)[0][0], None)

    def __len__(self) -> int:
        return len(self._failures)


def _trusted(host: str, proxies: Proxies) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in proxies
    return any(not isinstance(p, str) and address in p for p in proxies)


def client_address(peer: str | None, forwarded_for: str | None,
                   proxies: Proxies) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the rightmost X-Forwarded-For
    entry that is not itself a trusted proxy (entries further left are the client's own claims)."""
    host = peer or "unknown"
    if not proxies or not _trusted(host, proxies) or not forwarded_for:
        return host
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, proxies):
            return hop[:64]
    return host
