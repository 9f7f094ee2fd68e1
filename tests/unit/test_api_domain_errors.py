"""One mapping from a service's refusal to HTTP: the error's kind decides the status, never its message; every
refusal has the common body and is counted by reason."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.api.errors import DOMAIN_STATUS, install_error_handlers
from cloud.api.metrics import ApiMetrics
from cloud.services import alerts, dead_letters, fleet, registry, rollouts, suppressions, training, users
from cloud.services.errors import KINDS, DomainError, Kind

SERVICE_ERRORS: list[type[DomainError]] = [alerts.AlertError, dead_letters.DeadLetterError, fleet.FleetError,
                                           suppressions.SuppressionError, training.TrainingError, users.UserError]


def _client(error: DomainError) -> tuple[TestClient, ApiMetrics]:
    app = FastAPI()
    app.state.metrics = ApiMetrics()
    install_error_handlers(app)

    @app.post("/refuse")
    def refuse() -> None:
        raise error

    return TestClient(app), app.state.metrics


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("error_type", SERVICE_ERRORS)
def test_a_service_refusal_gets_its_kinds_status_whatever_it_says(error_type: type[DomainError], kind: Kind) -> None:
    client, metrics = _client(error_type("it is already done, or it exists", kind=kind))
    response = client.post("/refuse")
    assert response.status_code == DOMAIN_STATUS[kind]
    assert response.json() == {"error": kind, "parameter": None, "message": "it is already done, or it exists"}
    assert metrics.rejected.labels(reason=kind)._value.get() == 1


def test_every_kind_has_a_status_and_every_service_error_is_a_domain_error() -> None:
    assert set(DOMAIN_STATUS) == set(KINDS)
    for module in (alerts, dead_letters, fleet, registry, rollouts, suppressions, training, users):
        found = [obj for name, obj in inspect.getmembers(module, inspect.isclass)
                 if name.endswith("Error") and obj.__module__ == module.__name__]
        assert found and all(issubclass(obj, DomainError) for obj in found), module.__name__


def test_a_registry_refusal_keeps_its_reason_and_exists_is_a_conflict() -> None:
    client, _ = _client(registry.RegistryError("exists", "m-3 is already registered"))
    response = client.post("/refuse")
    assert response.status_code == 409 and response.json()["error"] == "exists"
    client, _ = _client(registry.RegistryError("hash_mismatch", "the model has sha256 00"))
    assert client.post("/refuse").status_code == 422


def test_a_rollout_refusal_is_a_conflict_unless_it_says_otherwise() -> None:
    assert rollouts.RolloutError("busy").kind == "conflict"
    client, _ = _client(rollouts.RolloutError("no registered model 'x'", "not_found"))
    assert client.post("/refuse").status_code == 404
