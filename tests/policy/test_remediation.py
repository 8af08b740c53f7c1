"""Remediations: GPU requests set equal to limits; missing requests copied from limits."""

from __future__ import annotations

import copy
from typing import Any

from model_serving_policy import ResourceRecord, evaluate
from model_serving_policy.framework import to_plain
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE

from .builders import DEVICE_PLUGIN_EXEMPTION, TYPES, container, deployment, device_plugin, remediate, set_path

C0 = "spec.template.spec.containers[0]"


def _resources(props: Any, index: int = 0) -> dict[str, Any]:
    return to_plain(props)["spec"]["template"]["spec"]["containers"][index]["resources"]


def test_gpu_requests_set_equal_to_limits() -> None:
    obj = deployment(gpus=2)
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    fixed = remediate("gpu-resources", obj)
    assert _resources(fixed)["requests"]["nvidia.com/gpu"] == "2"
    serialize_properties(fixed)  # what the engine does with the result


def test_gpu_request_added_and_limit_added_for_request_only() -> None:
    obj = deployment(containers=[container(), container("b")])
    obj = set_path(obj, f"{C0}.resources.limits", {"cpu": "4", "memory": "16Gi", "amd.com/gpu": 1})
    obj = set_path(
        obj,
        "spec.template.spec.containers[1].resources.requests",
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    )
    fixed = remediate("gpu-resources", obj)
    assert _resources(fixed, 0)["requests"]["amd.com/gpu"] == 1
    assert _resources(fixed, 1)["limits"]["nvidia.com/gpu"] == "1"


def test_nothing_to_fix_returns_none() -> None:
    assert remediate("gpu-resources", deployment(gpus=1)) is None
    fractional = set_path(
        deployment(containers=[container()]),
        f"{C0}.resources.limits",
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "0.5"},
    )
    assert remediate("gpu-resources", fractional) is None
    unknown = set_path(
        deployment(containers=[container()]),
        f"{C0}.resources.limits",
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": UNKNOWN_NUMBER_VALUE},
    )
    assert remediate("gpu-resources", unknown) is None
    assert remediate("gpu-resources", {"apiVersion": "v1", "kind": "Service", "spec": {}}) is None


def test_exempt_resources_are_not_remediated() -> None:
    dp = device_plugin()
    dp["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    assert remediate("gpu-resources", dp) is not None
    assert remediate("gpu-resources", dp, {"exemptions": [DEVICE_PLUGIN_EXEMPTION]}) is None


def test_missing_requests_copied_from_limits() -> None:
    obj = deployment()
    init = container("init", cpu="1", memory="1Gi")
    del init["resources"]["requests"]
    obj["spec"]["template"]["spec"]["initContainers"] = [init]
    obj = set_path(obj, f"{C0}.resources.requests", {"cpu": "1"})
    fixed = to_plain(remediate("container-resource-requests", obj))
    spec = fixed["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "16Gi"}
    assert remediate("container-resource-requests", deployment()) is None


def test_remediate_level_fixes_before_analysis() -> None:
    obj = deployment(gpus=2)
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    record = ResourceRecord(TYPES["Deployment"], "llm", "urn:llm", obj)
    budget = {"gpu-budget": {"gpuBudget": 8}}
    assert [v.policy_name for v in evaluate([record], budget) if v.blocking] == ["gpu-resources"]
    assert not [v for v in evaluate([record], {**budget, "gpu-resources": "remediate"}) if v.blocking]
    # What remediation cannot fix is still reported, as mandatory.
    half = copy.deepcopy(obj)
    half["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "0.5"
    found = evaluate(
        [ResourceRecord(TYPES["Deployment"], "llm", "urn:llm", half)], {**budget, "gpu-resources": "remediate"}
    )
    assert [v.enforcement_level.value for v in found if v.policy_name == "gpu-resources"] == ["mandatory"]
