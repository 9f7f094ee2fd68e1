"""What to notify on one channel, decided in SQL under the channel's lock: new alerts (suppressed, or rolled up
per gateway into incidents), escalations of critical alerts still open, and rate-limit summaries."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cloud import i18n
from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import session_scope
from cloud.db.notify import Notification, NotificationAlert, NotifyChannel
from cloud.notify.base import subject, summary_subject
from cloud.services import suppressions

log = logging.getLogger(__name__)

NOTIFIED_SEVERITIES: Final = ("warning", "critical")
BACKFILL_MS: Final = 3_600_000  # a channel's first start notifies alerts received in the hour before, no older
RATE_WINDOW_MS: Final = 60_000
_SNAPSHOT: Final = ("id", "gateway_id", "sensor_id", "kind", "severity", "started_at", "value", "peak",
                    "threshold", "reason", "profile", "status")


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Noise controls: roll-up window, re-notification interval, messages per minute (0 disables each)."""

    rollup_ms: int
    renotify_ms: int
    rate_per_min: int


@dataclass(slots=True)
class Planned:
    """What one planning pass stored."""

    notifications: int = 0
    suppressed: int = 0


def ensure_channel(engine: Engine, *, name: str, now: int) -> None:
    """Create the channel's lock row unless it exists (two processes racing: one insert wins)."""
    with Session(engine) as session:
        if session.get(NotifyChannel, name) is not None:
            return
    try:
        with session_scope(engine) as session:
            session.add(NotifyChannel(name=name, created_at=now))
    except IntegrityError:
        pass


def lock_channel(session: Session, *, name: str) -> NotifyChannel:
    """Lock the channel row for this transaction (SQLite: the writer lock of BEGIN IMMEDIATE already holds)."""
    channel = session.get(NotifyChannel, name, with_for_update=True)
    if channel is None:
        raise LookupError(f"notify channel {name!r} has no row; call ensure_channel first")
    return channel


def snapshot(alert: Alert) -> dict[str, Any]:
    """An alert as a notification lists it."""
    return {name: getattr(alert, name) for name in _SNAPSHOT}


def _subject(kind: str, gateway_id: str, alerts: Sequence[Alert]) -> str:
    """The stored subject (webhooks send it as it is): English, from the same catalogue as e-mails' subjects."""
    with i18n.activate(i18n.DEFAULT):
        return subject(kind, gateway_id, [snapshot(a) for a in alerts])


def _english(write: Callable[..., str], *args: Any) -> str:
    with i18n.activate(i18n.DEFAULT):
        return write(*args)


def _store(session: Session, *, channel: str, kind: str, gateway_id: str, alerts: Sequence[Alert], now: int,
           link_kind: str, rounds: dict[str, int] | None = None) -> Notification:
    row = Notification(channel=channel, kind=kind, gateway_id=gateway_id, alert_ids=[a.id for a in alerts],
                       subject=_subject(kind, gateway_id, alerts), payload={"alerts": [snapshot(a) for a in alerts]},
                       created_at=now, next_attempt_at=now)
    session.add(row)
    session.flush()
    for a in alerts:
        session.add(NotificationAlert(alert_id=a.id, channel=channel, kind=link_kind,
                                      round=(rounds or {}).get(a.id, 0), notification_id=row.id, at=now))
    log.info("notification planned channel=%s notification=%d kind=%s gateway=%s alerts=%s", channel, row.id, kind,
             gateway_id, ",".join(row.alert_ids))
    return row


def plan(session: Session, *, channel: NotifyChannel, now: int, policy: Policy) -> Planned:
    """Store the notifications due on `channel` at `now` (the caller holds the channel lock)."""
    planned = Planned()
    _plan_opened(session, channel=channel, now=now, policy=policy, planned=planned)
    if policy.renotify_ms:
        _plan_escalations(session, channel=channel.name, now=now, policy=policy, planned=planned)
    return planned


def _plan_opened(session: Session, *, channel: NotifyChannel, now: int, policy: Policy, planned: Planned) -> None:
    done = select(NotificationAlert.id).where(NotificationAlert.alert_id == Alert.id,
                                              NotificationAlert.channel == channel.name,
                                              col(NotificationAlert.kind).in_(("opened", "suppressed")))
    candidates = session.exec(select(Alert).where(
        Alert.status == "open", col(Alert.severity).in_(NOTIFIED_SEVERITIES),
        Alert.received_at >= channel.created_at - BACKFILL_MS, ~done.exists(),
    ).order_by(col(Alert.gateway_id), col(Alert.received_at), col(Alert.id))).all()
    covered = suppressions.covering(session, alerts=candidates)
    waiting: dict[str, list[Alert]] = defaultdict(list)
    for alert in candidates:
        window = covered.get(alert.id)
        if window is None:
            waiting[alert.gateway_id].append(alert)
            continue
        shown = session.exec(select(NotificationAlert.id).where(NotificationAlert.alert_id == alert.id,
                                                                NotificationAlert.kind == "suppressed")).first()
        if shown is None:  # the alert's history shows it once, whatever the number of channels
            session.add(AlertHistory(alert_id=alert.id, at=now, actor="notify", action="suppressed",
                                     detail={"suppression": window.id, "reason": window.reason}))
        session.add(NotificationAlert(alert_id=alert.id, channel=channel.name, kind="suppressed",
                                      suppression_id=window.id, at=now))
        planned.suppressed += 1
        log.info("alert suppressed channel=%s alert=%s gateway=%s sensor=%s kind=%s suppression=%d", channel.name,
                 alert.id, alert.gateway_id, alert.sensor_id, alert.kind, window.id)
    for gateway_id, alerts in waiting.items():
        while alerts:
            first = alerts[0]
            if now < first.received_at + policy.rollup_ms:
                break  # the roll-up window is still open: more of this gateway's alerts may join
            cutoff = first.received_at + policy.rollup_ms
            group = [first] + [a for a in alerts[1:] if a.received_at < cutoff]
            alerts = alerts[len(group):]
            _store(session, channel=channel.name, kind="alert" if len(group) == 1 else "incident",
                   gateway_id=gateway_id, alerts=group, now=now, link_kind="opened")
            planned.notifications += 1


def _plan_escalations(session: Session, *, channel: str, now: int, policy: Policy, planned: Planned) -> None:
    rows = session.exec(select(NotificationAlert.alert_id, NotificationAlert.round, Notification.sent_at).join(
        Notification, col(NotificationAlert.notification_id) == col(Notification.id)).join(
        Alert, col(Alert.id) == col(NotificationAlert.alert_id)).where(
        NotificationAlert.channel == channel, col(NotificationAlert.kind).in_(("opened", "escalation")),
        Alert.status == "open", Alert.severity == "critical")).all()
    latest: dict[str, tuple[int, int | None]] = {}
    for alert_id, round_, sent_at in rows:
        last_round, last_sent = latest.get(alert_id, (-1, 0))
        if sent_at is None or last_sent is None:  # one still unsent: nothing new until it is out
            latest[alert_id] = (max(last_round, round_), None)
        else:
            latest[alert_id] = (max(last_round, round_), max(last_sent, sent_at))
    due = {a: r + 1 for a, (r, sent) in latest.items() if sent is not None and sent + policy.renotify_ms <= now}
    if not due:
        return
    alerts = session.exec(select(Alert).where(col(Alert.id).in_(sorted(due)))
                          .order_by(col(Alert.gateway_id), col(Alert.started_at), col(Alert.id))).all()
    covered = suppressions.covering(session, alerts=alerts)
    by_gateway: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if alert.id not in covered:
            by_gateway[alert.gateway_id].append(alert)
    for gateway_id, group in by_gateway.items():
        _store(session, channel=channel, kind="escalation", gateway_id=gateway_id, alerts=group, now=now,
               link_kind="escalation", rounds=due)
        planned.notifications += 1


def due_rows(session: Session, *, channel: str, now: int) -> list[Notification]:
    """Unsent, unclaimed (or lease expired), not folded into a summary, and due by `now`; oldest first."""
    return list(session.exec(select(Notification).where(
        Notification.channel == channel, col(Notification.sent_at).is_(None), col(Notification.summary_id).is_(None),
        Notification.next_attempt_at <= now,
        or_(col(Notification.claimed_until).is_(None), col(Notification.claimed_until) <= now),
    ).order_by(col(Notification.id))).all())


def rate_budget(session: Session, *, channel: str, now: int, rate_per_min: int) -> int:
    """Messages the channel may still send in the last minute's window (sent or in flight count)."""
    sent = session.exec(select(func.count()).select_from(Notification).where(
        Notification.channel == channel, col(Notification.summary_id).is_(None),
        col(Notification.sent_at) >= now - RATE_WINDOW_MS)).one()
    in_flight = session.exec(select(func.count()).select_from(Notification).where(
        Notification.channel == channel, col(Notification.sent_at).is_(None),
        col(Notification.claimed_until) > now)).one()
    return rate_per_min - int(sent) - int(in_flight)


def fold(session: Session, *, channel: str, held: Sequence[Notification], now: int) -> tuple[Notification, int]:
    """One `summary` row for the held notifications (nested summaries flattened); returns it and how many
    original notifications it newly holds back."""
    alerts: dict[str, dict[str, Any]] = {}
    total, new = 0, 0
    for row in held:
        for a in row.payload.get("alerts", []):
            alerts.setdefault(a["id"], a)
        if row.kind == "summary":
            total += int(row.payload.get("held", 0))
        else:
            total, new = total + 1, new + 1
    summary = Notification(channel=channel, kind="summary", gateway_id=None, alert_ids=sorted(alerts),
                           subject=_english(summary_subject, total, len(alerts)),
                           payload={"alerts": list(alerts.values()), "held": total}, created_at=now,
                           next_attempt_at=now)
    session.add(summary)
    session.flush()
    held_ids = [row.id for row in held]
    session.exec(update(Notification).where(col(Notification.summary_id).in_(held_ids))
                 .values(summary_id=summary.id))
    for row in held:
        row.summary_id, row.claimed_until = summary.id, None
        session.add(row)
    return summary, new
