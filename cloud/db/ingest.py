"""Completeness tables (each sequence stream's high-water mark and the missing ranges found) and the dead letters:
messages ingest refused, kept with their payload for ops to read and replay."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, LargeBinary, Text
from sqlmodel import Field, SQLModel


class SeqStream(SQLModel, table=True):
    """A sequence: a gateway's telemetry or alert seq, or a sensor's reading seq (unwrapped from 16 bits)."""

    __tablename__ = "seq_stream"

    key: str = Field(primary_key=True, max_length=100)  # telemetry|gw1, alerts|gw1, sensor|aa:bb:..
    kind: str = Field(max_length=16)  # telemetry | alerts | sensor
    gateway_id: str | None = Field(default=None, max_length=64)
    sensor_id: str | None = Field(default=None, max_length=17)
    highest: int = Field(sa_type=BigInteger)
    highest_ts: int = Field(sa_type=BigInteger)
    received: int = Field(default=0, sa_type=BigInteger)
    missing: int = Field(default=0, sa_type=BigInteger)  # currently open gap size (declared gaps and holes)
    # Holes not yet declared as gaps: [first, last, after_ts, before_ts, detected_at] each. The other worker's
    # batch usually fills them within a second or two; only those older than the grace period become gap rows.
    holes: list[list[int]] | None = Field(default=None, sa_type=JSON)
    holes_since: int | None = Field(default=None, sa_type=BigInteger, index=True)  # the oldest hole's detected_at


class IngestJournal(SQLModel, table=True):
    """What one stored ingest batch saw of gateways, sensors and seq streams (msgpack), waiting to be merged into
    their rows (cloud/services/ingest_journal.py); deleted by the merge."""

    __tablename__ = "ingest_journal"

    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(max_length=64)
    created_at: int = Field(sa_type=BigInteger)
    body: bytes = Field(sa_type=LargeBinary)


class ReplayRequest(SQLModel, table=True):
    """Ingest asked the gateway to re-send the seqs of gap `gap_id` (once per retry interval, a few times)."""

    __tablename__ = "replay_request"

    gap_id: int = Field(primary_key=True)
    requested_at: int = Field(sa_type=BigInteger)
    attempts: int = 1


class IngestGapPublic(SQLModel):
    """A missing range as the API shows it."""

    id: int
    kind: str
    gateway_id: str | None
    sensor_id: str | None
    first_seq: int
    last_seq: int
    missing: int
    after_ts: int
    before_ts: int
    detected_at: int


class IngestGap(SQLModel, table=True):
    """Seqs first_seq..last_seq of a stream were not received; a late arrival shrinks or splits the gap.

    `after_ts`/`before_ts` are the timestamps of the readings on either side: the time the hole covers.
    """

    __tablename__ = "ingest_gap"

    id: int | None = Field(default=None, primary_key=True)
    stream: str = Field(max_length=100, index=True)
    kind: str = Field(max_length=16)
    gateway_id: str | None = Field(default=None, max_length=64, index=True)
    sensor_id: str | None = Field(default=None, max_length=17, index=True)
    first_seq: int = Field(sa_type=BigInteger)
    last_seq: int = Field(sa_type=BigInteger)
    missing: int = Field(sa_type=BigInteger)
    after_ts: int = Field(sa_type=BigInteger)
    before_ts: int = Field(sa_type=BigInteger)
    detected_at: int = Field(sa_type=BigInteger)


DEAD_LETTER_STATES = ("held", "replay", "replaying", "replayed", "failed")


class DeadLetterBase(SQLModel):
    """A refused message as ops see it in a list (without its payload)."""

    received_at: int = Field(sa_type=BigInteger, index=True)
    worker: str = Field(max_length=100)
    topic: str = Field(max_length=300)
    gateway_id: str | None = Field(default=None, max_length=64, index=True)
    reason: str = Field(max_length=32, index=True)  # the `rejected` counter's reason
    detail: str = Field(default="", max_length=500)
    size: int
    state: str = Field(default="held", max_length=16)  # held | replay | replaying | replayed | failed
    replayed_at: int | None = Field(default=None, sa_type=BigInteger)
    replay_note: str = Field(default="", max_length=500)


class DeadLetter(DeadLetterBase, table=True):
    """A message ingest acknowledged without storing it (refused for good), with its payload (base64: a poison
    message need not be text). The oldest are deleted beyond COLDWATCH_INGEST_DEAD_LETTER_MAX rows."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    payload_b64: str = Field(sa_type=Text)


class DeadLetterPublic(DeadLetterBase):
    """A dead letter in a list."""

    id: int


class DeadLetterDetail(DeadLetterPublic):
    """One dead letter with its payload (base64, and as text when it is UTF-8)."""

    payload_b64: str
    payload_text: str | None
