"""`/api/v1/models` (registry: upload, list, show), `/api/v1/artifacts/{file}` (signed artifact download for
gateways with their token, or ops), `/api/v1/gateways/{id}/artifact-token` (issue a gateway's token)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from cloud.api.deps import Ops, SessionDep, SettingsDep, Viewer, request_token
from cloud.db.fleet import Gateway
from cloud.db.registry import ModelArtifactDetail, ModelArtifactPublic
from cloud.services import registry, users

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["models"])


class ModelUpload(BaseModel):
    """A signed model: the three files, base64 (the signature is verified over the manifest's exact bytes)."""

    model_b64: str = Field(max_length=90_000_000, description="the .tflite, base64")
    manifest_b64: str = Field(max_length=2_000_000, description="the .manifest.json, base64")
    signature: str = Field(max_length=200, description="the .sig content (base64 Ed25519 over the manifest)")
    source: str = Field(default="upload", max_length=100)


class ArtifactToken(BaseModel):
    """A gateway's artifact-download token, shown once: put it in the agent's `updater.token_file`."""

    gateway_id: str
    token: str


def _detail(row: object) -> ModelArtifactDetail:
    return ModelArtifactDetail.model_validate(row)


@router.post("/models", response_model=ModelArtifactDetail, status_code=201, summary="Register a signed model (ops)",
             responses={409: {"description": "already registered"}, 422: {"description": "unsigned, bad "
                                                                                         "signature or hash"}})
def upload(body: ModelUpload, user: Ops, session: SessionDep, settings: SettingsDep) -> ModelArtifactDetail:
    """Verify the signature against COLDWATCH_MODEL_PUBLIC_KEYS and the sha256, then store the files."""
    row = registry.register(
        session, models_dir=Path(settings.models_dir), model=registry.decode_b64(body.model_b64, "model_b64"),
        manifest=registry.decode_b64(body.manifest_b64, "manifest_b64"), signature=body.signature,
        public_keys=registry.trusted_keys(settings.model_public_keys), actor=user.username, source=body.source)
    session.commit()
    return _detail(row)


@router.get("/models", response_model=list[ModelArtifactPublic], summary="Registered models, newest first")
def list_models(user: Viewer, session: SessionDep,
                profile: Annotated[str | None, Query(max_length=32)] = None) -> list[ModelArtifactPublic]:
    """Every registered model (optionally of one profile) with its metrics."""
    return [ModelArtifactPublic.model_validate(m) for m in registry.list_models(session, profile=profile)]


@router.get("/models/{stem}", response_model=ModelArtifactDetail, summary="One model: manifest, metrics, hash")
def show_model(stem: str, user: Viewer, session: SessionDep) -> ModelArtifactDetail:
    """The manifest as signed, the signature and the sha256 of the .tflite."""
    row = registry.get_model(session, stem=stem)
    if row is None:
        raise HTTPException(status_code=404, detail="no such model")
    return _detail(row)


@router.get("/artifacts/{filename}", summary="Download a model file (gateway token or ops)",
            response_class=FileResponse, responses={401: {"description": "no valid token"}})
def download(filename: str, request: Request, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """`<stem>.tflite`, `<stem>.manifest.json` or `<stem>.sig`, for a gateway's download token or an ops user."""
    cache: registry.DownloadCache | None = getattr(request.app.state, "download_cache", None)
    if cache is None:
        cache = request.app.state.download_cache = registry.DownloadCache()
    token = request_token(request)
    gateway = cache.gateway(session, token) if token else None
    who = f"gateway:{gateway}" if gateway else None
    if who is None and token:
        user = users.user_for_token(session, token=token)
        who = user.username if user is not None and users.has_role(user, "ops") else None
    if who is None:
        raise HTTPException(status_code=401, detail="a gateway artifact token or an ops user is required",
                            headers={"WWW-Authenticate": "Bearer"})
    stem = filename
    for suffix in (".manifest.json", ".tflite", ".sig"):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
    row = cache.model(session, stem)
    path = registry.artifact_file(Path(settings.models_dir), row, filename) if row is not None else None
    session.close()  # end the read transaction now, not after the file is sent (SQLite: one writer at a time)
    if path is None:
        raise HTTPException(status_code=404, detail="no such artifact")
    log.info("artifact download file=%s by=%s", filename, who)
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/gateways/{gateway_id}/artifact-token", response_model=ArtifactToken, status_code=201,
             summary="Issue a gateway's artifact-download token (ops)")
def issue_token(gateway_id: str, user: Ops, session: SessionDep) -> ArtifactToken:
    """A new token (shown once) replaces the gateway's previous one."""
    gateway = session.get(Gateway, gateway_id) if len(gateway_id) <= 64 else None
    if gateway is None:
        raise HTTPException(status_code=404, detail="no such gateway")
    token = registry.issue_gateway_token(session, gateway=gateway, actor=user.username)
    session.commit()
    log.info("artifact token issued gateway=%s by=%s", gateway_id, user.username)
    return ArtifactToken(gateway_id=gateway_id, token=token)
