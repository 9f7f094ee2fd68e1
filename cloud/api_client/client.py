"""A small HTTP client for the coldwatch API, shared by the ops CLI and the training worker: the same calls the
dashboard makes, with a bearer token (COLDWATCH_API_TOKEN). Errors carry the API's status and message.

Exceptions::

    ApiError            the API answered 4xx/5xx, or a body that is not what the call returns (status, message)
    ├── ApiUnavailable  no answer (connection refused, timeout)
    └── MalformedJob    a claimed training job that cannot be read as one (job_id when known)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TypeVar, overload

import httpx
import msgspec

from cloud.api_client.responses import (
    ArtifactToken,
    Gateway,
    GatewayCredentials,
    JobRef,
    ModelDetail,
    ModelEntry,
    ReadingsPage,
    Rollout,
    StoredReading,
    TrainingDataset,
    TrainingJob,
    TrainingUpdate,
)
from models.runtime.manifest import ModelFiles

DEFAULT_URL: Final = "http://127.0.0.1:8000"
T = TypeVar("T")
Params = Mapping[str, str | int]


def refusal_text(response: httpx.Response) -> str:
    """The API's refusal as one line: `reason (parameter): message` from its error body, FastAPI's `detail`, or
    the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and ("message" in detail or "error" in detail):
        where = f" ({detail['parameter']})" if detail.get("parameter") else ""
        return f"{detail.get('error', 'refused')}{where}: {detail.get('message', '')}".rstrip(": ")[:1000]
    if isinstance(detail, list):  # FastAPI's validation list
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                         for d in detail if isinstance(d, dict))[:1000]
    return str(detail)[:1000]


class ApiError(Exception):
    """The API refused a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class ApiUnavailable(ApiError):  # noqa: N818 (reads as the condition it is)
    """The API could not be reached."""


class MalformedJob(ApiError):  # noqa: N818 (reads as the condition it is)
    """A claimed training job that is not one; `job_id` when at least its id could be read."""

    def __init__(self, status: int, message: str, job_id: int | None) -> None:
        super().__init__(status, message)
        self.job_id = job_id


class OpsClient:
    """Typed calls for models, rollouts and training jobs. `transport` replaces the network (tests)."""

    def __init__(self, *, url: str, token: str | None, timeout_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> OpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, *, json: object = None, params: Params | None = None) -> httpx.Response:
        """One call; the response (ApiError for 4xx/5xx, ApiUnavailable when nothing answers)."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise ApiUnavailable(0, f"cannot reach the API at {self._http.base_url}: {method} {path}: "
                                    f"{type(exc).__name__}: {exc or 'no reason given'}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, f"{method} {path}: {refusal_text(response)}")
        return response

    @overload
    def request(self, method: str, path: str, *, json: object = None, params: Params | None = None) -> object: ...

    @overload
    def request(self, method: str, path: str, into: type[T], *, json: object = None,
                params: Params | None = None) -> T: ...

    def request(self, method: str, path: str, into: type[object] = object, *, json: object = None,
                params: Params | None = None) -> object:
        """One call; the JSON body decoded into `into` (default: plain JSON values; None for 204). A body that is
        not an `into` is an ApiError naming the call and what did not fit."""
        response = self._send(method, path, json=json, params=params)
        if response.status_code == 204:
            return None
        return _decode(response, into, f"{method} {path}")

    # -- models ---------------------------------------------------------------------------------------------
    def push_model(self, where: Path | str, *, source: str = "upload") -> ModelDetail:
        """Upload a signed model (a folder or any of its three files) to the registry."""
        files = ModelFiles.locate(where)
        if not files.signature.is_file():
            raise ApiError(0, f"{files.signature} is missing: sign the model first (`coldwatch models sign`)")
        body = {"model_b64": base64.b64encode(files.model.read_bytes()).decode(),
                "manifest_b64": base64.b64encode(files.manifest.read_bytes()).decode(),
                "signature": files.signature.read_text().strip(), "source": source}
        return self.request("POST", "/api/v1/models", ModelDetail, json=body)

    def models(self, profile: str | None = None) -> list[ModelEntry]:
        """Registered models, newest first."""
        return self.request("GET", "/api/v1/models", list[ModelEntry], params={"profile": profile} if profile else None)

    def model(self, stem: str) -> ModelDetail:
        """One model with its manifest."""
        return self.request("GET", f"/api/v1/models/{stem}", ModelDetail)

    def download(self, filename: str) -> bytes:
        """One artifact file (ops may download what gateways download)."""
        response = self._http.get(f"/api/v1/artifacts/{filename}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text[:500])
        return response.content

    # -- gateways -------------------------------------------------------------------------------------------
    def provision_gateway(self, gateway_id: str, *, site: str | None = None) -> GatewayCredentials:
        """POST /gateways: the gateway's MQTT account (its password, shown once)."""
        body = {"id": gateway_id} if site is None else {"id": gateway_id, "site": site}
        return self.request("POST", "/api/v1/gateways", GatewayCredentials, json=body)

    def artifact_token(self, gateway_id: str) -> ArtifactToken:
        """A new artifact-download token for the gateway (replaces its previous one)."""
        return self.request("POST", f"/api/v1/gateways/{gateway_id}/artifact-token", ArtifactToken)

    def gateway(self, gateway_id: str) -> Gateway:
        """One gateway's status and what it last reported."""
        return self.request("GET", f"/api/v1/gateways/{gateway_id}", Gateway)

    # -- rollouts -------------------------------------------------------------------------------------------
    def start_rollout(self, *, model: str, gateways: list[str] | None = None, site: str | None = None,
                      canary_fraction: float | None = None, canaries: list[str] | None = None,
                      probation_s: float | None = None, max_alert_ratio: float | None = None,
                      min_sensor_hours: float | None = None, alert_budget: float | None = None) -> Rollout:
        """POST /rollouts (RolloutCreate); the fields left at None take the API's defaults."""
        body = {"model": model, "gateways": gateways, "site": site, "canary_fraction": canary_fraction,
                "canaries": canaries, "probation_s": probation_s, "max_alert_ratio": max_alert_ratio,
                "min_sensor_hours": min_sensor_hours, "alert_budget": alert_budget}
        return self.request("POST", "/api/v1/rollouts", Rollout, json={k: v for k, v in body.items() if v is not None})

    def rollout(self, rollout_id: int) -> Rollout:
        """A rollout with each gateway's state."""
        return self.request("GET", f"/api/v1/rollouts/{rollout_id}", Rollout)

    def rollouts(self, state: str | None = None) -> list[Rollout]:
        """Rollouts, newest first."""
        return self.request("GET", "/api/v1/rollouts", list[Rollout], params={"state": state} if state else None)

    def rollout_action(self, rollout_id: int, action: str, reason: str | None = None) -> Rollout:
        """promote, halt or rollback."""
        body = {} if action == "promote" else {"reason": reason}
        return self.request("POST", f"/api/v1/rollouts/{rollout_id}/{action}", Rollout, json=body)

    # -- training jobs --------------------------------------------------------------------------------------
    def queue_training(self, *, profile: str, start: int, end: int, epochs: int | None = None,
                       seed: int | None = None, version: str | None = None) -> TrainingJob:
        """POST /training-jobs (TrainingJobCreate); the fields left at None take the API's defaults."""
        body = {"profile": profile, "start": start, "end": end, "epochs": epochs, "seed": seed, "version": version}
        return self.request("POST", "/api/v1/training-jobs", TrainingJob,
                            json={k: v for k, v in body.items() if v is not None})

    def training_job(self, job_id: int) -> TrainingJob:
        """A job with its progress and log."""
        return self.request("GET", f"/api/v1/training-jobs/{job_id}", TrainingJob)

    def claim_training(self, worker: str) -> TrainingJob | None:
        """The oldest queued job, now ours (None: nothing queued). MalformedJob when the job claimed cannot be
        read as one (it is ours all the same: the worker fails it)."""
        path = "/api/v1/training-jobs/claim"
        response = self._send("POST", path, json={"worker": worker})
        if response.status_code == 204:
            return None
        try:
            return _decode(response, TrainingJob, f"POST {path}")
        except ApiError as exc:
            try:
                job_id: int | None = msgspec.json.decode(response.content, type=JobRef).id
            except msgspec.MsgspecError:
                job_id = None
            raise MalformedJob(exc.status, exc.message, job_id) from None

    def report_training(self, job_id: int, update: TrainingUpdate) -> TrainingJob:
        """Progress / log lines / final state."""
        return self.request("POST", f"/api/v1/training-jobs/{job_id}/progress", TrainingJob,
                            json=msgspec.to_builtins(update))

    def training_dataset(self, job_id: int) -> TrainingDataset:
        """The job's sensors and labels."""
        return self.request("GET", f"/api/v1/training-jobs/{job_id}/dataset", TrainingDataset)

    def readings(self, sensor: str, start_ms: int, end_ms: int) -> list[StoredReading]:
        """A sensor's stored readings, oldest first (fetched in windows of at most 31 days)."""
        step = 30 * 86_400_000
        out: list[StoredReading] = []
        for lo in range(start_ms, end_ms, step):
            page = self.request("GET", f"/api/v1/sensors/{sensor}/readings", ReadingsPage,
                                params={"start": lo, "end": min(end_ms, lo + step)})
            out.extend(page.readings)
        return out


def _decode(response: httpx.Response, into: type[T], call: str) -> T:
    """The body as an `into`; ApiError (with the response's status) saying what did not fit."""
    try:
        return msgspec.json.decode(response.content, type=into)
    except msgspec.MsgspecError as exc:
        raise ApiError(response.status_code, f"{call}: unexpected response: {exc}") from None
