"""Dead letters: what ingest refused for good is kept (bounded) with its payload; ops read it and ask for a replay,
which an ingest worker then runs through the normal path."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from cloud.db.ingest import DeadLetter
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError

STALE_REPLAY_MS: Final = 300_000  # a replay claimed this long ago by a worker that died may be asked for again


class DeadLetterError(DomainError):
    """A dead letter that does not exist, or cannot be replayed in its state."""


@dataclass(frozen=True, slots=True)
class Refused:
    """One message to keep: where it came from, why it was refused, its bytes."""

    topic: str
    gateway_id: str | None
    reason: str
    detail: str
    payload: bytes


def record(session: Session, refused: Sequence[Refused], *, worker: str, keep: int) -> None:
    """Insert `refused` and delete the oldest rows beyond `keep` (0 keeps none: refusals are only counted)."""
    if keep <= 0 or not refused:
        return
    now = now_ms()
    for r in refused:
        session.add(DeadLetter(received_at=now, worker=worker[:100], topic=r.topic[:300],
                               gateway_id=r.gateway_id[:64] if r.gateway_id else None, reason=r.reason[:32],
                               detail=r.detail[:500], size=len(r.payload),
                               payload_b64=base64.b64encode(r.payload).decode()))
    session.flush()
    count = session.exec(select(func.count()).select_from(DeadLetter)).one()
    if count > keep:
        cutoff = session.exec(select(DeadLetter.id).order_by(col(DeadLetter.id).desc()).offset(keep).limit(1)).first()
        if cutoff is not None:
            session.exec(delete(DeadLetter).where(col(DeadLetter.id) <= cutoff))


def listed(session: Session, *, reason: str | None = None, gateway_id: str | None = None,
           state: str | None = None, limit: int = 100) -> Sequence[DeadLetter]:
    """Dead letters, newest first."""
    query = select(DeadLetter).order_by(col(DeadLetter.id).desc()).limit(limit)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    if gateway_id:
        query = query.where(DeadLetter.gateway_id == gateway_id)
    if state:
        query = query.where(DeadLetter.state == state)
    return session.exec(query).all()


def payload(letter: DeadLetter) -> bytes:
    """The refused message's bytes."""
    return base64.b64decode(letter.payload_b64)


def request_replay(session: Session, *, letter_id: int) -> DeadLetter:
    """Mark a dead letter for replay by the next ingest sweep; refused while one is running or after success."""
    letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise DeadLetterError(f"no dead letter {letter_id}", kind="not_found")
    running = letter.state == "replaying" and (letter.replayed_at or 0) > now_ms() - STALE_REPLAY_MS
    if letter.state == "replayed" or running:
        raise DeadLetterError(f"dead letter {letter_id} is {letter.state}", kind="conflict")
    letter.state, letter.replay_note = "replay", ""
    session.add(letter)
    return letter


def claim_replays(session: Session, *, limit: int = 20) -> list[DeadLetter]:
    """Dead letters asked for replay, each claimed by this caller alone (a conditional update per row)."""
    claimed = []
    for letter in session.exec(select(DeadLetter).where(DeadLetter.state == "replay").limit(limit)).all():
        taken = session.exec(update(DeadLetter).where(col(DeadLetter.id) == letter.id)
                             .where(col(DeadLetter.state) == "replay")
                             .values(state="replaying", replayed_at=now_ms()))
        if taken.rowcount == 1:
            session.refresh(letter)
            claimed.append(letter)
    return claimed


def finish_replay(session: Session, *, letter_id: int, ok: bool, note: str = "") -> None:
    """Record the outcome of a replay: `replayed`, or `failed` with why."""
    letter = session.get(DeadLetter, letter_id)
    if letter is not None:
        letter.state, letter.replay_note, letter.replayed_at = ("replayed" if ok else "failed"), note[:500], now_ms()
        session.add(letter)
