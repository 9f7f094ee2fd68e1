"""The desired-state handler: validates, applies once, persists, reports; any bytes are safe."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.desired import DesiredHandler
from edge_agent.metrics import AgentMetrics
from protocol.codec import encode
from protocol.messages import Desired, DesiredConfig, DesiredModel, Reported

T0 = 1_767_225_600_000
MAC = "c2:00:00:00:00:01"


def handler(tmp_path: Path) -> tuple[DesiredHandler, list[Reported], list[dict[str, str]]]:
    reports: list[Reported] = []
    profiles: list[dict[str, str]] = []
    h = DesiredHandler("gw1", tmp_path / "state.json", AgentMetrics(), report=reports.append,
                       on_profiles=profiles.append)
    return h, reports, profiles


def desired(version: int, profile: str = "pharma_2_8", model: DesiredModel | None = None) -> bytes:
    return encode(Desired(version=version, issued_at=T0, model=model,
                          config=DesiredConfig(sensor_profiles={MAC: profile})))


def test_a_config_is_applied_once_reported_and_survives_restart(tmp_path: Path) -> None:
    h, reports, profiles = handler(tmp_path)
    h.handle(desired(3))
    assert [(r.desired_version, r.result) for r in reports] == [(3, "applied")]
    assert profiles == [{MAC: "pharma_2_8"}]
    assert h.handle(desired(3)) is None and h.handle(desired(2, "frozen")) is None  # retained again, or older
    again, _reports2, profiles2 = handler(tmp_path)
    assert again.state.version == 3 and profiles2 == [{MAC: "pharma_2_8"}] and again.handle(desired(3)) is None


def test_a_model_without_an_updater_is_rejected_with_a_reason(tmp_path: Path) -> None:
    h, reports, _ = handler(tmp_path)
    model = DesiredModel(name="chilled-ae", version="2", profile="chilled", url="https://x/m.tflite",
                         sha256="0" * 64, signature="c2ln")
    h.handle(desired(4, model=model))
    assert reports[-1].result == "rejected" and reports[-1].error and "updater" in reports[-1].error


def test_bad_fields_are_counted_not_applied(tmp_path: Path) -> None:
    h, reports, _ = handler(tmp_path)
    bad = desired(5).replace(b'"pharma_2_8"', b'"Pharma 2-8!"')
    assert h.handle(bad) is None and reports == []
    assert h.metrics.desired_rejected.labels(reason="invalid")._value.get() == 1
    assert h.handle(b'{"v":2,"version":9,"issued_at":1}') is None
    assert h.metrics.desired_rejected.labels(reason="schema_version")._value.get() == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), st.builds(lambda b: desired(7)[: len(desired(7)) - b], st.integers(1, 60))))
def test_any_bytes_are_handled_without_raising(tmp_path: Path, payload: bytes) -> None:
    h, _reports, _ = handler(tmp_path / "fuzz")
    h.state.version = -1
    result = h.handle(payload)
    assert result is None or result.result == "applied"
