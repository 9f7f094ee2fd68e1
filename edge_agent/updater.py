"""Model updates at the gateway: download over HTTPS with the gateway's token, verify sha256 and the
Ed25519 signature, smoke-test, install beside the old one, switch atomically; the previous model stays."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from edge_agent import __version__
from edge_agent.desired import Result
from edge_agent.detect.model import ActiveModel
from models.runtime.features import KNOWN_FEATURES, FeatureSpec
from models.runtime.manifest import (
    MANIFEST_SUFFIX,
    MODEL_SUFFIX,
    SIG_SUFFIX,
    Manifest,
    ModelFiles,
    ModelRejected,
    load_verified,
)
from protocol.messages import DesiredModel

log = logging.getLogger(__name__)
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
SMOKE_BUDGET_MS = 200.0


def check_runnable(manifest: Manifest, agent_version: str = __version__) -> None:
    """Refuse a verified model this agent cannot feed: one that names a newer agent as its minimum
    (`agent_too_old`), or whose feature spec names a channel this agent does not compute (`unsupported_features`)."""
    if not manifest.runs_on(agent_version):
        raise ModelRejected("agent_too_old", f"{manifest.stem} needs coldwatch-agent {manifest.min_agent_version} "
                                             f"or newer; this agent is {agent_version}")
    spec = manifest.feature_spec
    channels = spec.get("features") if isinstance(spec, dict) else None
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ModelRejected("bad_manifest", f"{manifest.stem}: feature_spec has no list of channel names")
    if unknown := sorted(set(channels) - KNOWN_FEATURES):
        raise ModelRejected("unsupported_features", f"{manifest.stem} needs feature channels this agent "
                                                    f"({agent_version}) cannot compute: {', '.join(unknown)}")
    try:
        FeatureSpec.from_dict(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelRejected("bad_manifest", f"{manifest.stem}: feature_spec: {exc}") from exc


@dataclass
class ModelStore:
    """`<dir>/<name>-<version>/` per model and `<dir>/active.json` = {profile: {"active": stem, "previous": stem}}."""

    directory: Path
    public_keys: list[bytes]

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def pointer(self) -> Path:
        return self.directory / "active.json"

    def pointers(self) -> dict[str, dict[str, str | None]]:
        try:
            data = json.loads(self.pointer.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_pointers(self, data: dict[str, dict[str, str | None]]) -> None:
        tmp = self.pointer.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.pointer)  # the switch is this rename: old or new, never half

    def load(self, stem: str) -> ActiveModel:
        """Verify (again: the disk may have been tampered with; the agent may have been downgraded) and load an
        installed model."""
        folder = self.directory / stem
        manifest = load_verified(folder, self.public_keys)
        check_runnable(manifest)
        return ActiveModel.load(ModelFiles.for_stem(folder, stem).model, manifest)

    def load_active(self) -> dict[str, ActiveModel]:
        """Every profile's active model; one that fails verification falls back to its previous one."""
        models: dict[str, ActiveModel] = {}
        for profile, entry in self.pointers().items():
            for stem in (entry.get("active"), entry.get("previous")):
                if not stem:
                    continue
                try:
                    models[profile] = self.load(stem)
                    break
                except (ModelRejected, ValueError, OSError) as exc:
                    log.error("event=model_refused_at_boot stem=%s reason=%s", stem, exc)
        return models

    def activate(self, profile: str, stem: str) -> None:
        data = self.pointers()
        entry = data.get(profile, {})
        current = entry.get("active")
        data[profile] = {"active": stem, "previous": current if current != stem else entry.get("previous")}
        self._write_pointers(data)

    def roll_back(self, profile: str) -> str | None:
        """Make the previous model active again; returns its stem (None: there was none)."""
        data = self.pointers()
        previous = data.get(profile, {}).get("previous")
        if not previous:
            data.pop(profile, None)
        else:
            data[profile] = {"active": previous, "previous": None}
        self._write_pointers(data)
        return previous


Fetch = Callable[[str, str | None], bytes]
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without user info; ValueError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None or "@" in parts.netloc:
        raise ValueError(f"not an http(s) URL with a plain host: {url[:200]!r}")
    return parts.scheme, parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


def check_artifact_url(url: str, origin: str | None) -> None:
    """ModelRejected unless `url` may be fetched (with the token): from `origin` (the configured API's scheme, host
    and port, compared after parsing) when there is one; else over HTTPS, or plain HTTP to a loopback host. User
    info (`http://127.0.0.1@evil.example`) and lookalike hosts (`http://localhost.evil.example`) never pass."""
    try:
        scheme, host, port = _origin(url)
    except ValueError as exc:
        raise ModelRejected("bad_url", str(exc)) from None
    if origin is not None:
        if (scheme, host, port) != _origin(origin):
            raise ModelRejected("foreign_url", f"artifacts are fetched only from {origin}, not {scheme}://{host}:{port}")
    elif scheme != "https" and host not in LOOPBACK_HOSTS:
        raise ModelRejected("insecure_url", "artifacts are fetched over HTTPS only")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        raise ModelRejected("redirected", "artifact downloads do not follow redirects")


_OPENER = urllib.request.build_opener(_NoRedirects())


def artifact_fetch(origin: str | None) -> Fetch:
    """The fetcher the agent uses: `check_artifact_url` against `origin` (updater.api_url), then `https_fetch`."""
    def fetch(url: str, token: str | None) -> bytes:
        check_artifact_url(url, origin)
        return https_fetch(url, token)
    return fetch


def https_fetch(url: str, token: str | None) -> bytes:
    """GET `url` with the gateway's bearer token, no redirects; refuses non-HTTPS except to loopback (dev)."""
    check_artifact_url(url, None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
    with _OPENER.open(request, timeout=60) as response:
        data: bytes = response.read(MAX_ARTIFACT_BYTES + 1)
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ModelRejected("oversized", f"artifact larger than {MAX_ARTIFACT_BYTES} bytes")
    return data


@dataclass
class Installer:
    """The desired handler's model installer; `on_activate` swaps the running model (agent's lock held there).
    Every refused model is logged with its reason, counted through `on_refused(reason)` and reported."""

    store: ModelStore
    on_activate: Callable[[str, ActiveModel], None]
    on_shadow: Callable[[DesiredModel, ActiveModel, int], None] = lambda _m, _a, _v: None
    token: str | None = None
    fetch: Fetch = https_fetch
    gateway: str = ""
    on_refused: Callable[[str], None] = lambda _reason: None

    def install(self, model: DesiredModel, desired_version: int) -> tuple[Result, str | None, str | None]:
        stem = f"{model.name}-{model.version}"
        staging = self.store.directory / f".staging-{stem}"
        try:
            candidate = self._installed(model, stem) or self._fetch_and_install(model, stem, staging)
            if model.mode == "shadow":
                self.on_shadow(model, candidate, desired_version)
                current = self.store.pointers().get(model.profile, {}).get("active")
                log.info("event=model_shadow gateway=%s profile=%s model=%s", self.gateway, model.profile, stem)
                return "shadow", current.split("-", 1)[1] if current else None, None
            self.store.activate(model.profile, stem)
            self.on_activate(model.profile, candidate)
        except ModelRejected as exc:
            self.on_refused(exc.reason)
            log.error("event=model_rejected gateway=%s model=%s reason=%s detail=%r", self.gateway, stem, exc.reason,
                      exc.detail[:200])
            return "rejected", None, f"{exc.reason}: {exc.detail}"[:500]
        except (OSError, ValueError, RuntimeError) as exc:
            self.on_refused("install_failed")
            log.error("event=model_install_failed gateway=%s model=%s error=%r", self.gateway, stem, exc)
            return "rejected", None, f"install_failed: {exc}"[:500]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("event=model_activated gateway=%s profile=%s model=%s", self.gateway, model.profile, stem)
        return "applied", model.version, None

    def _installed(self, model: DesiredModel, stem: str) -> ActiveModel | None:
        """A model already on disk (a shadow being promoted, a rollback): verified again, no download."""
        if not (self.store.directory / stem).is_dir():
            return None
        try:
            installed = self.store.load(stem)
        except (ModelRejected, ValueError, OSError):
            return None  # damaged on disk: fetch it again
        if installed.manifest.sha256 != model.sha256 or installed.manifest.profile != model.profile:
            raise ModelRejected("desired_mismatch", "installed model's hash or profile differs from the desired state")
        return installed

    def _fetch_and_install(self, model: DesiredModel, stem: str, staging: Path) -> ActiveModel:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self._download(model, staging, stem)
        manifest = load_verified(staging, self.store.public_keys)
        if manifest.sha256 != model.sha256 or manifest.profile != model.profile:
            raise ModelRejected("desired_mismatch", "manifest hash or profile differs from the desired state")
        if manifest.stem != stem:
            raise ModelRejected("desired_mismatch", f"manifest is {manifest.stem}, desired names {stem}")
        check_runnable(manifest)  # before anything tries to build its windows
        self._smoke_test(ActiveModel.load(ModelFiles.for_stem(staging, stem).model, manifest))
        final = self.store.directory / stem
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        return self.store.load(stem)  # from its final place, verified once more

    def _download(self, model: DesiredModel, staging: Path, stem: str) -> None:
        if not model.url.endswith(MODEL_SUFFIX):
            raise ModelRejected("bad_url", f"model URL must end in {MODEL_SUFFIX}")
        base = model.url[: -len(MODEL_SUFFIX)]
        (staging / (stem + MODEL_SUFFIX)).write_bytes(self.fetch(model.url, self.token))
        (staging / (stem + MANIFEST_SUFFIX)).write_bytes(self.fetch(base + MANIFEST_SUFFIX, self.token))
        (staging / (stem + SIG_SUFFIX)).write_text(model.signature)

    @staticmethod
    def _smoke_test(model: ActiveModel) -> None:
        """Scores must be finite and a 200-window batch must run within the latency budget."""
        spec: FeatureSpec = model.spec
        rng = np.random.default_rng(0)
        windows = rng.normal(0.0, 1.0, size=(200, spec.input_size)).astype(np.float32)
        t0 = time.perf_counter()
        scores = model.scores(windows)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if not np.all(np.isfinite(scores)):
            raise ModelRejected("smoke_test", "the model gives non-finite scores")
        if elapsed_ms > SMOKE_BUDGET_MS:
            raise ModelRejected("smoke_test", f"200 windows took {elapsed_ms:.0f} ms (budget {SMOKE_BUDGET_MS:.0f})")
