"""Dashboard helpers without a server: bucket widths, the PDF report, alert wording, inbox filter parsing."""

from __future__ import annotations

import re
import zlib

import pytest

import cloud.report_pdf as report_pdf_module
from cloud.db.alerts import Alert
from cloud.report_pdf import report_pdf, unicode_font
from cloud.tsdb.reports import Excursion, SensorReport
from cloud.tsdb.series import bucket_ms
from cloud.ui import wording
from cloud.ui.pages import InboxQuery
from models.runtime.pulldown import fading_reason


def test_bucket_width_is_readable_and_bounded() -> None:
    assert bucket_ms(0, 60_000) == 1_000
    assert bucket_ms(0, 3_600_000, points=1_200) == 5_000
    assert bucket_ms(0, 31 * 86_400_000, points=1_200) == 3_600_000
    for span in (10_000, 7_200_000, 86_400_000, 31 * 86_400_000):
        assert span / bucket_ms(0, span, points=500) <= 500


def _report(**changes: object) -> SensorReport:
    values: dict[str, object] = dict(
        sensor="aa:bb:cc:dd:ee:ff", start=0, end=4 * 3_600_000, profile="chilled", band_low_c=0.0,
        band_high_c=4.0, readings=230, missing=10, completeness_pct=95.8, min_c=1.0, max_c=9.5, mean_c=3.1,
        mkt_c=3.4, time_out_of_band_s=3_600,
        excursions=[Excursion(start=3_600_000, end=7_200_000, peak_c=9.5, duration_s=3_600)])
    values.update(changes)
    return SensorReport(**values)  # type: ignore[arg-type]


def test_pdf_report_has_pages_and_survives_odd_input() -> None:
    points = [(i * 60_000, 2.0 + (i % 30) / 10) for i in range(240) if not 150 < i < 170]
    pdf = report_pdf(_report(), points=points, gaps=[(150 * 60_000, 170 * 60_000)], label="Cold room − 1 ✓")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and b"/Type /Page" in pdf
    empty = report_pdf(_report(profile=None, band_low_c=None, band_high_c=None, readings=0, min_c=None,
                               max_c=None, mean_c=None, mkt_c=None, completeness_pct=None, excursions=[]),
                       points=[], gaps=[])
    assert empty.startswith(b"%PDF-")


def _pdf_text_codes(pdf: bytes) -> set[int]:
    """The code points the PDF's fonts map glyphs back to (their ToUnicode CMaps, decompressed)."""
    codes: set[int] = set()
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            body = zlib.decompress(match.group(1))
        except zlib.error:
            body = match.group(1)
        if b"beginbfchar" in body or b"beginbfrange" in body:
            codes.update(int(h, 16) for h in re.findall(rb"<([0-9A-Fa-f]{4})>\s*\n", body))
            codes.update(int(h, 16) for h in re.findall(rb"<[0-9A-Fa-f]+>\s*<([0-9A-Fa-f]{4})>", body))
    return codes


def test_a_chinese_name_appears_in_the_pdf_as_written() -> None:
    # the font comes from deploy/install-system.sh (fonts-wqy-microhei): CI must have it
    assert unicode_font() is not None, "fonts-wqy-microhei is missing: run deploy/install-system.sh (make setup)"
    pdf = report_pdf(_report(), points=[(0, 3.0), (60_000, 3.5)], gaps=[], label="浦东仓 冷库3号")
    codes = _pdf_text_codes(pdf)
    assert {ord(c) for c in "浦东仓冷库号"} <= codes


def test_without_the_font_the_pdf_falls_back_to_latin1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf_module, "UNICODE_FONTS", ())
    pdf = report_pdf(_report(), points=[(0, 3.0)], gaps=[], label="浦东仓 Cold room − 1")
    assert pdf.startswith(b"%PDF-") and b"Helvetica" in pdf


def _alert(**changes: object) -> Alert:
    values: dict[str, object] = dict(
        id="a" * 32, gateway_id="gw1", sensor_id="aa:bb:cc:dd:ee:ff", kind="temp_out_of_range",
        severity="critical", source="rule", device_state="open", started_at=0, updated_at=1, received_at=1,
        last_event_at=1, profile="chilled", value=6.2, threshold=4.0, reason="6.2 °C is above the chilled limit 4 °C")
    values.update(changes)
    return Alert(**values)


def test_reason_in_words_names_rule_or_model() -> None:
    rule = wording.reason_in_words(_alert())
    assert "hard rule" in rule and "limit 4 °C for the chilled profile" in rule and "still present" in rule
    model = wording.reason_in_words(_alert(source="model", kind="anomaly", model_version="2.1.0", value=0.91,
                                           threshold=0.5, device_state="clear", ended_at=60_000))
    assert "anomaly model version 2.1.0" in model and "0.91" in model and "ended" in model
    cleared = wording.reason_in_words(_alert(reason="", threshold=None, device_state="clear", ended_at=60_000),
                                      "6.2 °C is above the chilled limit 4 °C")
    assert "The gateway said: 6.2 °C is above" in cleared
    assert wording.kind_title("something_new") == "Something new"
    fading = wording.reason_in_words(_alert(kind="cooling_fading", value=0.81, threshold=0.88,
                                            reason=fading_reason(0.81)))
    assert "cooling capacity fading (pull-downs slowing)" in fading and "19 % slower" in fading


def test_inbox_query_drops_unknown_values() -> None:
    q = InboxQuery.parse({"status": "open", "severity": "loud", "sort": "-severity", "since": "24h",
                          "gateway": "x" * 80})
    assert (q.status, q.severity, q.sort, q.since, q.gateway) == ("open", None, "-severity", "24h", None)
    assert set(q.dropped) == {"severity", "gateway"}
    assert "status=resolved" in q.query(status="resolved") and "sort=-severity" in q.query()
    assert q.filters().start is not None and q.filters(with_status=False).status is None


def test_age_and_battery() -> None:
    assert wording.age(None, 0) == "never"
    assert wording.age(0, 3 * 3_600_000) == "3 h ago"
    assert wording.battery_pct(3_100) == 100 and wording.battery_pct(2_300) == 0
