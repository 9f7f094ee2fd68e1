"""Model manifests: what a .tflite is and how to feed it, signed with Ed25519; the gateway verifies before use. The
desired document's signature (the same keys) and the model version order the gateway's anti-rollback uses live here
too.

No torch here: the edge agent imports this module. Needs `cryptography` (imported when a key is used), msgspec,
the wire contract (protocol/) and the stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from protocol.codec import desired_signing_bytes
from protocol.messages import Desired

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["Manifest", "ModelFiles", "ModelRejected", "compare_versions", "generate_keypair", "load_private_key",
           "load_public_key", "load_verified", "release", "sha256_file", "sign_bytes", "sign_desired", "sign_manifest",
           "verify_bytes", "verify_desired", "verify_manifest_bytes", "write_signed"]

MANIFEST_SUFFIX: Final = ".manifest.json"
SIG_SUFFIX: Final = ".sig"
MODEL_SUFFIX: Final = ".tflite"
SCHEMA_VERSION: Final = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
_RELEASE = re.compile(r"^v?([0-9]+(?:\.[0-9]+)*)")
_MIN_AGENT = re.compile(r"^[0-9]+(\.[0-9]+){0,3}$")


def release(version: str | None) -> tuple[int, ...] | None:
    """The release numbers of a version, trailing zeros dropped ('0.2.0', '0.2.0rc1', 'v0.2' → (0, 2)); None when
    it starts with none. A pre-release counts as its release: versions only need ordering against a minimum."""
    found = _RELEASE.match(version.strip()) if version else None
    if found is None:
        return None
    numbers = [int(part) for part in found.group(1).split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def _version_key(version: str) -> list[tuple[int, int, str]]:
    key = []
    for part in version.strip().removeprefix("v").removeprefix("V").split("."):
        digits = len(part) - len(part.lstrip("0123456789"))
        suffix = part[digits:]
        # '0rc1' < '0': a number followed by letters is a pre-release of that number
        key.append((int(part[:digits]) if digits else -1, 0 if suffix and digits else 1, suffix))
    return key


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as model version `a` is older than, the same as, or newer than `b` (the gateway's anti-rollback).

    Dot-separated parts are compared in turn: numerically where both are numbers ('10' > '9'; the registry's default
    'YYYYMMDD.HHMMSS' in time order), as strings where neither starts with a digit; a part with a number and then
    letters orders by the number first and below that number alone ('2rc1' < '2' < '3' < '10'), so the order stays
    total; a leading 'v' is ignored ('v9' < 'v10'). When every shared part is equal, the version with more parts is
    the newer ('1.1' > '1').
    """
    left, right = _version_key(a), _version_key(b)
    return (left > right) - (left < right)


class ModelRejected(Exception):  # noqa: N818 (the name is the contract with the agent)
    """A model the gateway must not load; `reason` says why (unsigned, bad_signature, hash_mismatch, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Manifest:
    """Everything a gateway needs to run a model and everything an operator needs to trust it."""

    name: str
    version: str
    profile: str
    feature_spec: dict[str, Any]
    threshold: float
    training_range: dict[str, Any]
    metrics: dict[str, Any]
    sha256: str
    created_at: str
    architecture: str = "autoencoder"
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # The oldest coldwatch-agent that can compute this model's inputs (e.g. a feature channel added later). Signed
    # with the rest; absent (None) from the canonical bytes when unset, so older manifests keep their bytes.
    min_agent_version: str | None = None

    def __post_init__(self) -> None:
        for label, value in (("name", self.name), ("version", self.version)):
            if not _NAME.match(value) or "-" in value:
                raise ValueError(f"{label} {value!r} must be letters, digits, '_' or '.' (no '-')")
        if self.min_agent_version is not None and (
                not isinstance(self.min_agent_version, str) or not _MIN_AGENT.match(self.min_agent_version)):
            raise ValueError(f"min_agent_version {self.min_agent_version!r} must be release numbers like '0.3.0'")

    def runs_on(self, agent_version: str | None) -> bool:
        """Whether an agent of `agent_version` may run this model (an unknown or unparseable version may not,
        when the manifest names a minimum)."""
        if self.min_agent_version is None:
            return True
        have, need = release(agent_version), release(self.min_agent_version)
        return have is not None and need is not None and have >= need

    @property
    def stem(self) -> str:
        """`<name>-<version>`: the common part of the three file names."""
        return f"{self.name}-{self.version}"

    @property
    def model_file(self) -> str:
        """File name of the .tflite."""
        return self.stem + MODEL_SUFFIX

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, UTF-8): the exact bytes that are signed."""
        fields = asdict(self)
        if fields["min_agent_version"] is None:
            del fields["min_agent_version"]
        return (json.dumps(fields, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse manifest JSON (ValueError when it is not a manifest)."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            known = {f for f in cls.__dataclass_fields__}
            fields = {k: v for k, v in raw.items() if k in known}
            manifest = cls(**fields)
        except (TypeError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed manifest: {exc}") from exc
        if manifest.schema > SCHEMA_VERSION:
            raise ValueError(f"manifest schema {manifest.schema} is newer than this code ({SCHEMA_VERSION})")
        return manifest


@dataclass(frozen=True)
class ModelFiles:
    """The three files of a model on disk."""

    model: Path
    manifest: Path
    signature: Path

    @classmethod
    def for_stem(cls, directory: Path, stem: str) -> ModelFiles:
        """Files `<stem>.tflite`, `<stem>.manifest.json`, `<stem>.sig` in `directory`."""
        return cls(directory / (stem + MODEL_SUFFIX), directory / (stem + MANIFEST_SUFFIX),
                   directory / (stem + SIG_SUFFIX))

    @classmethod
    def locate(cls, where: Path | str | Sequence[Path | str]) -> ModelFiles:
        """A directory holding exactly one manifest, any one of the three files, or (model, manifest, sig)."""
        if not isinstance(where, (str, Path)):
            model, manifest, signature = (Path(p) for p in where)
            return cls(model, manifest, signature)
        path = Path(where)
        if path.is_dir():
            found = sorted(path.glob("*" + MANIFEST_SUFFIX))
            if len(found) != 1:
                raise ModelRejected("ambiguous" if found else "missing", f"{len(found)} manifests in {path}")
            return cls.for_stem(path, found[0].name[: -len(MANIFEST_SUFFIX)])
        for suffix in (MANIFEST_SUFFIX, SIG_SUFFIX, MODEL_SUFFIX):
            if path.name.endswith(suffix):
                return cls.for_stem(path.parent, path.name[: -len(suffix)])
        raise ModelRejected("missing", f"{path} is not a model directory or model file")


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


# `cryptography` is imported where a key is used, not with this module: its OpenSSL bindings are 7.6 MiB of a
# gateway's memory, and a gateway without trusted keys (rules only) never verifies anything.


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair: (private key as unencrypted PKCS#8 PEM, public key as 32 raw bytes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private_pem, public_raw


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public_key(data: bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given raw, base64 of raw (a `.pub` file), or PEM."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if len(data) == 32:
        return data
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("public key is neither PEM, raw 32 bytes nor base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return raw


def sign_bytes(data: bytes, private_key_pem: bytes) -> bytes:
    """Base64 Ed25519 signature over `data` (a detached signature: a manifest's `.sig`, a shipment record's)."""
    return base64.b64encode(load_private_key(private_key_pem).sign(data))


def sign_manifest(manifest_bytes: bytes, private_key_pem: bytes) -> bytes:
    """Base64 Ed25519 signature over the manifest bytes (the content of the `.sig` file)."""
    return sign_bytes(manifest_bytes, private_key_pem)


def verify_bytes(data: bytes, signature_b64: bytes | str, public_keys: Iterable[bytes]) -> None:
    """None if one of `public_keys` signed exactly `data`; ModelRejected (unsigned / bad_signature /
    no_trusted_keys) otherwise."""
    _check_signature(data, signature_b64, public_keys)


def _check_signature(data: bytes, signature_b64: bytes | str, public_keys: Iterable[bytes]) -> None:
    """None if one of `public_keys` signed exactly `data`; ModelRejected (unsigned / bad_signature /
    no_trusted_keys) otherwise."""
    sig_text = signature_b64.encode() if isinstance(signature_b64, str) else signature_b64
    if not sig_text.strip():
        raise ModelRejected("unsigned", "empty signature")
    try:
        signature = base64.b64decode(sig_text.strip(), validate=True)
    except binascii.Error as exc:
        raise ModelRejected("bad_signature", "signature is not base64") from exc
    keys = list(public_keys)
    if not keys:
        raise ModelRejected("no_trusted_keys", "no public key configured")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for raw in keys:
        try:
            Ed25519PublicKey.from_public_bytes(load_public_key(raw)).verify(signature, data)
        except (InvalidSignature, ValueError):
            continue
        return
    raise ModelRejected("bad_signature", "not signed by any trusted key")


def verify_manifest_bytes(manifest_bytes: bytes, signature_b64: bytes | str, public_keys: Iterable[bytes]) -> Manifest:
    """The manifest, if one of `public_keys` signed exactly these bytes; ModelRejected otherwise."""
    _check_signature(manifest_bytes, signature_b64, public_keys)
    try:
        return Manifest.from_bytes(manifest_bytes)
    except ValueError as exc:
        raise ModelRejected("bad_manifest", str(exc)) from exc


def sign_desired(message: Desired, private_key_pem: bytes) -> Desired:
    """`message` with its `signature`: base64 Ed25519 by the fleet key over `desired_signing_bytes(message)`.
    Sign a decode-normalised message (the cloud decodes what it built first): the gateway re-encodes what it decoded."""
    signature = load_private_key(private_key_pem).sign(desired_signing_bytes(message))
    return msgspec.structs.replace(message, signature=base64.b64encode(signature).decode())


def verify_desired(message: Desired, public_keys: Iterable[bytes]) -> None:
    """None if one of `public_keys` signed this desired document (as decoded); ModelRejected with reason `unsigned`
    (no signature), `bad_signature` or `no_trusted_keys` otherwise. Which gateway it names is the caller's check."""
    if message.signature is None:
        raise ModelRejected("unsigned", "the desired document carries no signature")
    _check_signature(desired_signing_bytes(message), message.signature, public_keys)


def load_verified(model_dir_or_paths: Path | str | Sequence[Path | str], public_keys: Iterable[bytes]) -> Manifest:
    """Read and verify a model on disk: signature by a trusted key over the manifest, then the .tflite's sha256.

    Raises ModelRejected with reason missing / ambiguous / unsigned / bad_signature / no_trusted_keys /
    bad_manifest / hash_mismatch. Only a returned manifest may be loaded.
    """
    files = ModelFiles.locate(model_dir_or_paths)
    if not files.manifest.is_file() or not files.model.is_file():
        raise ModelRejected("missing", f"need {files.model.name} and {files.manifest.name}")
    if not files.signature.is_file():
        raise ModelRejected("unsigned", f"no {files.signature.name}")
    manifest = verify_manifest_bytes(files.manifest.read_bytes(), files.signature.read_bytes(), public_keys)
    actual = sha256_file(files.model)
    if actual != manifest.sha256:
        raise ModelRejected("hash_mismatch", f"{files.model.name} has sha256 {actual}, manifest says {manifest.sha256}")
    if files.model.name != manifest.model_file:
        raise ModelRejected("bad_manifest", f"manifest names {manifest.model_file}, file is {files.model.name}")
    return manifest


def write_signed(manifest: Manifest, directory: Path, private_key_pem: bytes | None) -> ModelFiles:
    """Write `<stem>.manifest.json` (and `<stem>.sig` when a key is given) next to the model."""
    files = ModelFiles.for_stem(directory, manifest.stem)
    data = manifest.to_bytes()
    files.manifest.write_bytes(data)
    if private_key_pem is not None:
        files.signature.write_bytes(sign_manifest(data, private_key_pem) + b"\n")
    return files
