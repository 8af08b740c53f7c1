"""Rules 1-4: requests, limits, limit/request ratio, per-container maximums."""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import check, container, deployment, set_path

C0 = "spec.template.spec.containers[0]"


def test_compliant_deployment_passes_every_resource_rule() -> None:
    obj = deployment(gpus=2)
    obj["spec"]["template"]["spec"]["initContainers"] = [container("init", cpu="1", memory="1Gi")]
    for rule in (
        "container-resource-requests",
        "container-resource-limits",
        "container-limit-request-ratio",
        "container-resource-maximums",
    ):
        out = check(rule, obj)
        assert not out and out.undecided is None, (rule, out.text())


# --- container-resource-requests -------------------------------------------------------


def test_missing_requests_fail_on_containers_and_init_containers() -> None:
    init = container("init")
    del init["resources"]["requests"]
    obj = deployment()
    obj["spec"]["template"]["spec"]["initContainers"] = [init]
    obj = set_path(obj, f"{C0}.resources.requests", {"memory": "16Gi"})
    out = check("container-resource-requests", obj)
    assert len(out.violations) == 3
    assert 'init container "init"' in out.violations[0] and "no cpu request" in out.violations[0]
    assert 'container "server"' in out.violations[2] and "no cpu request" in out.violations[2]


@pytest.mark.parametrize("value", ["0", "lots"])
def test_zero_or_invalid_request_fails(value: str) -> None:
    out = check("container-resource-requests", set_path(deployment(), f"{C0}.resources.requests.cpu", value))
    assert len(out.violations) == 1


def test_requests_config_adds_resources() -> None:
    config = {"resources": ["cpu", "memory", "ephemeral-storage"]}
    out = check("container-resource-requests", deployment(), config)
    assert "no ephemeral-storage request" in out.text()


def test_unknown_requests_are_undecided_not_passed() -> None:
    obj = set_path(deployment(), f"{C0}.resources.requests", UNKNOWN_STRING_VALUE)
    out = check("container-resource-requests", obj)
    assert not out.violations
    assert out.undecided == f"cannot decide: {C0}.resources.requests is unknown during preview"


# --- container-resource-limits ---------------------------------------------------------


def test_memory_limit_is_always_required() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits", {"cpu": "4"})
    for mode in ("required", "optional", "forbidden"):
        out = check("container-resource-limits", obj, {"cpuLimit": mode})
        assert any("no memory limit" in v for v in out.violations), mode


@pytest.mark.parametrize(
    ("mode", "has_cpu_limit", "fails"),
    [
        ("required", True, False),
        ("required", False, True),
        ("optional", True, False),
        ("optional", False, False),
        ("forbidden", True, True),
        ("forbidden", False, False),
    ],
)
def test_cpu_limit_modes(mode: str, has_cpu_limit: bool, fails: bool) -> None:
    limits = {"memory": "16Gi", **({"cpu": "4"} if has_cpu_limit else {})}
    out = check(
        "container-resource-limits", set_path(deployment(), f"{C0}.resources.limits", limits), {"cpuLimit": mode}
    )
    assert bool(out) is fails, out.text()


def test_unknown_limit_value_is_undecided() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits.memory", UNKNOWN_STRING_VALUE)
    out = check("container-resource-limits", obj)
    assert not out.violations and out.undecided and "resources.limits.memory" in out.undecided


# --- container-limit-request-ratio -----------------------------------------------------


def test_ratio_above_maximum_fails_and_config_raises_it() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits.cpu", "12")
    out = check("container-limit-request-ratio", obj)
    assert len(out.violations) == 1 and "ratio is 3" in out.violations[0]
    assert not check("container-limit-request-ratio", obj, {"maxRatio": 3})
    assert not check("container-limit-request-ratio", obj, {"resources": ["memory"]})


def test_limit_below_request_fails() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits.memory", "8Gi")
    assert "below its request" in check("container-limit-request-ratio", obj).text()


def test_ratio_with_unknown_request_is_undecided() -> None:
    obj = set_path(deployment(), f"{C0}.resources.requests.cpu", UNKNOWN_STRING_VALUE)
    out = check("container-limit-request-ratio", obj)
    assert not out.violations and out.undecided and "requests.cpu" in out.undecided


# --- container-resource-maximums -------------------------------------------------------


def test_container_above_maximums_fails() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits.memory", "1Ti")
    out = check("container-resource-maximums", obj)
    assert len(out.violations) == 1 and "exceeds the per-container maximum '512Gi'" in out.violations[0]
    out = check("container-resource-maximums", deployment(), {"maxCpu": "2", "maxMemory": "8Gi"})
    assert len(out.violations) == 4  # cpu and memory, request and limit


def test_maximums_config_must_be_a_quantity() -> None:
    from model_serving_policy.settings import ConfigError

    with pytest.raises(ConfigError, match="maxCpu"):
        check("container-resource-maximums", deployment(), {"maxCpu": "plenty"})


def test_maximum_with_unknown_value_is_undecided() -> None:
    obj = set_path(deployment(), f"{C0}.resources.limits.cpu", UNKNOWN_STRING_VALUE)
    out = check("container-resource-maximums", obj)
    assert not out.violations and out.undecided
