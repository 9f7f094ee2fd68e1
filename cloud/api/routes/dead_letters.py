"""`/api/v1/dead-letters` (ops): the messages ingest refused for good, with their payload, and their replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from cloud.api.deps import Ops, RowId, SessionDep
from cloud.db.ingest import DEAD_LETTER_STATES, DeadLetter, DeadLetterDetail, DeadLetterPublic
from cloud.services import audit, dead_letters

router = APIRouter(prefix="/api/v1/dead-letters", tags=["ingest"])


@router.get("", response_model=list[DeadLetterPublic], summary="Refused messages, newest first (ops)")
def list_dead_letters(user: Ops, session: SessionDep, reason: Annotated[str | None, Query(max_length=32)] = None,
                      gateway: Annotated[str | None, Query(max_length=64)] = None,
                      state: Annotated[str | None, Query(pattern="^(" + "|".join(DEAD_LETTER_STATES) + ")$")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeadLetterPublic]:
    """What ingest acknowledged without storing: reason (the `rejected` counter's), detail, gateway, topic, size
    and replay state; the payload is in the single-item view."""
    rows = dead_letters.listed(session, reason=reason, gateway_id=gateway, state=state, limit=limit)
    return [DeadLetterPublic.model_validate(r) for r in rows]


def _letter(session: SessionDep, letter_id: int) -> DeadLetter:
    letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise HTTPException(status_code=404, detail=f"no dead letter {letter_id}")
    return letter


@router.get("/{letter_id}", response_model=DeadLetterDetail, summary="One refused message with its payload (ops)")
def get_dead_letter(letter_id: RowId, user: Ops, session: SessionDep) -> DeadLetterDetail:
    """The payload as base64, and as text when it is UTF-8 (JSON messages are)."""
    letter = _letter(session, letter_id)
    raw = dead_letters.payload(letter)
    try:
        text: str | None = raw.decode()
    except UnicodeDecodeError:
        text = None
    return DeadLetterDetail.model_validate(letter.model_dump() | {"payload_text": text})


@router.post("/{letter_id}/replay", response_model=DeadLetterPublic, status_code=202,
             summary="Ask ingest to run a refused message again (ops)")
def replay_dead_letter(letter_id: RowId, user: Ops, session: SessionDep) -> DeadLetterPublic:
    """The next ingest sweep (every few seconds) runs it through the normal path, without the future-timestamp
    check (a `future_ts` message is replayed once its clock is understood); the row then says `replayed` or
    `failed` with why. Refused while a replay runs or after one succeeded (409)."""
    _letter(session, letter_id)
    letter = dead_letters.request_replay(session, letter_id=letter_id)
    audit.record(session, actor=user.username, action="dead_letter.replay", target_type="dead_letter",
                 target_id=str(letter_id), after={"reason": letter.reason, "gateway": letter.gateway_id})
    session.commit()
    session.refresh(letter)
    return DeadLetterPublic.model_validate(letter)
