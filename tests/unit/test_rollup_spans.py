"""Which spans the ingest worker rolls up: merged on minute boundaries, done once more to settle, kept on failure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.tsdb.rollups import MINUTE_MS, SETTLE_MS, DirtySpans


def test_marked_spans_are_merged_on_minute_boundaries_and_done_once_more_to_settle() -> None:
    spans = DirtySpans()
    spans.mark(61_000, 62_000)
    spans.mark(100_000, 130_000)
    spans.mark(600_000, 600_000)
    due = spans.due(now_ms=0)
    assert due == [(60_000, 180_000), (600_000, 660_000)]
    spans.done(due, now_ms=0, ok=True)
    assert spans.due(now_ms=SETTLE_MS - 1) == []
    again = spans.due(now_ms=SETTLE_MS)
    assert again == due
    spans.done(again, now_ms=SETTLE_MS, ok=True)
    assert spans.due(now_ms=10 * SETTLE_MS) == []  # settled spans are not scheduled a third time


def test_a_failed_pass_keeps_its_spans_for_the_next() -> None:
    spans = DirtySpans()
    spans.mark(0, 1)
    due = spans.due(now_ms=0)
    spans.done(due, now_ms=0, ok=False)
    assert spans.due(now_ms=1) == due


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**6)), min_size=1, max_size=40))
def test_every_marked_reading_falls_in_a_due_span(marks: list[tuple[int, int]]) -> None:
    spans = DirtySpans()
    for start, length in marks:
        spans.mark(start, start + length)
    due = spans.due(now_ms=0)
    assert all(lo % MINUTE_MS == 0 and hi % MINUTE_MS == 0 and lo < hi for lo, hi in due)
    assert all(due[i][1] < due[i + 1][0] for i in range(len(due) - 1))  # merged: disjoint and ordered
    for start, length in marks:
        assert any(lo <= start and start + length < hi for lo, hi in due)
