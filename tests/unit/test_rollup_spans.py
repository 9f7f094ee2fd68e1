"""Which spans the ingest worker rolls up: merged on minute boundaries and cut into days, done once more to settle,
a failed one retried alone, at most a pass's worth at a time; a batch's readings split at hour-long holes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.ingest.decode import time_spans
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.roller import Roller
from cloud.tsdb.influx import InfluxUnavailable
from cloud.tsdb.rollups import LEVELS, MAX_PER_PASS, MINUTE_MS, SETTLE_MS, DirtySpans

DAY_MS = 86_400_000


def test_marked_spans_are_merged_on_minute_boundaries_and_done_once_more_to_settle() -> None:
    spans = DirtySpans()
    spans.mark(61_000, 62_000)
    spans.mark(100_000, 130_000)
    spans.mark(600_000, 600_000)
    due = spans.due(now_ms=0)
    assert due == [((60_000, 180_000), True), ((600_000, 660_000), True)]
    for span, fresh in due:
        spans.done(span, fresh, now_ms=0, ok=True)
    assert spans.due(now_ms=SETTLE_MS - 1) == []
    again = spans.due(now_ms=SETTLE_MS)
    assert again == [(span, False) for span, _ in due]
    for span, fresh in again:
        spans.done(span, fresh, now_ms=SETTLE_MS, ok=True)
    assert spans.due(now_ms=10 * SETTLE_MS) == []  # settled spans are not scheduled a third time


def test_a_failed_span_alone_is_kept_for_the_next_pass() -> None:
    spans = DirtySpans()
    spans.mark(0, 1)
    spans.mark(DAY_MS * 3, DAY_MS * 3 + 1)
    (first, fresh_first), (second, fresh_second) = spans.due(now_ms=0)
    spans.done(first, fresh_first, now_ms=0, ok=False)
    spans.done(second, fresh_second, now_ms=0, ok=True)
    assert spans.due(now_ms=1) == [(first, True)]


def test_a_long_span_is_cut_into_days_and_a_pass_does_a_bounded_amount() -> None:
    spans = DirtySpans()
    spans.mark(0, 100 * DAY_MS - 1)  # a clock jump, or a 100-day backlog
    first = spans.due(now_ms=0)
    assert len(first) == MAX_PER_PASS and all(hi - lo <= DAY_MS for (lo, hi), _ in first)
    second = spans.due(now_ms=0)
    assert len(second) == MAX_PER_PASS and second[0][0][0] == first[-1][0][1]  # the rest, in order, next pass


def test_a_batch_is_split_at_hour_long_holes() -> None:
    assert time_spans([5, 1, 3]) == ((1, 5),)
    assert time_spans([946_684_800_000, 1_767_225_600_000, 1_767_225_660_000]) == (
        (946_684_800_000, 946_684_800_000), (1_767_225_600_000, 1_767_225_660_000))


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**6)), min_size=1, max_size=40))
def test_every_marked_reading_falls_in_a_due_span(marks: list[tuple[int, int]]) -> None:
    spans = DirtySpans()
    for start, length in marks:
        spans.mark(start, start + length)
    due = [span for span, _fresh in spans.due(now_ms=0)]
    assert all(lo % MINUTE_MS == 0 and lo < hi for lo, hi in due)
    for start, length in marks:
        assert any(lo <= start < hi for lo, hi in due) and any(lo <= start + length < hi for lo, hi in due)


class _Influx:
    """Stands in for influxd: answers rollup queries with nothing, or fails while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.queries = 0

    def query(self, influxql: str, params: object = None) -> list[object]:
        self.queries += 1
        if self.down:
            raise InfluxUnavailable("influxd down")
        return []

    def write(self, lines: list[str]) -> None:
        pass


def test_the_roller_keeps_a_span_influxd_failed_and_rolls_it_up_when_stopping() -> None:
    influx, metrics = _Influx(), IngestMetrics()
    roller = Roller(influx, metrics, every_s=3600, clock_ms=lambda: 0)  # type: ignore[arg-type]
    roller.start()
    roller.mark(61_000, 62_000)
    influx.down = True
    roller.run_pass()
    assert metrics.write_failures.labels(kind="rollup")._value.get() == 1
    influx.down = False
    before = influx.queries
    roller.stop()  # the thread ends, and what is still marked is rolled up on the caller's thread
    assert influx.queries == before + len(LEVELS)  # the failed span, once per rollup level
