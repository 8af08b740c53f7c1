"""pod-priority: every workload's pods carry a PriorityClass, and not one kept for the cluster's own components."""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import check, deployment, device_plugin, set_path

CLASS = "spec.template.spec.priorityClassName"


def test_a_pod_with_a_class_passes() -> None:
    assert not check("pod-priority", deployment()).violations
    assert not check("pod-priority", device_plugin()).violations  # system-node-critical, a node agent's


@pytest.mark.parametrize("value", [None, ""])
def test_a_pod_without_a_class_is_refused_naming_the_field(value: str | None) -> None:
    obj = deployment()
    if value is None:
        del obj["spec"]["template"]["spec"]["priorityClassName"]
    else:
        obj = set_path(obj, CLASS, value)
    (violation,) = check("pod-priority", obj).violations
    assert CLASS in violation and "models[i].priorityClass" in violation


def test_a_system_class_is_refused_and_the_list_is_configurable() -> None:
    obj = set_path(deployment(), CLASS, "system-cluster-critical")
    (violation,) = check("pod-priority", obj).violations
    assert "system-cluster-critical" in violation
    assert not check("pod-priority", obj, {"forbiddenClasses": []}).violations


def test_an_unknown_class_is_undecided() -> None:
    out = check("pod-priority", set_path(deployment(), CLASS, UNKNOWN_STRING_VALUE))
    assert not out.violations and out.undecided is not None and CLASS in out.undecided


def test_a_job_is_checked_like_a_deployment() -> None:
    job = deployment(kind="Job", max_surge=None)
    job["apiVersion"] = "batch/v1"
    del job["spec"]["template"]["spec"]["priorityClassName"]
    assert check("pod-priority", job).violations
