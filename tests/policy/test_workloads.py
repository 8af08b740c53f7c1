"""The pod-template extractor, identity, quantities and selectors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from model_serving_policy import k8s
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError

from .builders import TYPES, container, deployment, pod_spec, proxied


def _wrap(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    if kind == "Pod":
        return {"metadata": {"name": "x", "labels": {"app": "x"}}, "spec": spec}
    if kind == "CronJob":
        return {
            "metadata": {"name": "x"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
        }
    return {"metadata": {"name": "x"}, "spec": {"template": template}}


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])
def test_every_workload_kind_yields_all_containers_and_init_containers(kind: str) -> None:
    spec = pod_spec([container("a"), container("b")], init=[container("setup")])
    tpl = k8s.pod_template(TYPES[kind], proxied(_wrap(kind, spec)))
    assert tpl is not None and tpl.kind == kind
    assert [(c.name, c.init) for c in tpl.containers] == [("setup", True), ("a", False), ("b", False)]
    assert tpl.containers[0].path.endswith("initContainers[0]")
    assert tpl.containers[2].path == f"{tpl.path}.containers[1]"
    assert k8s.pod_labels(TYPES[kind], proxied(_wrap(kind, spec))) == {"app": "x"}


def test_non_workloads_have_no_pod_template() -> None:
    assert k8s.pod_template("kubernetes:core/v1:Service", proxied({"spec": {}})) is None
    assert k8s.pod_template("aws:s3/bucket:Bucket", proxied({})) is None


def test_unknown_container_list_and_container_are_recorded_not_fatal() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["initContainers"] = UNKNOWN_ARRAY_VALUE
    obj["spec"]["template"]["spec"]["containers"].append(UNKNOWN_STRING_VALUE)
    tpl = k8s.pod_template(TYPES["Deployment"], proxied(obj))
    assert tpl is not None
    assert [c.name for c in tpl.containers] == ["server"]
    assert tpl.unknown_paths == ["spec.template.spec.initContainers", "spec.template.spec.containers[1]"]


def test_unknown_pod_spec_raises() -> None:
    obj = {"metadata": {"name": "x"}, "spec": {"template": {"spec": UNKNOWN_STRING_VALUE}}}
    with pytest.raises(UnknownValueError):
        k8s.pod_template(TYPES["Deployment"], proxied(obj))


def test_identity_defaults_name_and_namespace() -> None:
    ident = k8s.identity(TYPES["Deployment"], proxied({"metadata": {}}), "pulumi-name")
    assert (ident.kind, ident.namespace, ident.name, ident.namespace_defaulted) == (
        "Deployment",
        "default",
        "pulumi-name",
        True,
    )
    ident = k8s.identity(TYPES["Deployment"], proxied({}), "n", proxied({"namespace": "models"}))
    assert ident.namespace == "models"


def test_identity_with_unknown_namespace() -> None:
    unknown: list[str] = []
    ident = k8s.identity(
        TYPES["Deployment"], proxied({"metadata": {"namespace": UNKNOWN_STRING_VALUE}}), "n", None, unknown
    )
    assert ident.namespace is None and unknown == ["metadata.namespace"]


def test_pod_gpus_is_the_effective_pod_request() -> None:
    obj = deployment(
        containers=[container("a", gpus=2), container("b", gpus=1)],
    )
    obj["spec"]["template"]["spec"]["initContainers"] = [container("init", gpus=4)]
    tpl = k8s.pod_template(TYPES["Deployment"], proxied(obj))
    assert tpl is not None
    assert k8s.pod_gpus(tpl, ["nvidia.com/gpu"]) == {"nvidia.com/gpu": Decimal(4)}
    mig = deployment(containers=[container(gpus=1, gpu_resource="nvidia.com/mig-1g.10gb")])
    tpl = k8s.pod_template(TYPES["Deployment"], proxied(mig))
    assert tpl is not None
    assert k8s.pod_gpus(tpl, ["nvidia.com/mig-*"]) == {"nvidia.com/mig-1g.10gb": Decimal(1)}
    assert k8s.pod_gpus(tpl, ["nvidia.com/gpu"]) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2Gi", Decimal(2 * 1024**3)),
        (2.0, Decimal(2)),
        ("1e3", Decimal(1000)),
        ("x", None),
        (True, None),
    ],
)
def test_quantities_use_the_kubernetes_client_parser(value: Any, expected: Decimal | None) -> None:
    assert k8s.quantity(value) == expected


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=100))
def test_percent_rounding_matches_kubernetes(total: int, percent: int) -> None:
    up = k8s.scaled_int_or_percent(f"{percent}%", total, round_up=True)
    down = k8s.scaled_int_or_percent(f"{percent}%", total, round_up=False)
    assert up is not None and down is not None
    assert down <= total * percent / 100 <= up
    assert up - down in (0, 1)
    assert k8s.scaled_int_or_percent(float(percent), total, round_up=True) == percent


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "1"}, True),
        (None, {"a": "1"}, False),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "2"}}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]}, {"a": "1"}, True),
    ],
)
def test_label_selectors(selector: Any, labels: dict[str, str], matches: bool) -> None:
    sel = proxied({"s": selector})["s"]
    assert k8s.selector_matches(sel, proxied({"l": labels})["l"]) is matches
