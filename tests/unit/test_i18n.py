"""Languages: Accept-Language negotiation, the user's choice first, complete catalogues (every string marked for
translation in the cloud's Python and the dashboard's templates has a Chinese translation), pages, wording,
e-mails and the PDF in zh-CN, and the CJK font parsed once for every PDF, on any thread."""

from __future__ import annotations

import tempfile
import threading
import time
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from fpdf import FPDF

import cloud.report_pdf as report_pdf_module
from cloud import i18n
from cloud.api.app import create_app
from cloud.api.routes.auth import LanguageIn
from cloud.config import ConfigError, Settings, load_settings
from cloud.db.users import LANGUAGES
from cloud.notify.base import Notification
from cloud.notify.email import EmailNotifier
from cloud.report_pdf import report_pdf, unicode_font
from cloud.ui import wording
from tests.unit.test_cloud_ui import _alert, _pdf_text_codes, _report

ROOT = Path(__file__).resolve().parents[2]
CJK = range(0x4E00, 0xA000)


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("", "en"), ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"), ("zh", "zh_CN"),
    ("zh-Hans", "zh_CN"), ("zh-hans-cn", "zh_CN"), ("ZH_cn", "zh_CN"), ("fr-FR,zh-CN;q=0.5,en;q=0.4", "zh_CN"),
    ("en;q=0.5,zh-CN;q=0.8", "zh_CN"), ("zh-CN;q=0,en", "en"), ("zh-TW", "en"), ("de, *;q=0.1", "en"),
    ("zh-CN;q=abc,en;q=0.2", "en"), ("x" * 5000, "en"),
])
def test_the_browsers_language_is_negotiated(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_the_users_choice_comes_before_the_browsers() -> None:
    assert i18n.choose("zh_CN", "en-US") == "zh_CN"
    assert i18n.choose("en", "zh-CN") == "en"
    assert i18n.choose(None, "zh-CN") == "zh_CN"
    assert i18n.choose("klingon", None) == "en"
    assert i18n.supported("zh-CN") == "zh_CN" and i18n.supported("fr") is None


def test_every_language_is_offered_everywhere() -> None:
    assert tuple(i18n.NAMES) == LANGUAGES
    literal, none = typing.get_args(LanguageIn.model_fields["language"].annotation)
    assert set(typing.get_args(literal)) == set(LANGUAGES) and none is type(None)
    assert load_settings({"COLDWATCH_NOTIFY_EMAIL_LANGUAGE": "zh-CN"}).notify_email_language == "zh_CN"
    with pytest.raises(ConfigError):
        load_settings({"COLDWATCH_NOTIFY_EMAIL_LANGUAGE": "fr"})
    for lang in LANGUAGES[1:]:
        assert i18n.catalogue_path(lang).is_file()


def _marked() -> set[str]:
    """Every message id marked in the source now (not just in messages.pot, which `make messages` rewrites)."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)  # type: ignore[no-untyped-call]
    ids: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options_map):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("lang", LANGUAGES[1:])
def test_every_marked_string_is_translated(lang: str) -> None:
    marked = _marked()
    assert len(marked) > 300
    with i18n.catalogue_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang)
    translated = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings):
            translated[key] = message
    missing = sorted(marked - set(translated))
    assert not missing, f"untranslated in {lang} (run `make messages`, then translate): {missing[:20]}"
    problems = [(message.id, errors) for message, errors in catalog.check()]
    assert not problems, problems  # placeholders (%(name)s) the same in both languages, one plural form for zh
    with (i18n.LOCALE_DIR / "messages.pot").open("rb") as f:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
    behind = sorted(marked - template)[:5]
    assert not behind, f"messages.pot is behind the source: run `make messages` ({behind})"


def test_the_active_language_belongs_to_its_context() -> None:
    seen: dict[str, str] = {}

    def other() -> None:
        seen["thread"] = i18n.gettext("Alerts")

    with i18n.activate("zh_CN"):
        assert i18n.gettext("Alerts") == "告警"
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen["thread"] == "Alerts"  # a new thread starts in English, whatever its starter's language
    assert i18n.gettext("Alerts") == "Alerts"


def test_wording_in_chinese_keeps_utc_and_values() -> None:
    ms = int(datetime(2025, 1, 31, 12, 0, 5, tzinfo=UTC).timestamp() * 1000)
    assert wording.utc(ms) == "2025-01-31 12:00:05 UTC"  # English unchanged
    assert wording.age(0, 3 * 3_600_000) == "3 h ago"
    with i18n.activate("zh_CN"):
        assert wording.utc(ms) == "2025年1月31日 12:00:05 UTC"
        assert wording.age(0, 3 * 3_600_000) == "3 小时前" and wording.age(None, 0) == "从未"
        assert wording.kind_title("temp_out_of_range") == "温度超出允许范围"
        assert wording.kind_title("something_new") == "Something new"
        assert wording.decimal(3.456, 1) == "3.5" and wording.word("acknowledged") == "已确认"
        reason = wording.reason_in_words(_alert())
        assert "由硬性规则" in reason and "4 °C" in reason and "chilled" in reason and "6.2 °C" in reason
        assert wording.ui_text()["Acknowledged."] == "已确认。"
    assert wording.ui_text() == {}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(influx_url="http://127.0.0.1:9", influx_db="none", admin_password="admin-password-1",
                            database_url=f"sqlite:///{tmp}/i18n.db")
        with TestClient(create_app(settings)) as c:
            yield c


def test_pages_follow_the_browser_then_the_users_choice(client: TestClient) -> None:
    login = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-CN">' in login.text and "用户名" in login.text
    assert "User name" in client.get("/login").text
    anonymous = client.post("/ui/language", data={"language": "zh_CN", "next": "/ui/fleet"}, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}).raise_for_status()
    try:
        assert ">Alerts</h1>" in client.get("/ui/alerts").text
        assert ">告警</h1>" in client.get("/ui/alerts", headers={"Accept-Language": "zh-CN"}).text
        # the header's selector: a form post (the browser guard checks its Origin like any other)
        chosen = client.post("/ui/language", data={"language": "zh_CN", "next": "/ui/fleet"},
                             headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert chosen.status_code == 303 and chosen.headers["location"] == "/ui/fleet"
        assert client.get("/api/v1/auth/me").json()["language"] == "zh_CN"
        fleet = client.get("/ui/fleet", headers={"Accept-Language": "en"}).text
        assert "<h1>设备</h1>" in fleet and "还没有网关连接。" in fleet
        assert client.post("/ui/language", data={"language": "en"}, headers={"Origin": "http://evil.example"},
                           follow_redirects=False).status_code == 403
        assert client.post("/ui/language", data={"language": "xx"}, follow_redirects=False).status_code == 400
        assert client.patch("/api/v1/auth/me", json={"language": "fr"}).status_code == 422
        assert client.patch("/api/v1/auth/me", json={"language": None}).json()["language"] is None
        assert ">Alerts</h1>" in client.get("/ui/alerts", headers={"Accept-Language": "en"}).text
        error = client.get("/ui/alerts/nope", headers={"Accept-Language": "zh"})
        assert error.status_code == 404 and "告警不存在" in error.text
        assert client.get("/api/v1/alerts/nope", headers={"Accept-Language": "zh"}).json() == {
            "detail": "no such alert"}  # the API stays English
    finally:
        client.patch("/api/v1/auth/me", json={"language": None})


def test_emails_in_chinese_webhooks_and_english_unchanged() -> None:
    alert = {"id": "a" * 32, "gateway_id": "gw1", "sensor_id": "aa:bb:cc:dd:ee:ff", "kind": "temp_high",
             "severity": "critical", "started_at": 1_700_000_000_000, "value": 6.5, "threshold": 4.0,
             "reason": "above band", "profile": "chilled"}
    stored = "[coldwatch] critical temp_high on sensor aa:bb:cc:dd:ee:ff (gateway gw1)"
    note = Notification(id=3, kind="alert", subject=stored, created_at=0, gateway_id="gw1", alerts=[alert])

    def mailer(language: str) -> EmailNotifier:
        return EmailNotifier(host="mail", port=25, sender="cw@example.com", recipients=["ops@example.com"],
                             starttls=False, username=None, password=None, timeout_s=1, language=language)

    english = mailer("en").message(note)
    assert english["Subject"] == stored and english.get_content().startswith(stored)
    chinese = mailer("zh_CN").message(note)
    assert chinese["Subject"] == "[coldwatch] 传感器 aa:bb:cc:dd:ee:ff（网关 gw1）严重告警：temp_high"
    assert "[严重] temp_high gateway=gw1" in chinese.get_content()
    summary = Notification(id=4, kind="summary", subject="s", created_at=0, alerts=[alert], held=3)
    assert "频率限制暂缓了 3 条通知" in summary.as_text("zh_CN")
    assert "held back 3" in summary.as_text()


def test_the_pdf_in_chinese_has_extractable_chinese_text() -> None:
    assert unicode_font() is not None, "fonts-wqy-microhei is missing: run deploy/install-system.sh"
    pdf = report_pdf(_report(), points=[(0, 3.0), (60_000, 3.5)], gaps=[], label="浦东仓 冷库3号",
                     language="zh_CN")
    codes = _pdf_text_codes(pdf)
    assert {ord(c) for c in "传感器报告超温事件平均动力学温度浦东仓"} <= codes
    english = _pdf_text_codes(report_pdf(_report(), points=[(0, 3.0)], gaps=[], label="Cold room"))
    assert not any(code in CJK for code in english)


def _fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    real = FPDF.__init__

    def init(self: FPDF, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        self.set_creation_date(datetime(2025, 1, 1, tzinfo=UTC))

    monkeypatch.setattr(FPDF, "__init__", init)


def test_the_cached_font_makes_the_same_pdf_as_a_freshly_parsed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unicode_font() is not None
    _fixed_date(monkeypatch)
    args = {"points": [(0, 3.0), (60_000, 3.5)], "gaps": [], "label": "浦东仓 冷库3号", "language": "zh_CN"}
    cached = report_pdf(_report(), **args)  # type: ignore[arg-type]
    assert report_pdf_module._templates  # the font was parsed once and kept
    with monkeypatch.context() as m:
        m.setattr(report_pdf_module, "_add_cached_font",
                  lambda pdf, style, path: pdf.add_font(report_pdf_module._FAMILY, style, str(path),
                                                        collection_font_number=0))
        fresh = report_pdf(_report(), **args)  # type: ignore[arg-type]
    assert cached == fresh


def test_pdfs_made_at_once_on_threads_each_have_their_own_glyphs() -> None:
    assert unicode_font() is not None
    names = ["浦东仓 冷库1号", "成都冷链中心 2号", "北京 冷冻库", "广州 医药冷藏", "上海 冷藏车", "武汉 集装箱"]
    results: dict[str, bytes] = {}
    failures: list[BaseException] = []

    def make(name: str) -> None:
        try:
            results[name] = report_pdf(_report(), points=[(0, 3.0)], gaps=[], label=name, language="zh_CN")
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=make, args=(name,)) for name in names]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and time.perf_counter() - started < 60
    base = _pdf_text_codes(report_pdf(_report(), points=[(0, 3.0)], gaps=[], language="zh_CN"))
    for name, pdf in results.items():
        own = {ord(c) for c in name if c != " "} - base
        assert _pdf_text_codes(pdf) - base == own, f"{name}: not exactly its own glyphs (another document's?)"
