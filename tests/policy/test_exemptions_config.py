"""Exemptions (and their report), and config resolution."""

from __future__ import annotations

from typing import Any

import pytest
from model_serving_policy import evaluate, state
from model_serving_policy.settings import ConfigError, resolve
from pulumi_policy import EnforcementLevel, PolicyConfigSchema
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import (
    DEVICE_PLUGIN_EXEMPTION,
    POLICIES,
    TYPES,
    check,
    check_stack,
    deployment,
    device_plugin,
    hpa,
    service,
    urn_of,
)


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    state.reset()


# --- exemptions ------------------------------------------------------------------------


def test_exemption_skips_the_resource_and_is_recorded() -> None:
    config = {"exemptions": [DEVICE_PLUGIN_EXEMPTION]}
    assert not check("pod-security", device_plugin(), config)
    [use] = state.drain_exemptions()
    assert use.policy == "pod-security"
    assert use.resource == "DaemonSet nvidia-device-plugin/nvidia-device-plugin"
    assert use.urn == urn_of(TYPES["DaemonSet"], "nvidia-device-plugin")


@pytest.mark.parametrize(
    ("exemption", "exempt"),
    [
        ({"namespace": "nvidia-device-plugin", "name": "nvidia-device-plugin", "reason": "r"}, True),
        ({"namespace": "nvidia-*", "name": "*", "reason": "r"}, True),
        (
            {"namespace": "nvidia-device-plugin", "name": "nvidia-device-plugin", "kind": "Deployment", "reason": "r"},
            False,
        ),
        ({"namespace": "default", "name": "nvidia-device-plugin", "reason": "r"}, False),
        ({"namespace": "nvidia-device-plugin", "name": "other", "reason": "r"}, False),
    ],
)
def test_exemption_matching(exemption: dict[str, str], exempt: bool) -> None:
    out = check("pod-security", device_plugin(), {"exemptions": [exemption]})
    assert (not out) is exempt


def test_exemption_requires_a_reason() -> None:
    with pytest.raises(ConfigError, match="reason"):
        check("pod-security", device_plugin(), {"exemptions": [{"namespace": "a", "name": "b"}]})


def test_unknown_name_that_might_be_exempt_is_undecided() -> None:
    obj = device_plugin()
    obj["metadata"]["name"] = UNKNOWN_STRING_VALUE
    out = check("pod-security", obj, {"exemptions": [DEVICE_PLUGIN_EXEMPTION]})
    assert not out.violations and out.undecided and "metadata.name" in out.undecided
    # No exemption could match (other namespace): the rule decides as usual.
    obj["metadata"]["namespace"] = "models"
    assert check("pod-security", obj, {"exemptions": [DEVICE_PLUGIN_EXEMPTION]})


def test_stack_rules_skip_exempt_subjects_but_keep_them_as_targets() -> None:
    exempt = {
        "exemptions": [{"namespace": "models", "name": "orphan", "kind": "Service", "reason": "manual endpoints"}]
    }
    objs = [deployment(), service(), service("orphan")]
    assert check_stack("service-selector", objs)
    assert not check_stack("service-selector", objs, exempt)
    assert [u.policy for u in state.drain_exemptions()] == ["service-selector"]
    # An exempt Deployment still counts as the HPA's target.
    target_exempt = {"exemptions": [{"namespace": "models", "name": "llm", "kind": "Deployment", "reason": "x"}]}
    assert not check_stack("hpa-target", [deployment(), hpa()], target_exempt)


def test_exempted_resources_reports_each_exemption_in_use() -> None:
    config = {
        "pod-security": {"exemptions": [DEVICE_PLUGIN_EXEMPTION]},
        "gpu-scheduling": {"exemptions": [DEVICE_PLUGIN_EXEMPTION]},
        "no-default-namespace": {"exemptions": [{"namespace": "unused", "name": "*", "reason": "r"}]},
    }
    record = (
        TYPES["DaemonSet"],
        "nvidia-device-plugin",
        urn_of(TYPES["DaemonSet"], "nvidia-device-plugin"),
        device_plugin(),
    )
    found = evaluate([record], config)
    reports = [v for v in found if v.policy_name == "exempted-resources"]
    assert [v.enforcement_level for v in reports] == [EnforcementLevel.ADVISORY] * 2
    assert [v.message.split(": ")[0] for v in reports] == [
        "DaemonSet nvidia-device-plugin/nvidia-device-plugin is exempted from 'gpu-scheduling'",
        "DaemonSet nvidia-device-plugin/nvidia-device-plugin is exempted from 'pod-security'",
    ]
    assert all(v.urn == record[2] for v in reports)
    assert not [v for v in found if v.policy_name in ("pod-security", "gpu-scheduling")]


def test_every_rule_but_the_report_takes_exemptions() -> None:
    for name, policy in POLICIES.items():
        assert policy.config_schema is not None
        assert ("exemptions" in policy.config_schema.properties) is (name != "exempted-resources"), name


# --- config resolution -----------------------------------------------------------------

SCHEMA = PolicyConfigSchema(
    {
        "n": {"type": "integer", "minimum": 1, "default": 600},
        "ratio": {"type": "number", "default": 2},
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "names": {"type": "array", "items": {"type": "string"}, "default": ["x"]},
        "budget": {"type": ["integer", "null"], "default": None},
    }
)


def test_defaults_apply_and_protobuf_floats_become_ints() -> None:
    assert resolve("p", SCHEMA, None) == {"n": 600, "ratio": 2, "mode": "a", "names": ["x"], "budget": None}
    got = resolve("p", SCHEMA, {"n": 300.0, "ratio": 1.5, "budget": 8.0, "enforcementLevel": "advisory"})
    assert got["n"] == 300 and isinstance(got["n"], int) and got["ratio"] == 1.5 and got["budget"] == 8


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"n": 1.5}, "p.n: expected integer"),
        ({"n": 0}, "p.n: 0 is below 1"),
        ({"mode": "c"}, "p.mode: 'c' is not one of"),
        ({"names": "x"}, "p.names: expected array"),
        ({"names": [1]}, r"p.names\[0\]: expected string"),
        ({"typo": 1}, "unknown parameter"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve("p", SCHEMA, raw)


def test_defaults_are_not_shared_between_calls() -> None:
    first = resolve("p", SCHEMA, None)
    first["names"].append("y")
    assert resolve("p", SCHEMA, None)["names"] == ["x"]


def test_policies_read_their_config() -> None:
    obj = deployment()
    assert check("gpu-probes", obj, {"modelLoadSeconds": 601})
    assert not check("gpu-probes", obj, {"modelLoadSeconds": 600.0})
