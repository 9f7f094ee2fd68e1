"""Login backoff: per (name, address) and per address, a wider limit per name, bounded memory; the client's
address through trusted proxies only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api import ratelimit
from cloud.api.ratelimit import LoginLimiter, client_address
from cloud.config import parse_proxies


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_address_cannot_lock_an_account_out_for_everyone() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=5, window_s=300, clock=clock)
    for _ in range(40):
        limiter.failed("admin", "203.0.113.9")
    assert limiter.blocked("admin", "203.0.113.9") > 0
    assert limiter.blocked("Admin", "198.51.100.7") == 0  # the real admin, elsewhere


def test_backoff_doubles_with_each_failure_past_the_limit_and_is_capped_by_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=clock)
    waits = []
    for _ in range(10):
        limiter.failed("bob", "10.0.0.1")
        waits.append(limiter.blocked("bob", "10.0.0.1"))
    assert waits[:2] == [0, 0] and waits[2:6] == [1, 2, 4, 8] and max(waits) == 60
    clock.now += 61
    assert limiter.blocked("bob", "10.0.0.1") == 0 and len(limiter) == 0  # expired keys are dropped


def test_many_addresses_guessing_one_name_slow_it_down_too() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=300, clock=Clock())
    for i in range(2 * ratelimit.USER_SPREAD):
        limiter.failed("admin", f"10.0.{i}.1")
    assert limiter.blocked("admin", "10.9.9.9") > 0


def test_asking_creates_nothing_and_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 300)
    limiter = LoginLimiter(max_failures=5, window_s=300, clock=Clock())
    for i in range(50_000):
        limiter.blocked(f"user{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(limiter) == 0
    for i in range(1_000):
        limiter.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) <= 300


def test_a_success_clears_the_pair_only() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=300, clock=Clock())
    limiter.failed("ann", "10.0.0.1")
    limiter.failed("ann", "10.0.0.1")
    limiter.succeeded("ann", "10.0.0.1")
    assert limiter.blocked("ann", "10.0.0.1") > 0  # the address still backs off: it guessed twice


PROXIES = parse_proxies("10.0.0.0/8, proxy.internal")


def test_the_client_is_the_rightmost_untrusted_hop_behind_a_trusted_proxy() -> None:
    assert client_address("10.0.0.2", "198.51.100.7", PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5", PROXIES) == "198.51.100.7"
    assert client_address("proxy.internal", "198.51.100.7", PROXIES) == "198.51.100.7"


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.9", "198.51.100.7", PROXIES) == "203.0.113.9"
    assert client_address("203.0.113.9", "198.51.100.7", []) == "203.0.113.9"


@given(st.text(max_size=80))
def test_any_header_gives_some_address_and_never_a_trusted_one(header: str) -> None:
    out = client_address("10.0.0.2", header, PROXIES)
    assert out == "10.0.0.2" or out not in ("10.0.0.5", "proxy.internal")


def test_bad_proxy_entries_are_named() -> None:
    with pytest.raises(ValueError, match="not an address"):
        parse_proxies("10.0.0.0/8, evil example")
