"""The rollout state machine and training-job claims (tests/unit/test_cloud_rollouts.py) on both SQL backends:
SQLite and PostgreSQL (`SELECT … FOR UPDATE SKIP LOCKED`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session

from cloud.db.engine import init_schema, make_engine
from tests.unit.test_cloud_rollouts import (
    seed,
    test_a_discarded_shadow_halts_and_the_canary_gets_its_previous_model,
    test_a_first_model_over_its_budget_is_withdrawn_from_the_canary,
    test_canaries_shadow_then_the_rest_get_the_model_active,
    test_training_jobs_are_claimed_once_and_keep_their_log,
    test_versions_only_grow_and_a_busy_gateway_is_refused,
)

pytestmark = pytest.mark.integration

__all__ = ["test_a_discarded_shadow_halts_and_the_canary_gets_its_previous_model",
           "test_a_first_model_over_its_budget_is_withdrawn_from_the_canary",
           "test_canaries_shadow_then_the_rest_get_the_model_active",
           "test_training_jobs_are_claimed_once_and_keep_their_log",
           "test_versions_only_grow_and_a_busy_gateway_is_refused"]


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    init_schema(engine)
    with Session(engine, expire_on_commit=False) as s:
        seed(s)
        yield s
    engine.dispose()
