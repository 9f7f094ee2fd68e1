"""Ingest worker pieces that need no broker: seq tracking, retry backoff, which refusals are final."""

from __future__ import annotations

import pytest

from cloud.config import Settings
from cloud.ingest.worker import BACKOFF_MAX_S, Backoff, IngestWorker, SeqTracker, refused_for_good
from cloud.tsdb.influx import InfluxRejected


def test_seq_tracker_counts_skipped_seqs_and_ignores_redelivery() -> None:
    t = SeqTracker()
    assert t.observe("gw1", 5) == 0
    assert t.observe("gw1", 6) == 0
    assert t.observe("gw1", 9) == 2
    assert t.observe("gw1", 6) == 0  # re-delivered: no gap, highest unchanged
    assert t.observe("gw2", 1) == 0
    assert t.highest == {"gw1": 9, "gw2": 1}
    assert t.gaps == {"gw1": 2}


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    now = [100.0]
    b = Backoff(lambda: now[0])
    assert b.ready()
    delays = [b.failed() for _ in range(8)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == BACKOFF_MAX_S
    assert not b.ready()
    now[0] += BACKOFF_MAX_S
    assert b.ready()
    b.reset()
    assert b.failed() == 0.5


@pytest.mark.parametrize(("status", "message", "final"), [
    (400, "partial write: points beyond retention policy dropped=1", True),
    (400, "unable to parse 'x': invalid field format", True),
    (400, 'partial write: field type conflict: input field "seq" on measurement "reading" is type integer', False),
    (401, "authorization failed", False),
    (404, "database not found: coldwatch", False),
])
def test_which_refusals_drop_the_message(status: int, message: str, final: bool) -> None:
    assert refused_for_good(InfluxRejected(status, message)) is final


def test_receive_maximum_follows_batch_size_capped() -> None:
    small = IngestWorker(Settings(mqtt_password="pw", ingest_batch_size=300))
    big = IngestWorker(Settings(mqtt_password="pw", ingest_batch_size=200_000))
    assert (small.receive_maximum, big.receive_maximum) == (300, 65535)
    props = small._connect_properties()
    assert props.ReceiveMaximum == 300 and props.SessionExpiryInterval == 86_400
