"""The shipment record without a server: its totals (time out of range as a union, the warmest MKT), its CSV, the
PDF with every name extractable as text (Chinese too), the journey chart, the band a shipment's limits make."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from cloud.db.alerts import Alert
from cloud.db.shipments import Shipment
from cloud.report_pdf import unicode_font
from cloud.services import shipments
from cloud.services.shipment_record import RecordKey, SensorPart, ShipmentRecord, record_csv
from cloud.shipment_pdf import shipment_pdf
from cloud.tsdb.reports import Excursion, SensorReport
from cloud.ui.journey_chart import journey_chart
from models.runtime.manifest import ModelRejected, verify_bytes

H = 3_600_000
MIN = 60_000


def _shipment(**changes: object) -> Shipment:
    values: dict[str, object] = dict(id=1, reference="SH-2291", origin="上海 Shanghai", destination="成都 Chengdu",
                                     customer="成都鲜品有限公司", product="冷藏乳品", profile="chilled",
                                     state="delivered", started_at=0, delivered_at=4 * H, created_at=0,
                                     created_by="staff1")
    values.update(changes)
    return Shipment(**values)  # type: ignore[arg-type]


def _part(sensor: str, excursions: list[tuple[int, int]], mkt: float, label: str | None = None) -> SensorPart:
    report = SensorReport(sensor=sensor, start=0, end=4 * H, profile="chilled", band_low_c=0.0, band_high_c=4.0,
                          readings=230, missing=10, completeness_pct=95.8, min_c=1.0, max_c=6.0, mean_c=3.0,
                          mkt_c=mkt, time_out_of_band_s=sum(b - a for a, b in excursions) // 1000,
                          excursions=[Excursion(start=a, end=b, peak_c=6.0, duration_s=(b - a) // 1000)
                                      for a, b in excursions])
    points = [(i * MIN, 2.0 + (i % 30) / 10) for i in range(240) if not 100 < i < 120]
    return SensorPart(sensor=sensor, label=label, start=0, end=4 * H, report=report, points=points,
                      gaps=[(100 * MIN, 120 * MIN)])


def _record() -> ShipmentRecord:
    alert = Alert(id="a" * 32, gateway_id="truck-7", sensor_id="aa:bb:cc:00:00:01", kind="shipment_excursion",
                  severity="critical", source="cloud", device_state="clear", started_at=H, updated_at=H,
                  received_at=H, last_event_at=H, status="resolved", resolution="real_excursion")
    return ShipmentRecord(shipment=_shipment(), band=shipments.band(_shipment()), start=0, end=4 * H,
                          generated_at=4 * H, gateways=["truck-7"], alerts=[alert],
                          sensors=[_part("aa:bb:cc:00:00:01", [(H, H + 10 * MIN)], 3.4, "托盘 1"),
                                   _part("aa:bb:cc:00:00:02", [(H + 5 * MIN, H + 20 * MIN)], 3.9)])


def test_totals_count_overlapping_excursions_once_and_take_the_warmest_mkt() -> None:
    record = _record()
    assert record.time_out_of_band_s == 20 * 60  # H..H+20 min, the overlap once
    assert record.mkt_c == 3.9 and record.excursions == 2 and record.readings == 460 and record.missing == 20
    assert record.completeness_pct == round(100 * 460 / 480, 3)


def test_a_shipments_own_limits_replace_the_profiles_side_by_side() -> None:
    low = shipments.band(_shipment(temp_low_c=1.0))
    assert low is not None and (low.low_c, low.high_c) == (1.0, 4.0)
    own = shipments.band(_shipment(temp_high_c=3.5))
    assert own is not None and (own.low_c, own.high_c) == (0.0, 3.5)  # chilled's lower limit stays
    none = shipments.band(_shipment(profile=None))
    assert none is None
    alone = shipments.band(_shipment(profile=None, temp_low_c=2.0, temp_high_c=8.0))
    assert alone is not None and (alone.low_c, alone.high_c, alone.setpoint_c) == (2.0, 8.0, 5.0)


def test_the_pdf_text_is_extractable_chinese_names_included() -> None:
    assert unicode_font() is not None, "fonts-wqy-microhei is missing: run deploy/install-system.sh (make setup)"
    pdf = shipment_pdf(_record(), public_key_url="https://cw.example/api/v1/shipments/record-key")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("SH-2291", "成都鲜品有限公司", "上海", "冷藏乳品", "托盘 1", "aa:bb:cc:00:00:02", "Real excursion",
                     "record-key"):
        assert expected in text, expected


def test_the_record_in_chinese() -> None:
    pdf = shipment_pdf(_record(), language="zh_CN")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("运单温度记录 SH-2291", "超温时长", "平均动力学温度", "成都鲜品有限公司", "已送达"):
        assert expected in text, expected


def test_the_csv_has_the_totals_a_row_per_sensor_and_the_excursions() -> None:
    lines = record_csv(_record()).splitlines()
    assert "customer,成都鲜品有限公司" in lines and "time_out_of_band_s,1200" in lines
    assert sum(line.startswith("aa:bb:cc:00:00:0") for line in lines) == 4  # two sensor rows, two excursions


def test_the_journey_chart_breaks_at_gaps_and_shows_the_band() -> None:
    chart = journey_chart(_record())
    assert [len(line.segments) for line in chart.lines] == [2, 2]  # the 20-minute gap breaks each line
    assert chart.band_y is not None and chart.band_y[0] < chart.band_y[1] and not chart.empty


def test_records_are_signed_with_a_key_made_once_and_a_changed_byte_fails(tmp_path: Path) -> None:
    key = RecordKey(tmp_path / "keys" / "records.pem")
    signature = key.sign(b"%PDF-record")
    assert (tmp_path / "keys" / "records.pem").stat().st_mode & 0o777 == 0o600
    verify_bytes(b"%PDF-record", signature, [key.public_pem()])
    with pytest.raises(ModelRejected):
        verify_bytes(b"%PDF-recorD", signature, [key.public_pem()])
    assert RecordKey(tmp_path / "keys" / "records.pem").public_pem() == key.public_pem()  # read, not made again
