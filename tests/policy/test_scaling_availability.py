"""Rules 11 and 12: HPAs and PodDisruptionBudgets."""

from __future__ import annotations

from typing import Any

import pytest
from model_serving_policy import state
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from .builders import (
    TYPES,
    check,
    check_stack,
    container,
    cpu_metric,
    deployment,
    hpa,
    pdb,
    scaled_object,
    set_path,
    urn_of,
)

C0 = "spec.template.spec.containers[0]"


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    state.reset()


# --- hpa-replica-bounds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "message"),
    [
        (1, 3, None),
        (None, 2, None),
        (2.0, 2.0, None),
        (3, 2, "greater than spec.maxReplicas"),
        (0, 2, "minReplicas must be a whole number >= 1"),
        (1, None, "maxReplicas must be a whole number"),
    ],
)
def test_hpa_bounds(lo: Any, hi: Any, message: str | None) -> None:
    out = check("hpa-replica-bounds", hpa(min_replicas=lo, max_replicas=hi))
    assert (message in out.text()) if message else not out


def test_hpa_bounds_unknown_is_undecided() -> None:
    out = check("hpa-replica-bounds", hpa(max_replicas=UNKNOWN_NUMBER_VALUE))
    assert not out.violations and out.undecided and "spec.maxReplicas" in out.undecided


# --- hpa-target ------------------------------------------------------------------------


def test_hpa_with_existing_target_passes() -> None:
    assert not check_stack("hpa-target", [deployment(), hpa()])
    assert not check_stack("hpa-target", [deployment(), hpa(metrics=[cpu_metric()])])


def test_hpa_target_missing_or_in_other_namespace_fails() -> None:
    out = check_stack("hpa-target", [deployment(), hpa("other")])
    assert "Deployment models/other, which is not in this stack" in out.text()
    assert out.urns == [urn_of(TYPES["HorizontalPodAutoscaler"], "other")]
    assert check_stack("hpa-target", [deployment(namespace="elsewhere"), hpa()])
    assert check_stack("hpa-target", [deployment(), hpa(kind="StatefulSet")])


def test_target_with_replicas_fails() -> None:
    out = check_stack("hpa-target", [deployment(replicas=2), hpa()])
    assert "sets spec.replicas although" in out.text()


def test_replicas_judged_from_inputs_seen_by_resource_policies() -> None:
    live = deployment()
    live["spec"]["replicas"] = 2  # the API server's value in the outputs
    live["status"] = {"replicas": 2}
    # Never analysed as a resource, live outputs: no judgement on replicas.
    assert not check_stack("hpa-target", [live, hpa()])
    # The resource policies saw inputs without replicas: fine.
    state.record_replicas_in_inputs(urn_of(TYPES["Deployment"], "llm"), False)
    assert not check_stack("hpa-target", [live, hpa()])
    # ... and with replicas: reported although the outputs look alike.
    check("no-default-namespace", deployment(replicas=3))  # any resource rule records inputs
    check("no-default-namespace", hpa())  # and what the program registers
    assert "sets spec.replicas" in check_stack("hpa-target", [live, hpa()]).text()


def test_a_scaler_the_update_deletes_judges_nothing() -> None:
    """After a refresh, the stack analysis lists the ScaledObject of a model moved to fixed replicas, which the
    update is about to delete: the program no longer registers it, so it scales nothing."""
    target = deployment(replicas=2)
    check("no-default-namespace", target)  # the resource analysis: the program registers the Deployment only
    assert not check_stack("hpa-target", [target, scaled_object()]).violations
    check("no-default-namespace", scaled_object())  # registered after all: judged
    assert "sets spec.replicas" in check_stack("hpa-target", [target, scaled_object()]).text()


@pytest.mark.parametrize("metrics", [[cpu_metric()], []])
def test_cpu_utilization_needs_cpu_requests_on_every_container(metrics: list[dict[str, Any]]) -> None:
    side = container("sidecar")
    del side["resources"]
    out = check_stack("hpa-target", [deployment(containers=[container(), side]), hpa(metrics=metrics)])
    assert 'container "sidecar"' in out.text() and "no cpu request" in out.text()


def test_limit_counts_as_request_and_container_metrics_target_one_container() -> None:
    only_limit = container("a")
    del only_limit["resources"]["requests"]
    assert not check_stack("hpa-target", [deployment(containers=[only_limit]), hpa(metrics=[cpu_metric()])])
    bare = container("b")
    del bare["resources"]
    metric = {
        "type": "ContainerResource",
        "containerResource": {"name": "memory", "container": "a", "target": {"type": "Utilization"}},
    }
    assert not check_stack("hpa-target", [deployment(containers=[container("a"), bare]), hpa(metrics=[metric])])
    metric["containerResource"]["container"] = "b"
    assert check_stack("hpa-target", [deployment(containers=[container("a"), bare]), hpa(metrics=[metric])])


def test_unknown_target_name_is_undecided() -> None:
    out = check_stack("hpa-target", [deployment(), hpa(UNKNOWN_STRING_VALUE)])
    assert not out.violations and out.undecided and "scaleTargetRef.name" in out.undecided
    unknown_name = set_path(deployment(), "metadata.name", UNKNOWN_STRING_VALUE)
    out = check_stack("hpa-target", [unknown_name, hpa()])
    assert not out.violations and out.undecided and "metadata.name" in out.undecided


# --- hpa-gpu-scaling-signal ------------------------------------------------------------


def test_gpu_workload_on_cpu_alone_is_advised() -> None:
    out = check_stack("hpa-gpu-scaling-signal", [deployment(gpus=1), hpa(metrics=[cpu_metric()])])
    assert "on CPU alone" in out.text()
    assert check_stack("hpa-gpu-scaling-signal", [deployment(gpus=1), hpa(metrics=[])])  # default: CPU
    assert not check_stack("hpa-gpu-scaling-signal", [deployment(gpus=1), hpa()])  # Pods metric
    assert not check_stack("hpa-gpu-scaling-signal", [deployment(gpus=0), hpa(metrics=[cpu_metric()])])


def test_gpu_signal_unknown_metrics_is_undecided() -> None:
    obj = hpa(metrics=UNKNOWN_STRING_VALUE)
    out = check_stack("hpa-gpu-scaling-signal", [deployment(gpus=1), obj])
    assert not out.violations and out.undecided and "spec.metrics" in out.undecided


# --- workload-availability -------------------------------------------------------------


def test_replicated_deployment_with_pdb_passes() -> None:
    assert not check_stack("workload-availability", [deployment(), hpa(max_replicas=3), pdb()])
    assert not check_stack("workload-availability", [deployment(replicas=3), pdb(max_unavailable="10%")])
    assert not check_stack("workload-availability", [deployment(replicas=1)])
    assert not check_stack("workload-availability", [deployment()])


def test_replicated_deployment_without_pdb_fails() -> None:
    out = check_stack("workload-availability", [deployment(replicas=2)])
    assert "can run up to 2 replicas but no PodDisruptionBudget" in out.text()
    out = check_stack("workload-availability", [deployment(), hpa(max_replicas=4), pdb(app="other")])
    assert "up to 4 replicas (HorizontalPodAutoscaler models/llm)" in out.text()
    assert check_stack("workload-availability", [deployment(replicas=2), pdb(namespace="other")])


@pytest.mark.parametrize(
    ("min_replicas", "max_unavailable", "min_available", "ok"),
    [
        (1, 1, None, True),
        (1, None, 1, False),  # at one replica nothing may be evicted
        (2, None, 1, True),
        (2, None, "100%", False),
        (3, None, "50%", True),  # ceil(1.5) = 2 of 3: one may go
        (2, 0, None, False),
        (2, "0%", None, False),
        (2, None, None, True),  # neither: minAvailable 1
    ],
)
def test_pdb_must_allow_a_disruption_at_min_replicas(
    min_replicas: int, max_unavailable: Any, min_available: Any, ok: bool
) -> None:
    objs = [
        deployment(),
        hpa(min_replicas=min_replicas, max_replicas=5),
        pdb(max_unavailable=max_unavailable, min_available=min_available),
    ]
    out = check_stack("workload-availability", objs)
    assert (not out) is ok, out.text()


def test_two_pdbs_for_one_workload_fail() -> None:
    out = check_stack("workload-availability", [deployment(replicas=2), pdb(), pdb(name="second")])
    assert "more than one PodDisruptionBudget" in out.text()


def test_statefulsets_only_when_configured() -> None:
    sts = deployment(kind="StatefulSet", replicas=3)
    assert not check_stack("workload-availability", [sts])
    assert check_stack("workload-availability", [sts], {"kinds": ["Deployment", "StatefulSet"]})


def test_unknown_pdb_selector_is_undecided_not_failed() -> None:
    objs = [deployment(replicas=2), set_path(pdb(), "spec.selector", UNKNOWN_STRING_VALUE)]
    out = check_stack("workload-availability", objs)
    assert not out.violations and out.undecided and "spec.selector" in out.undecided
