"""A preview of a stack that needs a secret not set yet (the README's `make preview STACK=prod` on a fresh checkout):
it shows the objects with a secret placeholder and warns; the update itself still stops, registering nothing."""

from __future__ import annotations

import logging

import pytest

from tests.harness import TEST_SECRETS, run_stack, run_stack_failure
from tests.unit.mocking import stack_values

REGISTRY_ONLY = {"registryPassword": TEST_SECRETS["registryPassword"]}


def test_a_preview_without_the_hub_token_shows_its_secret_with_a_placeholder(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        run = run_stack("prod", config=stack_values("prod"), secrets=REGISTRY_ONLY, preview=True)
    secrets = [r for r in run.kubernetes_objects() if r.kind == "Secret" and r.name.endswith("-hub-token")]
    assert len(secrets) >= 2, [r.name for r in run.kubernetes_objects()]
    assert {r.inputs["stringData"]["token"] for r in secrets} == {"<model-serving:hubToken not set>"}
    warnings = [r.getMessage() for r in caplog.records if "model-serving:hubToken is not set" in r.getMessage()]
    assert len(warnings) == 1 and "pulumi up" in warnings[0], warnings


def test_the_update_without_the_hub_token_still_stops_before_anything() -> None:
    failure = run_stack_failure("prod", config=stack_values("prod"), secrets=REGISTRY_ONLY)
    assert "needs the secret model-serving:hubToken" in str(failure.error)
    assert failure.resources == []


def test_a_set_secret_is_used_as_is_in_a_preview() -> None:
    run = run_stack("prod", config=stack_values("prod"), preview=True)
    secret = next(r for r in run.kubernetes_objects() if r.kind == "Secret" and r.name.endswith("-hub-token"))
    assert secret.inputs["stringData"]["token"] == TEST_SECRETS["hubToken"]
