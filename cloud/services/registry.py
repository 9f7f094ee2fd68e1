"""The model registry: verify and store uploaded artifacts (files on disk, a row in SQL), list and show them,
and gateway download tokens. A model is registered only when a trusted key signed it and its hash matches."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec
from sqlmodel import Session, col, select

from cloud.db.fleet import Gateway
from cloud.db.registry import GatewayToken, ModelArtifact
from cloud.security import new_token, token_digest
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError
from models.runtime.manifest import (
    MANIFEST_SUFFIX,
    MODEL_SUFFIX,
    SIG_SUFFIX,
    Manifest,
    ModelRejected,
    load_public_key,
    sha256_file,
    verify_manifest_bytes,
)
from protocol.messages import DesiredModel

log = logging.getLogger(__name__)
MAX_ARTIFACT_BYTES: Final = 64 * 1024 * 1024  # what a gateway accepts (edge_agent/updater.py)


class RegistryError(DomainError):
    """A model that cannot be registered; `reason` names why (bad_signature, hash_mismatch, exists, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, kind="conflict" if reason == "exists" else "invalid", reason=reason)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def trusted_keys(spec: str | None) -> list[bytes]:
    """The public keys named in COLDWATCH_MODEL_PUBLIC_KEYS (comma-separated files)."""
    return [load_public_key(Path(p.strip()).read_bytes()) for p in (spec or "").split(",") if p.strip()]


def decode_b64(text: str, what: str) -> bytes:
    """Base64 from an upload body; RegistryError naming the field when it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RegistryError("bad_encoding", f"{what} is not base64") from None


def register(session: Session, *, models_dir: Path, model: bytes, manifest: bytes, signature: str,
             public_keys: list[bytes], actor: str, source: str = "upload") -> ModelArtifact:
    """Verify (signature by a trusted key, sha256 of the .tflite) and store a model; RegistryError otherwise.

    Files land in `<models_dir>/<stem>/` (written beside, then renamed); a stem is registered once.
    """
    if len(model) > MAX_ARTIFACT_BYTES:
        raise RegistryError("oversized", f"model larger than {MAX_ARTIFACT_BYTES} bytes")
    if not public_keys:
        raise RegistryError("no_trusted_keys", "COLDWATCH_MODEL_PUBLIC_KEYS names no key: uploads cannot be checked")
    try:
        parsed = verify_manifest_bytes(manifest, signature, public_keys)
    except ModelRejected as exc:
        raise RegistryError(exc.reason, exc.detail or str(exc)) from None
    try:  # what a desired document can name (protocol.messages.DesiredModel): refused now, not at rollout time
        msgspec.convert({"name": parsed.name, "version": parsed.version, "profile": parsed.profile, "url": "https://x/",
                         "sha256": parsed.sha256, "signature": signature[:200]}, DesiredModel)
    except msgspec.ValidationError as exc:
        raise RegistryError("invalid_name", f"a gateway could not be sent this model: {exc}") from None
    if session.get(ModelArtifact, parsed.stem) is not None:
        raise RegistryError("exists", f"{parsed.stem} is already registered; give the model a new version")
    folder = models_dir / parsed.stem
    staging = models_dir / f".upload-{parsed.stem}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        (staging / parsed.model_file).write_bytes(model)
        actual = sha256_file(staging / parsed.model_file)
        if actual != parsed.sha256:
            raise RegistryError("hash_mismatch", f"the model has sha256 {actual}, the manifest says {parsed.sha256}")
        (staging / (parsed.stem + MANIFEST_SUFFIX)).write_bytes(manifest)
        (staging / (parsed.stem + SIG_SUFFIX)).write_text(signature.strip() + "\n")
        shutil.rmtree(folder, ignore_errors=True)  # files of a registration whose transaction did not commit
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row = _row(parsed, signature.strip(), len(model), actor, source)
    session.add(row)
    audit.record(session, actor=actor, action="model.register", target_type="model", target_id=row.stem,
                 after={"profile": row.profile, "sha256": row.sha256, "source": source})
    log.info("model registered model=%s profile=%s sha256=%s by=%s source=%s", row.stem, row.profile, row.sha256,
             actor, source)
    return row


def _row(manifest: Manifest, signature: str, size: int, actor: str, source: str) -> ModelArtifact:
    return ModelArtifact(stem=manifest.stem, name=manifest.name, version=manifest.version, profile=manifest.profile,
                         sha256=manifest.sha256, threshold=manifest.threshold, size_bytes=size,
                         created_at=manifest.created_at, source=source, signature=signature,
                         manifest=dataclasses.asdict(manifest), metrics=manifest.metrics, registered_at=now_ms(),
                         registered_by=actor)


def list_models(session: Session, *, profile: str | None = None) -> Sequence[ModelArtifact]:
    """Registered models, newest registration first."""
    query = select(ModelArtifact)
    if profile is not None:
        query = query.where(ModelArtifact.profile == profile)
    return session.exec(query.order_by(col(ModelArtifact.registered_at).desc(), col(ModelArtifact.stem))).all()


def get_model(session: Session, *, stem: str) -> ModelArtifact | None:
    """One registered model by `<name>-<version>`."""
    return session.get(ModelArtifact, stem) if len(stem) <= 129 else None


def artifact_file(models_dir: Path, model: ModelArtifact, filename: str) -> Path | None:
    """The path of `<stem>.tflite`, `.manifest.json` or `.sig` of a registered model (None: not one of them)."""
    for suffix in (MODEL_SUFFIX, MANIFEST_SUFFIX, SIG_SUFFIX):
        if filename == model.stem + suffix:
            path = models_dir / model.stem / filename
            return path if path.is_file() else None
    return None


def issue_gateway_token(session: Session, *, gateway: Gateway, actor: str) -> str:
    """A new artifact-download token for `gateway` (returned once; it replaces any previous one)."""
    token = new_token()
    row = session.get(GatewayToken, gateway.id)
    if row is None:
        row = GatewayToken(gateway_id=gateway.id, token_hash=token_digest(token), created_at=now_ms(),
                           created_by=actor)
    else:
        row.token_hash, row.created_at, row.created_by = token_digest(token), now_ms(), actor
    session.add(row)
    audit.record(session, actor=actor, action="gateway.issue_artifact_token", target_type="gateway",
                 target_id=gateway.id, after={"artifact_token": "issued"})
    return token


def gateway_for_token(session: Session, *, token: str) -> str | None:
    """The gateway id owning a download token, if it is current and the gateway is not revoked."""
    row = session.exec(select(GatewayToken).where(GatewayToken.token_hash == token_digest(token))).first()
    if row is None:
        return None
    gateway = session.get(Gateway, row.gateway_id)
    return None if gateway is None or gateway.revoked else row.gateway_id


class DownloadCache:
    """Who may download what, cached for `ttl_s`: a fleet fetching a model at once must not queue every request
    behind SQL (SQLite serialises transactions). A revoked or replaced token keeps working for at most `ttl_s`."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[str, tuple[float, str]] = {}
        self._models: dict[str, tuple[float, ModelArtifact]] = {}
        self._loaded_at = -1e9
        self._lock = threading.Lock()

    def gateway(self, session: Session, token: str) -> str | None:
        """The gateway owning `token`. A miss reloads every token in one query (at most once a second), so a
        fleet arriving at once costs one read, not one per gateway."""
        key = token_digest(token)
        with self._lock:
            hit = self._tokens.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            if time.monotonic() - self._loaded_at >= 1.0:
                rows = session.exec(select(GatewayToken.token_hash, GatewayToken.gateway_id)
                                    .join(Gateway, col(Gateway.id) == GatewayToken.gateway_id)
                                    .where(col(Gateway.revoked).is_(False))).all()
                session.rollback()  # end the read now
                now = self._loaded_at = time.monotonic()
                self._tokens = {digest: (now, gateway) for digest, gateway in rows}
            hit = self._tokens.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl_s else None

    def model(self, session: Session, stem: str) -> ModelArtifact | None:
        """A registered model (rows never change once registered)."""
        with self._lock:
            hit = self._models.get(stem)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        row = get_model(session, stem=stem)
        if row is not None:
            session.expunge(row)
            with self._lock:
                self._models[stem] = (time.monotonic(), row)
        return row

