"""Notifications against real servers: a local SMTP server (aiosmtpd), a stdlib HTTP server receiving webhooks,
SQLite and PostgreSQL; the dispatcher is driven tick by tick with a controllable clock (no sleeps)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.api.app import create_app
from cloud.config import Settings
from cloud.db.alerts import Alert, AlertHistory
from cloud.db.engine import make_engine, session_scope
from cloud.db.notify import Notification as NotificationRow
from cloud.db.notify import NotificationAlert, SuppressionBase
from cloud.ingest.sql_sink import SqlSink, event_work, telemetry_work
from cloud.notify.base import Notification, Notifier, NotifyError
from cloud.notify.dispatcher import Dispatcher, retry_delay_ms
from cloud.notify.email import EmailNotifier
from cloud.notify.metrics import NotifyMetrics
from cloud.notify.plan import Policy
from cloud.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier, signature
from cloud.services import alerts, suppressions
from cloud.services.clock import now_ms
from deploy.services import free_port
from deploy.tls import make_dev_pki
from protocol.messages import AlertEvent, Reading, TelemetryBatch, alert_id

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]  # loopback only

T0 = 1_700_000_000_000  # device time of the alerts (started_at)
SECRET = "webhook-shared-secret"
SMTP_USER, SMTP_PASSWORD = "coldwatch", "smtp-password-1"
ROLLUP_S = 60
RENOTIFY_S = 900


# -- real servers ----------------------------------------------------------------------------------------------


@dataclass
class WebhookServer:
    """Records every POST; answers the statuses in `script` first, then 200."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for headers, body in self.requests if not self.failed(headers)]

    def failed(self, headers: dict[str, str]) -> bool:
        return headers.get("x-test-answered", "200") != "200"


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server_state = WebhookServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                status = server_state.script.pop(0) if server_state.script else 200
                headers = {k.lower(): v for k, v in self.headers.items()} | {"x-test-answered": str(status)}
                server_state.requests.append((headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/coldwatch"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server_state
    httpd.shutdown()
    httpd.server_close()


class MailHandler:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's naming)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), mail))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok)


class Smtp:
    """A real SMTP server on a loopback port, requiring a login (plain text on loopback; with `tls`, STARTTLS
    first and no login before it)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.handler = MailHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                                     auth_required=True, auth_require_tls=tls is not None, tls_context=tls,
                                     require_starttls=tls is not None)

    def start(self) -> Smtp:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return self.handler.messages


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(free_port()).start()
    yield server
    server.stop()


# -- helpers -----------------------------------------------------------------------------------------------------


class Clock:
    """Epoch ms that move only when told."""

    def __init__(self) -> None:
        self.t = now_ms()

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The test's clock, also the one ingest stamps `received_at` with (so roll-up windows follow it)."""
    c = Clock()
    monkeypatch.setattr(alerts, "now_ms", c)
    return c


def mac(i: int) -> str:
    return f"aa:bb:cc:00:06:{i:02x}"


def open_alert(engine: Engine, *, gateway: str = "gw1", sensor: int = 1, kind: str = "temp_high",
               severity: str = "critical", started_at: int = T0, seq: int = 1) -> str:
    """A reading (so the sensor has a profile) and an `open` alert event, through ingest's SQL sink."""
    aid = alert_id(gateway, mac(sensor), kind, started_at)
    SqlSink(engine).apply([
        telemetry_work(TelemetryBatch(gateway=gateway, seq=seq, sent_at=started_at, readings=[
            Reading(sensor=mac(sensor), ts=started_at, profile="chilled", seq=seq, temp_c=6.5)])),
        event_work(AlertEvent(id=aid, gateway=gateway, seq=seq, sensor=mac(sensor), kind=kind,
                              severity=severity, state="open", source="rule", started_at=started_at,  # type: ignore[arg-type]
                              updated_at=started_at, value=6.5, threshold=4.0, reason="above 4.0 C for 30 min")),
    ])
    return aid


def webhook_notifier(server: WebhookServer) -> WebhookNotifier:
    return WebhookNotifier(url=server.url, secret=SECRET, timeout_s=5)


def email_notifier(port: int) -> EmailNotifier:
    return EmailNotifier(host="127.0.0.1", port=port, sender="coldwatch@example.com",
                         recipients=["ops@example.com", "night-shift@example.com"], starttls=False,
                         username=SMTP_USER, password=SMTP_PASSWORD, timeout_s=5)


def dispatcher(engine: Engine, notifiers: list[Notifier], clock: Clock, *, rate: int = 100,
               rollup_s: int = ROLLUP_S) -> Dispatcher:
    return Dispatcher(engine, notifiers, policy=Policy(rollup_ms=rollup_s * 1000, renotify_ms=RENOTIFY_S * 1000,
                                                       rate_per_min=rate), timeout_s=5, clock=clock,
                      metrics=NotifyMetrics())


def metric(d: Dispatcher, name: str, **labels: str) -> float:
    return d.metrics.registry.get_sample_value(f"coldwatch_notify_{name}_total", labels) or 0.0


def alert_ids_of(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted(a["id"] for b in bodies for a in b["alerts"])


# -- tests -------------------------------------------------------------------------------------------------------


def test_critical_alert_gives_one_webhook_and_one_email(engine: Engine, webhook: WebhookServer, smtp: Smtp,
                                                        clock: Clock) -> None:
    aid = open_alert(engine)
    d = dispatcher(engine, [webhook_notifier(webhook), email_notifier(smtp.port)], clock)
    assert d.tick().sent == 0  # the roll-up window is open: the gateway's other alerts may still come
    clock.advance(ROLLUP_S + 1)
    assert d.tick().sent == 2

    [(headers, raw)] = webhook.requests
    body = json.loads(raw)
    assert body["kind"] == "alert" and body["gateway"] == "gw1" and body["held"] == 0
    [alert] = body["alerts"]
    assert (alert["id"], alert["severity"], alert["kind"], alert["sensor_id"], alert["profile"]) == (
        aid, "critical", "temp_high", mac(1), "chilled")
    assert "critical temp_high" in body["subject"]
    assert headers[SIGNATURE_HEADER.lower()] == signature(SECRET, headers[TIMESTAMP_HEADER.lower()], raw)

    [(rcpt, mail)] = smtp.messages
    assert sorted(rcpt) == ["night-shift@example.com", "ops@example.com"]
    assert mail["Subject"].strip() == body["subject"] and mail["From"] == "coldwatch@example.com"
    text = mail.get_content()
    assert aid in text and mac(1) in text and "above 4.0 C for 30 min" in text

    assert metric(d, "sent", channel="webhook", kind="alert") == 1
    assert metric(d, "sent", channel="email", kind="alert") == 1
    clock.advance(60)
    assert d.tick().sent == 0  # sent once
    restarted = dispatcher(engine, [webhook_notifier(webhook), email_notifier(smtp.port)], clock)
    assert restarted.tick().sent == 0  # the records are in SQL: a restart does not re-send
    with Session(engine) as session:
        rows = session.exec(select(NotificationRow)).all()
    assert sorted((r.channel, r.kind, r.attempts, r.last_error) for r in rows) == [
        ("email", "alert", 1, None), ("webhook", "alert", 1, None)]
    assert all(r.sent_at is not None for r in rows)


def test_unacknowledged_critical_is_renotified_acknowledged_is_not(engine: Engine, webhook: WebhookServer,
                                                                   clock: Clock) -> None:
    first = open_alert(engine, gateway="gw1")
    second = open_alert(engine, gateway="gw2")
    warning = open_alert(engine, gateway="gw3", kind="rate_high", severity="warning")
    d = dispatcher(engine, [webhook_notifier(webhook)], clock)
    clock.advance(ROLLUP_S + 1)
    assert d.tick().sent == 3
    clock.advance(RENOTIFY_S - 1)
    assert d.tick().sent == 0  # not yet
    with session_scope(engine) as session:
        alert = session.get(Alert, second)
        assert alert is not None
        alerts.acknowledge(session, alert=alert, actor="staff")
    clock.advance(1)
    assert d.tick().sent == 1
    escalation = webhook.bodies()[-1]
    assert escalation["kind"] == "escalation" and alert_ids_of([escalation]) == [first]
    assert "still unacknowledged" in escalation["subject"]
    clock.advance(RENOTIFY_S)
    assert d.tick().sent == 1  # again, every interval, while unacknowledged
    assert alert_ids_of(webhook.bodies()[-1:]) == [first]
    with session_scope(engine) as session:
        alert = session.get(Alert, first)
        assert alert is not None
        alerts.acknowledge(session, alert=alert, actor="staff")
    clock.advance(RENOTIFY_S * 3)
    assert d.tick().sent == 0
    assert warning not in alert_ids_of([b for b in webhook.bodies() if b["kind"] == "escalation"])
    with Session(engine) as session:
        rounds = session.exec(select(NotificationAlert.round).where(NotificationAlert.alert_id == first)
                              .order_by(col(NotificationAlert.round))).all()
    assert list(rounds) == [0, 1, 2]


def test_suppression_window_keeps_and_marks_the_alert_without_notifying(engine: Engine,
                                                                        webhook: WebhookServer, clock: Clock) -> None:
    with session_scope(engine) as session:
        window = suppressions.create(session, data=SuppressionBase(
            reason="defrost cycle", start_at=T0 - 60_000, end_at=T0 + 3_600_000, gateway_id="gw1",
            profile="chilled", kinds=["temp_high"]), actor="staff")
        window_id = window.id
    suppressed = open_alert(engine, sensor=1)
    other_kind = open_alert(engine, sensor=2, kind="sensor_silent", severity="warning")
    after_window = open_alert(engine, sensor=3, started_at=T0 + 3_600_000)
    open_alert(engine, sensor=4, kind="battery_low", severity="info")  # info is never notified
    d = dispatcher(engine, [webhook_notifier(webhook)], clock)
    clock.advance(ROLLUP_S + 1)
    result = d.tick()
    assert (result.sent, result.suppressed) == (1, 1)
    assert alert_ids_of(webhook.bodies()) == sorted([other_kind, after_window])
    assert metric(d, "suppressed", channel="webhook") == 1
    with Session(engine) as session:
        alert = session.get(Alert, suppressed)
        assert alert is not None and alert.status == "open"  # kept, for staff to review
        marks = session.exec(select(AlertHistory.action, AlertHistory.detail)
                             .where(AlertHistory.alert_id == suppressed)).all()
        assert ("suppressed", {"suppression": window_id, "reason": "defrost cycle"}) in marks
        assert window_id is not None
        assert suppressions.suppressed_alert_ids(session, window_id=window_id) == [suppressed]
    clock.advance(RENOTIFY_S + 1)
    assert d.tick().sent == 1  # the critical one outside the window escalates; the suppressed one never
    assert alert_ids_of(webhook.bodies()[-1:]) == [after_window]


def test_burst_on_one_gateway_is_one_incident(engine: Engine, webhook: WebhookServer, clock: Clock) -> None:
    burst = [open_alert(engine, gateway="gw1", sensor=i, seq=i, started_at=T0 + i * 1000) for i in range(1, 7)]
    single = open_alert(engine, gateway="gw2", sensor=9)
    d = dispatcher(engine, [webhook_notifier(webhook)], clock)
    clock.advance(ROLLUP_S + 1)
    assert d.tick().sent == 2
    by_gateway = {b["gateway"]: b for b in webhook.bodies()}
    assert by_gateway["gw1"]["kind"] == "incident" and alert_ids_of([by_gateway["gw1"]]) == sorted(burst)
    assert "6 alerts" in by_gateway["gw1"]["subject"]
    assert by_gateway["gw2"]["kind"] == "alert" and alert_ids_of([by_gateway["gw2"]]) == [single]
    later = open_alert(engine, gateway="gw1", sensor=20, seq=20, started_at=T0 + 99_000)
    clock.advance(1)
    assert d.tick().sent == 0  # a later alert opens a roll-up window of its own
    clock.advance(ROLLUP_S)
    assert d.tick().sent == 1
    assert alert_ids_of(webhook.bodies()[-1:]) == [later]


def test_rate_limit_holds_back_and_summarises(engine: Engine, webhook: WebhookServer, clock: Clock) -> None:
    first = [open_alert(engine, gateway=f"gw{i}", sensor=i) for i in range(1, 6)]
    d = dispatcher(engine, [webhook_notifier(webhook)], clock, rate=2, rollup_s=0)
    result = d.tick()
    assert (result.sent, result.held) == (2, 4)  # one alert, and one summary of the 4 held back
    alert_msg, summary = webhook.bodies()
    assert alert_msg["kind"] == "alert" and summary["kind"] == "summary" and summary["held"] == 4
    assert alert_ids_of([alert_msg, summary]) == sorted(first)  # nothing lost
    assert "4 notifications held back" in summary["subject"]
    assert metric(d, "rate_limited", channel="webhook") == 4
    more = [open_alert(engine, gateway=f"gw{i}", sensor=i, started_at=T0 + 5000) for i in range(6, 9)]
    clock.advance(30)
    assert d.tick().sent == 0  # the minute's budget is spent; they wait
    clock.advance(31)
    result = d.tick()
    assert (result.sent, result.held) == (2, 2)
    assert alert_ids_of(webhook.bodies()) == sorted(first + more)
    with Session(engine) as session:
        rows = session.exec(select(NotificationRow)).all()
    assert all(r.sent_at is not None for r in rows)  # the held ones count as sent with their summary
    assert sum(1 for r in rows if r.summary_id is not None) == 6


def test_failing_channels_are_retried_counted_and_lose_nothing(engine: Engine, webhook: WebhookServer,
                                                               clock: Clock) -> None:
    aid = open_alert(engine)
    dead_port = free_port()  # nothing listens here yet
    webhook.script = [500, 500]
    d = dispatcher(engine, [webhook_notifier(webhook), email_notifier(dead_port)], clock, rollup_s=0)
    result = d.tick()
    assert (result.sent, result.failed) == (0, 2)
    with Session(engine) as session:
        rows = {r.channel: r for r in session.exec(select(NotificationRow)).all()}
    assert rows["webhook"].last_error == "answered HTTP 500" and rows["webhook"].sent_at is None
    assert "ConnectionRefusedError" in (rows["email"].last_error or "") and rows["email"].sent_at is None
    assert SMTP_PASSWORD not in (rows["email"].last_error or "")
    assert (metric(d, "failed", channel="webhook"), metric(d, "failed", channel="email")) == (1, 1)
    clock.advance(retry_delay_ms(1) / 1000 - 1)
    assert d.tick().failed == 0  # backing off: no attempt yet
    clock.advance(1)
    assert (d.tick().failed, len(webhook.requests)) == (2, 2)  # webhook answers 500 again, SMTP still dead
    smtp = Smtp(dead_port).start()
    try:
        clock.advance(retry_delay_ms(2) / 1000)
        result = d.tick()
        assert (result.sent, result.failed) == (2, 0)
        assert [alert_ids_of([b]) for b in webhook.bodies()] == [[aid]]
        assert len(smtp.messages) == 1
    finally:
        smtp.stop()
    with Session(engine) as session:
        rows = {r.channel: r for r in session.exec(select(NotificationRow)).all()}
    assert (rows["webhook"].attempts, rows["email"].attempts) == (3, 3)
    assert rows["webhook"].last_error is None and rows["email"].sent_at is not None
    assert metric(d, "sent", channel="email", kind="alert") == 1


def test_two_dispatchers_send_once(database_url: str, engine: Engine, webhook: WebhookServer, clock: Clock) -> None:
    ids = [open_alert(engine, gateway=f"gw{i}", sensor=i) for i in range(1, 5)]
    engines = [make_engine(database_url) for _ in range(2)]
    try:
        pair = [dispatcher(e, [webhook_notifier(webhook)], clock, rollup_s=0) for e in engines]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(d: Dispatcher) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    d.tick()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(d,)) for d in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        for e in engines:
            e.dispose()
    assert alert_ids_of(webhook.bodies()) == sorted(ids)  # each exactly once


def test_suppression_api_roles_audit_and_metrics(database_url: str, webhook: WebhookServer) -> None:
    settings = Settings(database_url=database_url, admin_password="admin-password-1",
                        notify_webhook_url=webhook.url, notify_interval_s=3600)
    with TestClient(create_app(settings)) as api:
        def login(user: str, password: str) -> dict[str, str]:
            r = api.post("/api/v1/auth/login", json={"username": user, "password": password})
            assert r.status_code == 200, r.text
            api.cookies.clear()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        admin = login("admin", "admin-password-1")
        for role in ("viewer", "staff"):
            assert api.post("/api/v1/users", headers=admin, json={"username": role, "role": role,
                                                                   "password": f"{role}-password"}).status_code == 201
        viewer, staff = login("viewer", "viewer-password"), login("staff", "staff-password")
        body = {"reason": "loading at dock 3", "start_at": T0, "end_at": T0 + 1_800_000, "gateway_id": "gw1",
                "kinds": ["temp_high", "door_open"]}
        assert api.post("/api/v1/suppressions", json=body).status_code == 401
        assert api.post("/api/v1/suppressions", headers=viewer, json=body).status_code == 403
        assert api.post("/api/v1/suppressions", headers=staff, json=body | {"gateway_id": None}).status_code == 422
        assert api.post("/api/v1/suppressions", headers=staff, json=body | {"end_at": T0}).status_code == 422
        assert api.post("/api/v1/suppressions", headers=staff, json=body | {"kinds": ["Bad Kind"]}).status_code == 422
        created = api.post("/api/v1/suppressions", headers=staff, json=body)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert created.json()["kinds"] == ["door_open", "temp_high"] and created.json()["created_by"] == "staff"
        listed = api.get("/api/v1/suppressions", headers=viewer, params={"active_at": T0 + 60_000}).json()
        assert [w["id"] for w in listed] == [sid]
        assert api.get("/api/v1/suppressions", headers=viewer, params={"active_at": T0 - 1}).json() == []
        assert api.get(f"/api/v1/suppressions/{sid}", headers=viewer).json()["suppressed_alerts"] == []
        assert api.delete(f"/api/v1/suppressions/{sid}", headers=viewer).status_code == 403
        assert api.delete(f"/api/v1/suppressions/{sid}", headers=staff).status_code == 204
        assert api.delete(f"/api/v1/suppressions/{sid}", headers=staff).status_code == 409
        assert api.delete("/api/v1/suppressions/999999", headers=staff).status_code == 404
        assert api.get("/api/v1/suppressions", headers=viewer).json() == []
        assert len(api.get("/api/v1/suppressions", headers=viewer, params={"include_deleted": True}).json()) == 1
        audit = api.get("/api/v1/audit", headers=admin, params={"target_type": "suppression"}).json()
        assert sorted(e["action"] for e in audit) == ["suppression.create", "suppression.delete"]
        assert all(e["actor"] == "staff" and e["target_id"] == str(sid) for e in audit)
        assert api.get("/api/v1/notifications", headers=viewer).json() == []
        assert api.get("/api/v1/notifications", headers=viewer, params={"pending": True}).status_code == 200
        text = api.get("/metrics", headers=admin).text  # the dispatcher runs in this app (a webhook is configured)
        for name in ("sent", "failed", "suppressed", "rate_limited"):
            assert f"coldwatch_notify_{name}" in text


def test_email_starttls_verifies_the_server_and_logs_in_over_tls(tmp_path: Path) -> None:
    server_files, _ = make_dev_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_files.cert, server_files.key)
    server = Smtp(free_port(), tls=context).start()
    try:
        message = Notification(id=7, kind="alert", subject="[coldwatch] over TLS", created_at=T0)

        def notifier(ca_file: str | None) -> EmailNotifier:
            return EmailNotifier(host="127.0.0.1", port=server.port, sender="coldwatch@example.com",
                                 recipients=["ops@example.com"], starttls=True, username=SMTP_USER,
                                 password=SMTP_PASSWORD, timeout_s=5, ca_file=ca_file)

        with pytest.raises(NotifyError, match="CERTIFICATE_VERIFY_FAILED"):
            notifier(None).send(message)  # the dev CA is not in the system's trust store
        assert server.messages == []
        notifier(str(server_files.ca)).send(message)
        [(rcpt, mail)] = server.messages
        assert rcpt == ["ops@example.com"] and mail["Subject"] == "[coldwatch] over TLS"
    finally:
        server.stop()

