"""Rules 14 and 15: Service exposure and selectors; no default namespace."""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import TYPES, check, check_stack, deployment, hpa, node_pool, service, set_path

# --- service-exposure ------------------------------------------------------------------


@pytest.mark.parametrize(
    "svc",
    [
        service(),
        service(type_="LoadBalancer", source_ranges=["10.0.0.0/8"]),
        service(type_="LoadBalancer", annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}),
        service(type_="LoadBalancer", annotations={"networking.gke.io/load-balancer-type": "Internal"}),
        service(type_="LoadBalancer", annotations={"service.beta.kubernetes.io/azure-load-balancer-internal": "TRUE"}),
        service(
            type_="LoadBalancer",
            annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8, 192.168.0.0/16"},
        ),
    ],
)
def test_restricted_or_internal_load_balancers_pass(svc: dict[str, object]) -> None:
    assert not check("service-exposure", svc)


@pytest.mark.parametrize(
    ("svc", "message"),
    [
        (service(type_="LoadBalancer"), "must set spec.loadBalancerSourceRanges or an internal"),
        (service(type_="LoadBalancer", source_ranges=[]), "must set spec.loadBalancerSourceRanges"),
        (service(type_="LoadBalancer", source_ranges=["0.0.0.0/0"]), "whole internet"),
        (
            service(
                type_="LoadBalancer",
                annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
            ),
            "must set",
        ),
    ],
)
def test_open_load_balancers_fail(svc: dict[str, object], message: str) -> None:
    assert message in check("service-exposure", svc).text()


def test_internal_annotations_are_configurable() -> None:
    svc = service(type_="LoadBalancer", annotations={"example.com/internal": "yes"})
    assert check("service-exposure", svc)
    assert not check("service-exposure", svc, {"internalAnnotations": {"example.com/internal": ["yes"]}})


def test_unknown_service_type_is_undecided() -> None:
    out = check("service-exposure", set_path(service(), "spec.type", UNKNOWN_STRING_VALUE))
    assert not out.violations and out.undecided == "cannot decide: spec.type is unknown during preview"


# --- service-selector ------------------------------------------------------------------


def test_service_selecting_a_workload_passes() -> None:
    assert not check_stack("service-selector", [deployment(), service()])
    headless = set_path(service("x"), "spec.selector", {})
    assert not check_stack("service-selector", [headless])


def test_service_selecting_nothing_fails() -> None:
    out = check_stack("service-selector", [deployment(), service(selector={"app": "typo"})])
    assert "selects pods labelled app=typo" in out.text()
    assert check_stack("service-selector", [deployment(namespace="other"), service()])
    assert check_stack("service-selector", [deployment(), service(selector={"app": "llm", "tier": "x"})])


def test_service_with_unknown_workload_labels_is_undecided() -> None:
    objs = [set_path(deployment(), "spec.template.metadata.labels.app", UNKNOWN_STRING_VALUE), service()]
    out = check_stack("service-selector", objs)
    assert not out.violations and out.undecided and "labels.app" in out.undecided


# --- no-default-namespace --------------------------------------------------------------


def test_objects_in_own_namespace_pass() -> None:
    for obj in (deployment(), service(), hpa()):
        assert not check("no-default-namespace", obj)
    assert not check("no-default-namespace", node_pool())  # cluster-scoped
    assert not check("no-default-namespace", {"metadata": {"name": "models"}}, resource_type=TYPES["Namespace"])


def test_default_or_missing_namespace_fails() -> None:
    out = check("no-default-namespace", deployment(namespace="default"))
    assert "is in namespace 'default'" in out.text()
    out = check("no-default-namespace", deployment(namespace=None))
    assert "has no metadata.namespace, so it lands in namespace 'default'" in out.text()
    assert check("no-default-namespace", service(namespace="default"))


def test_missing_namespace_uses_the_provider_namespace() -> None:
    assert not check("no-default-namespace", deployment(namespace=None), provider={"namespace": "models"})
    assert check("no-default-namespace", deployment(namespace=None), provider={"kubeconfig": "x"})


def test_namespace_config() -> None:
    obj = deployment(namespace="kube-system")
    assert not check("no-default-namespace", obj)
    assert check("no-default-namespace", obj, {"forbiddenNamespaces": ["default", "kube-system"]})
    assert not check("no-default-namespace", deployment(namespace="default"), {"kinds": ["Service"]})


def test_unknown_namespace_is_undecided() -> None:
    out = check("no-default-namespace", deployment(namespace=UNKNOWN_STRING_VALUE))
    assert not out.violations and out.undecided == "cannot decide: metadata.namespace is unknown during preview"
