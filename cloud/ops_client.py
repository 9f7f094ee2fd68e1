"""A small HTTP client for the coldwatch API, shared by the ops CLI and the training worker: the same calls the
dashboard makes, with a bearer token (COLDWATCH_API_TOKEN). Errors carry the API's status and message.

Exceptions::

    ApiError            the API answered 4xx/5xx (status, message)
    └── ApiUnavailable  no answer (connection refused, timeout)
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Final

import httpx

from models.runtime.manifest import ModelFiles

DEFAULT_URL: Final = "http://127.0.0.1:8000"


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

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body (None for 204)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnavailable(0, f"cannot reach the API at {self._http.base_url}: {method} {path}: "
                                    f"{type(exc).__name__}: {exc or 'no reason given'}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, f"{method} {path}: {refusal_text(response)}")
        return None if response.status_code == 204 else response.json()

    # -- models ---------------------------------------------------------------------------------------------
    def push_model(self, where: Path | str, *, source: str = "upload") -> dict[str, Any]:
        """Upload a signed model (a folder or any of its three files) to the registry."""
        files = ModelFiles.locate(where)
        if not files.signature.is_file():
            raise ApiError(0, f"{files.signature} is missing: sign the model first (`coldwatch models sign`)")
        body = {"model_b64": base64.b64encode(files.model.read_bytes()).decode(),
                "manifest_b64": base64.b64encode(files.manifest.read_bytes()).decode(),
                "signature": files.signature.read_text().strip(), "source": source}
        result: dict[str, Any] = self.request("POST", "/api/v1/models", json=body)
        return result

    def models(self, profile: str | None = None) -> list[dict[str, Any]]:
        """Registered models, newest first."""
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/models",
                                                    params={"profile": profile} if profile else None)
        return result

    def model(self, stem: str) -> dict[str, Any]:
        """One model with its manifest."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/models/{stem}")
        return result

    def download(self, filename: str) -> bytes:
        """One artifact file (ops may download what gateways download)."""
        response = self._http.get(f"/api/v1/artifacts/{filename}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text[:500])
        return response.content

    # -- rollouts -------------------------------------------------------------------------------------------
    def start_rollout(self, **body: Any) -> dict[str, Any]:
        """POST /rollouts with RolloutCreate fields (model, gateways, site, canary_fraction, probation_s, ...)."""
        result: dict[str, Any] = self.request("POST", "/api/v1/rollouts",
                                              json={k: v for k, v in body.items() if v is not None})
        return result

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        """A rollout with each gateway's state."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/rollouts/{rollout_id}")
        return result

    def rollouts(self, state: str | None = None) -> list[dict[str, Any]]:
        """Rollouts, newest first."""
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/rollouts",
                                                    params={"state": state} if state else None)
        return result

    def rollout_action(self, rollout_id: int, action: str, reason: str | None = None) -> dict[str, Any]:
        """promote, halt or rollback."""
        body = {} if action == "promote" else {"reason": reason}
        result: dict[str, Any] = self.request("POST", f"/api/v1/rollouts/{rollout_id}/{action}", json=body)
        return result

    # -- training jobs --------------------------------------------------------------------------------------
    def queue_training(self, **body: Any) -> dict[str, Any]:
        """POST /training-jobs (profile, start, end, epochs, seed, version)."""
        result: dict[str, Any] = self.request("POST", "/api/v1/training-jobs",
                                              json={k: v for k, v in body.items() if v is not None})
        return result

    def training_job(self, job_id: int) -> dict[str, Any]:
        """A job with its progress and log."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/training-jobs/{job_id}")
        return result

    def claim_training(self, worker: str) -> dict[str, Any] | None:
        """The oldest queued job, now ours (None: nothing queued)."""
        result: dict[str, Any] | None = self.request("POST", "/api/v1/training-jobs/claim", json={"worker": worker})
        return result

    def report_training(self, job_id: int, **update: Any) -> dict[str, Any]:
        """Progress / log lines / final state."""
        result: dict[str, Any] = self.request("POST", f"/api/v1/training-jobs/{job_id}/progress",
                                              json={k: v for k, v in update.items() if v is not None})
        return result

    def training_dataset(self, job_id: int) -> dict[str, Any]:
        """The job's sensors and labels."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/training-jobs/{job_id}/dataset")
        return result

    def readings(self, sensor: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """A sensor's stored readings, oldest first (fetched in windows of at most 31 days)."""
        step = 30 * 86_400_000
        out: list[dict[str, Any]] = []
        for lo in range(start_ms, end_ms, step):
            body = self.request("GET", f"/api/v1/sensors/{sensor}/readings",
                                params={"start": lo, "end": min(end_ms, lo + step)})
            out.extend(body["readings"])
        return out
