"""models.runtime.manifest: the gateway refuses unsigned, wrongly signed and tampered models."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.runtime.manifest import (
    Manifest,
    ModelFiles,
    ModelRejected,
    generate_keypair,
    load_public_key,
    load_verified,
    sha256_file,
    verify_manifest_bytes,
    write_signed,
)


def make_model(directory: Path, private_pem: bytes | None, *, version: str = "1") -> ModelFiles:
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / f"cw_chilled-{version}.tflite"
    model.write_bytes(b"TFL3 pretend model bytes")
    manifest = Manifest(name="cw_chilled", version=version, profile="chilled",
                        feature_spec={"window": 30, "sample_period_s": 60.0, "features": ["temp_c"], "mean": [0.0],
                                      "std": [1.0]},
                        threshold=1.5, training_range={"train_seeds": [0, 0]}, metrics={"recall": 1.0},
                        sha256=sha256_file(model), created_at="2026-11-24T00:00:00+00:00")
    return write_signed(manifest, directory, private_pem)


@pytest.fixture
def keys() -> tuple[bytes, bytes]:
    return generate_keypair()


def test_signed_model_verifies_from_folder_or_any_file(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    private_pem, public = keys
    files = make_model(tmp_path / "m", private_pem)
    for where in (tmp_path / "m", files.model, files.manifest, files.signature,
                  (files.model, files.manifest, files.signature)):
        manifest = load_verified(where, [public])
        assert manifest.stem == "cw_chilled-1" and manifest.threshold == 1.5
        assert manifest.model_file == files.model.name


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "unsigned"), ("other_key", "bad_signature"), ("tampered_model", "hash_mismatch"),
    ("tampered_manifest", "bad_signature"), ("no_keys", "no_trusted_keys"), ("garbage_sig", "bad_signature"),
])
def test_rejections(tmp_path: Path, keys: tuple[bytes, bytes], case: str, reason: str) -> None:
    private_pem, public = keys
    files = make_model(tmp_path, None if case == "unsigned" else private_pem)
    trusted = [public]
    if case == "other_key":
        other_pem, _ = generate_keypair()
        make_model(tmp_path, other_pem)
    elif case == "tampered_model":
        files.model.write_bytes(b"TFL3 something else")
    elif case == "tampered_manifest":
        data = json.loads(files.manifest.read_bytes())
        data["threshold"] = 1e9
        files.manifest.write_text(json.dumps(data))
    elif case == "no_keys":
        trusted = []
    elif case == "garbage_sig":
        files.signature.write_text("not base64 !!")
    with pytest.raises(ModelRejected) as info:
        load_verified(tmp_path, trusted)
    assert info.value.reason == reason


def test_any_trusted_key_is_enough_and_folders_must_be_unambiguous(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    private_pem, public = keys
    _, stranger = generate_keypair()
    make_model(tmp_path, private_pem)
    assert load_verified(tmp_path, [stranger, public]).version == "1"
    make_model(tmp_path, private_pem, version="2")
    with pytest.raises(ModelRejected) as info:
        load_verified(tmp_path, [public])
    assert info.value.reason == "ambiguous"
    with pytest.raises(ModelRejected) as missing:
        load_verified(tmp_path / "nothing", [public])
    assert missing.value.reason == "missing"


def test_public_key_formats() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert load_public_key(raw) == raw
    assert load_public_key(base64.b64encode(raw) + b"\n") == raw
    assert load_public_key(pem) == raw
    with pytest.raises(ValueError):
        load_public_key(b"short")


def test_manifest_bytes_are_canonical_and_names_safe(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError):
        Manifest(name="a-b", version="1", profile="p", feature_spec={}, threshold=1.0, training_range={},
                 metrics={}, sha256="0", created_at="now")
    m = Manifest(name="a", version="1.2", profile="p", feature_spec={}, threshold=1.0, training_range={}, metrics={},
                 sha256="0", created_at="now")
    assert Manifest.from_bytes(m.to_bytes()) == m
    assert m.to_bytes() == Manifest.from_bytes(m.to_bytes()).to_bytes()
    with pytest.raises(ModelRejected):
        verify_manifest_bytes(m.to_bytes(), b"", [keys[1]])
