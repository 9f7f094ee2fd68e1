"""The agent's updater refuses a signed model it cannot feed — one whose manifest names a newer agent as its
minimum, or a feature channel this agent does not compute — with a clear reason, logged, counted and reported;
and `min_agent_version` is part of the signed manifest."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import __version__
from edge_agent.desired import DesiredHandler
from edge_agent.metrics import AgentMetrics
from edge_agent.updater import Installer, ModelStore, check_runnable
from models.runtime.features import KNOWN_FEATURES
from models.runtime.manifest import (
    Manifest,
    ModelRejected,
    generate_keypair,
    load_verified,
    release,
    sha256_file,
    sign_manifest,
    verify_manifest_bytes,
    write_signed,
)
from protocol.codec import encode
from protocol.messages import Desired, DesiredModel, Reported

T0 = 1_767_225_600_000
MODEL_BYTES = b"TFL3 stand-in: refused before anything loads it"
SPEC = {"window": 30, "sample_period_s": 60.0, "features": ["temp_c"], "mean": [0.0], "std": [1.0]}


def manifest(version: str = "3", **changes: Any) -> Manifest:
    base = Manifest(name="cw_chilled", version=version, profile="chilled", feature_spec=SPEC, threshold=1.0,
                    training_range={}, metrics={}, sha256="0" * 64, created_at="2026-11-24T00:00:00+00:00")
    return dataclasses.replace(base, **changes)


class Registry:
    """The artifact server: files by URL, and the desired model naming them."""

    def __init__(self, tmp_path: Path) -> None:
        self.private_pem, self.public = generate_keypair()
        self.files: dict[str, bytes] = {}
        self.dir = tmp_path / "registry"
        self.dir.mkdir()

    def publish(self, m: Manifest) -> DesiredModel:
        model = self.dir / f"{m.stem}.tflite"
        model.write_bytes(MODEL_BYTES)
        m = dataclasses.replace(m, sha256=sha256_file(model))
        files = write_signed(m, self.dir, self.private_pem)
        self.files[f"https://cloud/{m.stem}.tflite"] = MODEL_BYTES
        self.files[f"https://cloud/{m.stem}.manifest.json"] = files.manifest.read_bytes()
        return DesiredModel(name=m.name, version=m.version, profile=m.profile, url=f"https://cloud/{m.stem}.tflite",
                            sha256=m.sha256, signature=files.signature.read_text().strip())

    def fetch(self, url: str, _token: str | None) -> bytes:
        return self.files[url]


def agent(tmp_path: Path, registry: Registry) -> tuple[DesiredHandler, list[Reported], AgentMetrics]:
    metrics = AgentMetrics()
    reports: list[Reported] = []
    installer = Installer(ModelStore(tmp_path / "models", [registry.public]), on_activate=lambda _p, _m: None,
                          fetch=registry.fetch, gateway="gw1",
                          on_refused=lambda reason: metrics.models_refused.labels(reason=reason).inc())
    return DesiredHandler("gw1", tmp_path / "state.json", metrics, report=reports.append, installer=installer), \
        reports, metrics


@pytest.mark.parametrize("changes, reason, words", [
    ({"min_agent_version": "99.0"}, "agent_too_old",
     f"needs coldwatch-agent 99.0 or newer; this agent is {__version__}"),
    ({"feature_spec": {**SPEC, "features": ["temp_c", "door_open_sense"], "mean": [0.0, 0.0], "std": [1.0, 1.0]}},
     "unsupported_features", "cannot compute: door_open_sense"),
    ({"feature_spec": {**SPEC, "features": "temp_c"}}, "bad_manifest", "no list of channel names"),
])
def test_a_model_this_agent_cannot_feed_is_refused_logged_counted_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, changes: dict[str, Any], reason: str, words: str) -> None:
    registry = Registry(tmp_path)
    handler, reports, metrics = agent(tmp_path, registry)
    desired = registry.publish(manifest(**changes))
    with caplog.at_level(logging.ERROR, logger="edge_agent.updater"):
        handler.handle(encode(Desired(version=5, issued_at=T0, model=desired)))
    (refused,) = reports
    assert refused.result == "rejected" and refused.error is not None
    assert refused.error.startswith(f"{reason}: ") and words in refused.error
    assert metrics.models_refused.labels(reason=reason)._value.get() == 1
    assert f"event=model_rejected gateway=gw1 model=cw_chilled-3 reason={reason}" in caplog.text
    assert not (tmp_path / "models" / "cw_chilled-3").exists()  # nothing installed, nothing left in staging
    assert list((tmp_path / "models").glob(".staging-*")) == []


def test_a_model_naming_this_agent_or_an_older_one_passes() -> None:
    check_runnable(manifest(min_agent_version=__version__))
    check_runnable(manifest(min_agent_version="0.1"))
    check_runnable(manifest())  # no minimum
    for channel in sorted(KNOWN_FEATURES):
        check_runnable(manifest(feature_spec={**SPEC, "features": [channel]}))


def test_an_installed_model_is_refused_at_boot_by_an_older_agent(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    m = manifest(min_agent_version="99.0")
    registry.publish(m)
    store = ModelStore(tmp_path / "store", [registry.public])
    folder = store.directory / m.stem
    folder.mkdir()
    for suffix in (".tflite", ".manifest.json", ".sig"):
        (folder / f"{m.stem}{suffix}").write_bytes((registry.dir / f"{m.stem}{suffix}").read_bytes())
    with pytest.raises(ModelRejected) as refused:
        store.load(m.stem)  # a downgraded agent: the boot path falls back to the previous model
    assert refused.value.reason == "agent_too_old"


def test_min_agent_version_is_signed_with_the_manifest(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.publish(manifest(min_agent_version="0.3.0"))
    files = registry.dir / "cw_chilled-3.manifest.json"
    assert load_verified(registry.dir / "cw_chilled-3.tflite", [registry.public]).min_agent_version == "0.3.0"
    files.write_bytes(files.read_bytes().replace(b'"min_agent_version": "0.3.0"', b'"min_agent_version": "0.1.0"'))
    with pytest.raises(ModelRejected, match="bad_signature"):  # lowered by hand: refused
        load_verified(registry.dir / "cw_chilled-3.tflite", [registry.public])


def test_a_manifest_without_a_minimum_keeps_its_bytes_and_a_bad_one_is_refused() -> None:
    plain = manifest()
    assert b"min_agent_version" not in plain.to_bytes()  # models signed before the field verify unchanged
    assert Manifest.from_bytes(plain.to_bytes()) == plain
    pinned = manifest(min_agent_version="0.2.0")
    assert b'"min_agent_version": "0.2.0"' in pinned.to_bytes() and Manifest.from_bytes(pinned.to_bytes()) == pinned
    private, public = generate_keypair()
    for bad in (b'"0.2-beta"', b"2", b'""'):
        data = pinned.to_bytes().replace(b'"0.2.0"', bad)
        with pytest.raises(ModelRejected, match="bad_manifest"):
            verify_manifest_bytes(data, sign_manifest(data, private), [public])


@given(have=st.lists(st.integers(0, 30), min_size=1, max_size=4), need=st.lists(st.integers(0, 30), min_size=1,
                                                                                max_size=4),
       suffix=st.sampled_from(["", "rc1", ".dev3", "+local"]))
def test_an_agent_runs_a_model_exactly_when_its_release_is_not_older(have: list[int], need: list[int],
                                                                      suffix: str) -> None:
    agent_version = ".".join(map(str, have)) + suffix
    m = manifest(min_agent_version=".".join(map(str, need)))

    def padded(v: list[int]) -> tuple[int, ...]:
        return tuple(v + [0] * (4 - len(v)))

    assert m.runs_on(agent_version) == (padded(have) >= padded(need))
    assert not m.runs_on(None) and not m.runs_on("unknown")
    assert release(agent_version) == release(".".join(map(str, have)))
