"""What a failed write means for the messages behind it: retry later (with backoff) or refuse them for good.

A worker holds a batch unacknowledged while a store is down, so nothing accepted is lost; it refuses only what
the data itself causes, so one message can never stall it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError, StatementError

from cloud.services.dead_letters import Refused
from cloud.tsdb.influx import InfluxRejected

BACKOFF_START_S: Final = 0.5
BACKOFF_MAX_S: Final = 10.0


class Backoff:
    """Exponential delay between retries, from BACKOFF_START_S up to BACKOFF_MAX_S."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._delay = 0.0
        self.next_at = 0.0

    def failed(self) -> float:
        """Note a failure; returns the delay before the next attempt."""
        self._delay = min(BACKOFF_MAX_S, max(BACKOFF_START_S, self._delay * 2))
        self.next_at = self._clock() + self._delay
        return self._delay

    def reset(self) -> None:
        """Note a success: the next attempt may happen at once."""
        self._delay = 0.0
        self.next_at = 0.0

    def ready(self) -> bool:
        """Whether an attempt is due."""
        return self._clock() >= self.next_at


def caused_by_data(exc: BaseException) -> bool:
    """Whether a SQL failure comes from the data being written (retrying cannot help) rather than from the
    database being unreachable, locked or racing another worker (retrying will).

    A value the driver or the column cannot hold (`DataError`, an `OverflowError` from sqlite3's binding) and
    any non-database exception (a bug met by one shape of message) are the data's; the rest is transient.
    """
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # raised while preparing the statement's parameters, before the database saw it
    return not isinstance(exc, SQLAlchemyError)


def refused_for_good(exc: InfluxRejected) -> bool:
    """Whether InfluxDB will refuse these points whatever happens (so the message is acked and counted).

    400 means the request itself is at fault (unparsable, beyond the retention policy) — except a field
    type conflict: that is a schema clash for the whole shard, caused by another writer; every later batch
    would be refused too, so the data is held until an operator resolves it. 401/403/404 (credentials,
    missing database) are held likewise.
    """
    return exc.status == 400 and "field type conflict" not in exc.message


def short_reason(exc: BaseException) -> str:
    """An exception as one short line for logs and dead letters: its type and the first line of its text."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def cleaned(refused: Refused) -> Refused:
    """The texts of a dead letter without what a SQL text column refuses (NUL, lone surrogates)."""
    def text(value: str) -> str:
        return value.replace("\x00", "").encode("utf-8", "replace").decode()

    return Refused(text(refused.topic), text(refused.gateway_id) if refused.gateway_id else None,
                   text(refused.reason), text(refused.detail), refused.payload)
