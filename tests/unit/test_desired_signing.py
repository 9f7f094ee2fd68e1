"""The desired document is signed with the fleet key and names its gateway; an agent with trusted keys refuses one
that is unsigned, tampered with (any byte of it, `sensor_profiles` included), signed by another key or meant for
another gateway — counted, logged, reported, never applied. Anti-rollback: a model older than the newest the gateway
has run for its profile is refused unless ops roll back explicitly; model versions compare part by part."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edge_agent.desired import AppliedState, DesiredHandler, Result
from edge_agent.metrics import AgentMetrics
from models.runtime.manifest import ModelRejected, compare_versions, generate_keypair, sign_desired, verify_desired
from protocol.codec import decode, desired_signing_bytes, encode
from protocol.messages import Desired, DesiredConfig, DesiredModel, Reported

T0 = 1_767_225_600_000
MAC = "c2:00:00:00:00:01"
FLEET_PRIVATE, FLEET_PUBLIC = generate_keypair()
STRANGER_PRIVATE, _ = generate_keypair()


def model(version: str = "2", *, mode: str = "active", rollback: bool = False,
          profile: str = "chilled") -> DesiredModel:
    return DesiredModel(name="cw_chilled", version=version, profile=profile,
                        url=f"https://cloud/cw_chilled-{version}.tflite", sha256="0" * 64, signature="c2ln",
                        mode=mode, rollback=rollback)  # type: ignore[arg-type]


def doc(version: int, *, gateway: str | None = "gw1", m: DesiredModel | None = None, profile: str = "pharma_2_8",
        key: bytes | None = FLEET_PRIVATE) -> bytes:
    """A desired document as the cloud publishes it: normalised, signed with `key` (None: unsigned)."""
    desired = decode(encode(Desired(version=version, issued_at=T0, gateway=gateway, model=m,
                                    config=DesiredConfig(sensor_profiles={MAC: profile}))), Desired)
    return encode(sign_desired(desired, key) if key is not None else desired)


class FakeInstaller:
    """Activates (or shadows) whatever it is given; records what it was asked to install."""

    def __init__(self) -> None:
        self.installed: list[str] = []

    def install(self, m: DesiredModel, desired_version: int) -> tuple[Result, str | None, str | None]:
        self.installed.append(m.version)
        return ("shadow", None, None) if m.mode == "shadow" else ("applied", m.version, None)


class Gateway:
    """A DesiredHandler as the agent wires it, with trusted keys unless told otherwise."""

    def __init__(self, tmp_path: Path, keys: list[bytes] | None = None, installer: FakeInstaller | None = None):
        self.reports: list[Reported] = []
        self.profiles: list[dict[str, str]] = []
        self.installer = installer
        self.handler = DesiredHandler("gw1", tmp_path / "state.json", AgentMetrics(), report=self.reports.append,
                                      on_profiles=self.profiles.append, installer=installer,
                                      public_keys=[FLEET_PUBLIC] if keys is None else keys)

    def rejected(self, reason: str) -> float:
        value: float = self.handler.metrics.desired_rejected.labels(reason=reason)._value.get()
        return value


# -- sign / verify ------------------------------------------------------------------------------------------------

profiles = st.dictionaries(st.from_regex(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", fullmatch=True),
                           st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True), max_size=8)
models = st.builds(
    lambda version, mode, probation, ratio, rollback: DesiredModel(
        name="cw_chilled", version=version, profile="chilled", url="https://cloud/m.tflite", sha256="a" * 64,
        signature="c2ln", mode=mode, probation_s=probation, max_alert_ratio=ratio, rollback=rollback),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True), st.sampled_from(["active", "shadow"]),
    st.floats(min_value=1e-3, max_value=30 * 86400), st.floats(min_value=1e-3, max_value=1000), st.booleans())
documents = st.builds(
    lambda version, gateway, m, sample, sensor_profiles: Desired(
        version=version, issued_at=T0, gateway=gateway, model=m,
        config=DesiredConfig(sample_period_s=sample, sensor_profiles=sensor_profiles)),
    st.integers(0, 2**63 - 1), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True), st.none() | models,
    st.none() | st.floats(min_value=1e-3, max_value=3600), profiles)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_a_signed_desired_document_verifies_after_the_wire(desired: Desired) -> None:
    normalised = decode(encode(desired), Desired)  # as the cloud does before signing
    wire = encode(sign_desired(normalised, FLEET_PRIVATE))
    received = decode(wire, Desired)
    verify_desired(received, [FLEET_PUBLIC])  # no exception: valid
    assert desired_signing_bytes(received) == encode(normalised)
    with pytest.raises(ModelRejected) as stranger:
        verify_desired(received, [generate_keypair()[1]])
    assert stranger.value.reason == "bad_signature"


def test_old_documents_keep_their_bytes_and_an_unsigned_one_says_so() -> None:
    plain = Desired(version=1, issued_at=T0, model=model("1"))
    assert b"rollback" not in encode(plain) and b"gateway" not in encode(plain) and b"signature\":" not in encode(
        Desired(version=1, issued_at=T0))
    with pytest.raises(ModelRejected) as unsigned:
        verify_desired(plain, [FLEET_PUBLIC])
    assert unsigned.value.reason == "unsigned"
    with pytest.raises(ModelRejected) as garbled:
        verify_desired(msgspec.structs.replace(plain, signature="not base64!"), [FLEET_PUBLIC])
    assert garbled.value.reason == "bad_signature"


# -- the agent refuses what it cannot trust ------------------------------------------------------------------------

_EXAMPLES = itertools.count()


def _profiles_span(payload: bytes) -> tuple[int, int]:
    start = payload.index(b'"sensor_profiles":{') + len(b'"sensor_profiles":')
    return start, payload.index(b"}", start) + 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_changed_byte_of_sensor_profiles_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    payload = doc(3, profile="frozen")
    first, end = _profiles_span(payload)
    at = data.draw(st.integers(first, end - 1), label="byte")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != payload[at]), label="new value")
    tampered = payload[:at] + bytes([byte]) + payload[at + 1:]
    gw = Gateway(tmp_path / str(next(_EXAMPLES)))  # a fresh state file per example
    reported = gw.handler.handle(tampered)
    assert reported is None or (reported.result == "rejected" and reported.error is not None)
    assert gw.profiles == [] and gw.handler.state.sensor_profiles == {} and gw.handler.state.version == -1
    if reported is not None:  # it still decodes: the signature no longer matches
        assert reported.error is not None and reported.error.startswith("bad_signature: ")
        assert gw.rejected("bad_signature") == 1


def test_a_document_for_another_gateway_is_refused_counted_logged_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gw = Gateway(tmp_path)
    with caplog.at_level(logging.WARNING, logger="edge_agent.desired"):
        reported = gw.handler.handle(doc(4, gateway="gw2"))
        nameless = gw.handler.handle(doc(5, gateway=None))
    assert reported is not None and reported.result == "rejected" and reported.desired_version == 4
    assert reported.error == "wrong_gateway: the document is for gw2, this is gw1"
    assert nameless is not None and nameless.error == "wrong_gateway: the document is for no gateway, this is gw1"
    assert gw.rejected("wrong_gateway") == 2 and gw.profiles == [] and gw.reports == [reported, nameless]
    assert "event=desired_rejected gateway=gw1 version=4 reason=wrong_gateway" in caplog.text


def test_an_unsigned_document_is_refused_when_keys_are_configured_and_applied_when_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gw = Gateway(tmp_path / "keys")
    reported = gw.handler.handle(doc(4, key=None))
    assert reported is not None and reported.result == "rejected" and (reported.error or "").startswith("unsigned: ")
    assert gw.rejected("unsigned") == 1 and gw.profiles == []
    stranger = gw.handler.handle(doc(4, key=STRANGER_PRIVATE))
    assert stranger is not None and stranger.error == "bad_signature: not signed by any trusted key"
    with caplog.at_level(logging.WARNING, logger="edge_agent.desired"):
        bare = Gateway(tmp_path / "bare", keys=[])  # no keys: no models either; config keeps working, with a warning
    assert "event=desired_unverified gateway=gw1" in caplog.text
    applied = bare.handler.handle(doc(4, key=None))
    assert applied is not None and applied.result == "applied" and bare.profiles == [{MAC: "pharma_2_8"}]


def test_a_refused_document_changes_nothing_so_the_next_signed_one_applies(tmp_path: Path) -> None:
    gw = Gateway(tmp_path)
    forged = gw.handler.handle(doc(2**62, key=STRANGER_PRIVATE, profile="frozen"))
    assert forged is not None and forged.result == "rejected"
    assert gw.handler.state.version == -1 and not (tmp_path / "state.json").exists()
    applied = gw.handler.handle(doc(2))
    assert applied is not None and applied.result == "applied" and gw.profiles == [{MAC: "pharma_2_8"}]


# -- anti-rollback --------------------------------------------------------------------------------------------------

def test_a_downgrade_is_refused_unless_ops_roll_back_and_the_floor_survives_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    installer = FakeInstaller()
    gw = Gateway(tmp_path, installer=installer)
    assert gw.handler.handle(doc(1, m=model("20261205.120000"))).result == "applied"  # type: ignore[union-attr]
    assert gw.handler.handle(doc(2, m=model("20261206.090000"))).result == "applied"  # type: ignore[union-attr]
    assert gw.handler.state.model_floor == {"chilled": "20261206.090000"}

    with caplog.at_level(logging.WARNING, logger="edge_agent.desired"):
        refused = gw.handler.handle(doc(3, m=model("20261205.120000")))
    assert refused is not None and refused.result == "rejected" and refused.error is not None
    assert refused.error.startswith("downgrade: cw_chilled-20261205.120000 is older than 20261206.090000")
    assert refused.error.endswith("ops must roll back explicitly")
    assert gw.rejected("downgrade") == 1 and "reason=downgrade" in caplog.text
    assert installer.installed == ["20261205.120000", "20261206.090000"]  # never asked to install it
    shadow = gw.handler.handle(doc(4, m=model("20261205.120000", mode="shadow")))
    assert shadow is not None and shadow.result == "rejected"  # not even beside the active model

    restarted = Gateway(tmp_path, installer=installer)  # the floor is on disk, beside the applied version
    assert restarted.handler.state.model_floor == {"chilled": "20261206.090000"}
    assert restarted.handler.handle(doc(5, m=model("20261205.120000"))).result == "rejected"  # type: ignore[union-attr]
    back = restarted.handler.handle(doc(6, m=model("20261205.120000", rollback=True)))
    assert back is not None and back.result == "applied" and back.model_version == "20261205.120000"
    # ops chose that model: it is the floor now, so the rollout's later returns to it are no downgrade
    assert restarted.handler.state.model_floor == {"chilled": "20261205.120000"}
    assert restarted.handler.handle(doc(7, m=model("20261205.120000"))).result == "applied"  # type: ignore[union-attr]
    other = restarted.handler.handle(doc(8, m=model("1", profile="frozen")))  # floors are per profile
    assert other is not None and other.result == "applied"
    assert json.loads((tmp_path / "state.json").read_text())["model_floor"] == {"chilled": "20261205.120000",
                                                                                "frozen": "1"}


def test_a_shadow_does_not_raise_the_floor_and_boot_models_do(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, installer=FakeInstaller())
    assert gw.handler.handle(doc(1, m=model("3", mode="shadow"))).result == "shadow"  # type: ignore[union-attr]
    assert gw.handler.state.model_floor == {}  # only the active model counts
    gw.handler.note_active({"chilled": "5"})  # an upgraded agent: the installed model sets the floor at boot
    assert AppliedState.load(tmp_path / "state.json").model_floor == {"chilled": "5"}
    gw.handler.note_active({"chilled": "4"})  # the previous model, after a fallback: the floor stays
    assert gw.handler.state.model_floor == {"chilled": "5"}
    assert gw.handler.handle(doc(2, m=model("4"))).result == "rejected"  # type: ignore[union-attr]


# -- version order -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("older, newer", [
    ("1", "2"), ("9", "10"), ("2", "66"), ("20261205.235959", "20261206.000000"), ("1", "1.1"), ("1.9", "1.10"),
    ("1a", "1b"), ("2", "20261206.120000"), ("2a", "3"), ("abc", "1"),
])
def test_model_versions_compare_numerically_part_by_part(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1 and compare_versions(newer, older) == 1
    assert compare_versions(older, older) == compare_versions(newer, newer) == 0
    assert compare_versions("01", "1") == 0


versions = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,15}", fullmatch=True)


@given(versions, versions, versions)
def test_model_version_order_is_a_total_order(a: str, b: str, c: str) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, a) == 0
    if compare_versions(a, b) <= 0 and compare_versions(b, c) <= 0:
        assert compare_versions(a, c) <= 0


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)),
       st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)))
def test_the_registrys_default_versions_compare_in_time_order(a: dt.datetime, b: dt.datetime) -> None:
    assume(a.replace(microsecond=0) != b.replace(microsecond=0))
    fmt = "%Y%m%d.%H%M%S"  # models/training/artifacts.py default_version
    assert compare_versions(a.strftime(fmt), b.strftime(fmt)) == (1 if a > b else -1)


def test_a_leading_v_is_ignored_and_a_pre_release_orders_below_its_release() -> None:
    from models.runtime.manifest import compare_versions

    assert compare_versions("v10", "v9") == 1 and compare_versions("v2", "2") == 0
    assert compare_versions("1.0.0rc1", "1.0.0") == -1 and compare_versions("1.0.0", "1.0.0rc1") == 1
    assert compare_versions("2rc1", "1") == 1  # still above the release before
