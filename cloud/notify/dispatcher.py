"""The dispatcher: per channel, plan (cloud/notify/plan.py), claim due rows in a transaction, send, record the
result; retries with backoff; a background thread of the API process (docs/decisions.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from cloud.config import Settings
from cloud.db.engine import session_scope
from cloud.db.notify import Notification as NotificationRow
from cloud.notify import configured
from cloud.notify.base import Notification, Notifier, NotifyError
from cloud.notify.metrics import NotifyMetrics
from cloud.notify.plan import Policy, due_rows, ensure_channel, fold, lock_channel, plan, rate_budget
from cloud.periodic import PeriodicThread
from cloud.services.clock import now_ms

log = logging.getLogger(__name__)

RETRY_BASE_MS: Final = 10_000
RETRY_MAX_MS: Final = 600_000


def retry_delay_ms(attempts: int) -> int:
    """10 s after the first failure, doubling, at most 10 min (a channel down for a day is retried forever)."""
    return int(min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** min(max(attempts - 1, 0), 20)))


@dataclass(slots=True)
class TickResult:
    """What one tick did, over all channels."""

    planned: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    held: int = 0


class Dispatcher:
    """`tick()` once (tests drive it with their own clock), or `start()` a thread ticking every `interval_s`."""

    def __init__(self, engine: Engine, notifiers: Sequence[Notifier], *, policy: Policy, timeout_s: float,
                 metrics: NotifyMetrics | None = None, clock: Callable[[], int] = now_ms,
                 interval_s: float = 5.0) -> None:
        self.engine = engine
        self.notifiers = list(notifiers)
        self.policy = policy
        self.timeout_s = timeout_s
        self.metrics = metrics or NotifyMetrics()
        self.clock = clock
        self.interval_s = interval_s
        self._thread = PeriodicThread("notify-dispatcher", interval_s, self.tick, join_s=60.0)
        self._ready: set[str] = set()

    def tick(self) -> TickResult:
        """Plan, claim and send on every channel; a channel's failure is logged and never stops the others."""
        result = TickResult()
        for notifier in self.notifiers:
            try:
                self._tick_channel(notifier, result)
            except Exception:  # the database away, a bug: logged; the rows stay and the next tick retries
                log.exception("notify tick failed channel=%s; retrying next tick", notifier.name)
        return result

    def _tick_channel(self, notifier: Notifier, result: TickResult) -> None:
        name = notifier.name
        if name not in self._ready:
            ensure_channel(self.engine, name=name, now=self.clock())
            self._ready.add(name)
        with session_scope(self.engine) as session:
            planned = plan(session, channel=lock_channel(session, name=name), now=self.clock(), policy=self.policy)
        result.planned += planned.notifications
        result.suppressed += planned.suppressed
        if planned.suppressed:
            self.metrics.suppressed.labels(name).inc(planned.suppressed)
        claimed = self._claim(name, result)
        for index, row in enumerate(claimed):
            if not self._deliver(notifier, row, result):
                self._release(claimed[index + 1:], next_attempt_at=self.clock() + retry_delay_ms(row.attempts))
                break

    def _claim(self, name: str, result: TickResult) -> list[NotificationRow]:
        """Due rows, within the rate limit (the excess folded into one summary), leased to this process."""
        now = self.clock()
        with session_scope(self.engine) as session:
            lock_channel(session, name=name)
            due = due_rows(session, channel=name, now=now)
            self.metrics.pending.labels(name).set(len(due))
            if not due:
                return []
            if self.policy.rate_per_min:
                budget = rate_budget(session, channel=name, now=now, rate_per_min=self.policy.rate_per_min)
                if budget <= 0:
                    return []
                if len(due) > budget:
                    summary, held = fold(session, channel=name, held=due[budget - 1:], now=now)
                    log.warning("rate limit reached channel=%s limit_per_min=%d held=%d summary=%d", name,
                                self.policy.rate_per_min, held, summary.id)
                    self.metrics.rate_limited.labels(name).inc(held)
                    result.held += held
                    due = [*due[:budget - 1], summary]
            lease_ms = int((len(due) * self.timeout_s * 2 + 30) * 1000)
            for row in due:
                row.claimed_until = now + lease_ms
                session.add(row)
        return due

    def _deliver(self, notifier: Notifier, row: NotificationRow, result: TickResult) -> bool:
        """Send one row; True when sent. Failure: counted, logged with the reason, retried after a backoff."""
        assert row.id is not None
        message = Notification(id=row.id, kind=row.kind, subject=row.subject, created_at=row.created_at,
                               gateway_id=row.gateway_id, alerts=list(row.payload.get("alerts", [])),
                               held=int(row.payload.get("held", 0)))
        try:
            notifier.send(message)
        except NotifyError as exc:
            reason = exc.reason
        except Exception as exc:  # a bug in a channel must not stop the dispatcher
            log.exception("notifier raised channel=%s notification=%d", notifier.name, row.id)
            reason = f"internal error: {type(exc).__name__}"
        else:
            self._record(row, sent=True, reason=None)
            self.metrics.sent.labels(notifier.name, row.kind).inc()
            result.sent += 1
            log.info("notification sent channel=%s notification=%d kind=%s gateway=%s alerts=%s attempt=%d",
                     notifier.name, row.id, row.kind, row.gateway_id, ",".join(row.alert_ids), row.attempts + 1)
            return True
        self._record(row, sent=False, reason=reason)
        self.metrics.failed.labels(notifier.name).inc()
        result.failed += 1
        log.warning("notification failed channel=%s notification=%d kind=%s gateway=%s alerts=%s attempt=%d "
                    "retry_in_s=%d reason=%s", notifier.name, row.id, row.kind, row.gateway_id,
                    ",".join(row.alert_ids), row.attempts, retry_delay_ms(row.attempts) // 1000, reason)
        return False

    def _record(self, row: NotificationRow, *, sent: bool, reason: str | None) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            stored = session.get(NotificationRow, row.id, with_for_update=True)
            if stored is None:
                return
            stored.attempts += 1
            stored.claimed_until = None
            if sent:
                stored.sent_at, stored.last_error = now, None
                session.exec(update(NotificationRow).where(
                    col(NotificationRow.summary_id) == stored.id).values(sent_at=now))
            else:
                stored.last_error = (reason or "")[:500]
                stored.next_attempt_at = now + retry_delay_ms(stored.attempts)
            session.add(stored)
        row.attempts, row.sent_at, row.last_error = stored.attempts, stored.sent_at, stored.last_error

    def _release(self, rows: Sequence[NotificationRow], *, next_attempt_at: int) -> None:
        """The channel just failed: give the rest of the claim back, due when the failed one is retried."""
        if not rows:
            return
        with session_scope(self.engine) as session:
            session.exec(update(NotificationRow).where(
                col(NotificationRow.id).in_([r.id for r in rows])).values(claimed_until=None,
                                                                          next_attempt_at=next_attempt_at))

    def start(self) -> Dispatcher:
        """Run in a daemon thread."""
        log.info("notify dispatcher channels=%s", ",".join(n.name for n in self.notifiers))
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (waits for the current tick), then close the channels."""
        self._thread.stop()
        for notifier in self.notifiers:
            close = getattr(notifier, "close", None)
            if close is not None:
                close()


def policy_from(settings: Settings) -> Policy:
    """The noise-control policy the settings ask for."""
    return Policy(rollup_ms=int(settings.notify_rollup_s * 1000), renotify_ms=settings.notify_renotify_s * 1000,
                  rate_per_min=settings.notify_rate_per_min)


def start_in_app(settings: Settings, engine: Engine, registry: CollectorRegistry) -> Callable[[], None]:
    """With at least one channel configured, start the dispatcher thread; returns its stop function."""
    notifiers = configured(settings)
    if not notifiers:
        log.info("notifications off: no channel configured (COLDWATCH_NOTIFY_WEBHOOK_URL, COLDWATCH_SMTP_HOST)")
        return lambda: None
    dispatcher = Dispatcher(engine, notifiers, policy=policy_from(settings), timeout_s=settings.notify_timeout_s,
                            metrics=NotifyMetrics(registry=registry), interval_s=settings.notify_interval_s)
    return dispatcher.start().stop
