"""cloud.services.fleet.supersedes: which gateway status is the newer one (sessions first, then timestamps)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.db.fleet import Gateway
from cloud.services.fleet import supersedes
from protocol.messages import Status

T = 1_767_225_600_000


def held(state: str | None, ts: int | None, session: int | None) -> Gateway:
    return Gateway(id="gw1", created_at=T, status=state, status_ts=ts, status_session=session)


def status(state: str, ts: int, session: int | None) -> Status:
    return Status(gateway="gw1", state=state, ts=ts, session=session)  # type: ignore[arg-type]


def test_the_will_ends_its_session_although_composed_before_every_online_status_of_it() -> None:
    assert supersedes(status("offline", T, session=T), held("online", T + 600_000, session=T))


def test_an_ended_session_stays_ended_and_an_older_session_never_returns() -> None:
    assert not supersedes(status("online", T + 700_000, session=T), held("offline", T, session=T))
    assert not supersedes(status("online", T + 900_000, session=T), held("online", T + 5, session=T + 1))
    assert not supersedes(status("offline", T + 900_000, session=T), held("online", T + 5, session=T + 1))


def test_a_new_session_wins_even_when_the_gateway_clock_stepped_back() -> None:
    assert supersedes(status("online", T - 60_000, session=T + 1), held("offline", T, session=T))


def test_within_a_live_session_the_newer_status_wins() -> None:
    assert supersedes(status("online", T + 2, session=T), held("online", T + 1, session=T))
    assert not supersedes(status("online", T, session=T), held("online", T + 1, session=T))


def test_statuses_without_sessions_are_ordered_by_timestamp_as_before() -> None:
    assert not supersedes(status("offline", T, session=None), held("online", T + 1, session=None))
    assert supersedes(status("online", T + 1, session=None), held("offline", T, session=None))
    assert supersedes(status("online", T, session=None), held(None, None, None))


@given(st.lists(st.tuples(st.sampled_from(["online", "offline"]), st.integers(0, 10**6), st.integers(0, 5)),
                min_size=1, max_size=30))
def test_the_held_status_is_the_latest_session_in_any_arrival_order(events: list[tuple[str, int, int]]) -> None:
    gw = held(None, None, None)
    for state, ts, session in events:
        s = status(state, T + ts, session=T + session)
        if supersedes(s, gw):
            gw.status, gw.status_ts, gw.status_session = s.state, s.ts, s.session
    latest = max(session for _, _, session in events)
    assert gw.status_session == T + latest
    if any(state == "offline" and session == latest for state, _, session in events):
        assert gw.status == "offline"
