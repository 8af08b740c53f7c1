"""ModelService: one model end to end in its own namespace, every child under it, and its outputs."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockResourceArgs

from components import specs
from components.aliases import FORMER_PARENTS
from components.config import ModelConfig
from components.config.policy_facts import KINDS
from components.model_service import ModelService, ModelServiceArgs
from tests.harness import Registered, Run, run_stack
from tests.unit.mocking import (
    SERVICE,
    Components,
    is_secret,
    model,
    resolve,
    run_components,
    run_model_service,
    stack_values,
    typed,
)

CLUSTER_SCOPED = {k.kind for k in KINDS if not k.namespaced}
# The admission plan's kinds, added after the nested layout: no state made then holds them, so they carry no alias.
ADDED_SINCE_NESTED = {"LimitRange", "PriorityClass", "ResourceQuota"}
PROD_MODELS = [m.name for m in typed("prod").models]  # the 8B model, the embeddings server, the 70B model


@pytest.fixture(scope="module")
def prod() -> Run:
    return run_stack("prod")


def _ancestors(run: Run, resource: Registered) -> list[Registered]:
    by_urn = {r.urn: r for r in run.resources}
    chain = []
    parent = by_urn.get(resource.parent)
    while parent is not None:
        chain.append(parent)
        parent = by_urn.get(parent.parent)
    return chain


def _owner(run: Run, resource: Registered) -> Registered | None:
    return next((a for a in _ancestors(run, resource) if a.type == SERVICE), None)


def _subtree(run: Run, name: str) -> list[Registered]:
    service = run.one(SERVICE, name)
    return [r for r in run.resources if service in _ancestors(run, r)]


def test_each_model_gets_its_own_restricted_namespace(prod: Run) -> None:
    expected = (
        ("llama-3-1-8b", "prod-llama-3-1-8b"),
        ("embeddings", "prod-embeddings"),
        ("llama-3-1-70b", "prod-llama-3-1-70b"),
    )
    assert [name for name, _ in expected] == PROD_MODELS
    for name, namespace in expected:
        ns = next(r for r in _subtree(prod, name) if r.kind == "Namespace")
        assert ns.name == ns.inputs["metadata"]["name"] == namespace
        assert ns.parent == prod.one(SERVICE, name).urn
        labels = ns.inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert prod.outputs[f"{name}_namespace"] == namespace


def test_every_namespaced_object_of_a_model_is_in_its_namespace(prod: Run) -> None:
    for name in PROD_MODELS:
        namespace = prod.outputs[f"{name}_namespace"]
        objects = [r for r in _subtree(prod, name) if r.type.startswith("kubernetes:") and r.kind not in CLUSTER_SCOPED]
        assert len(objects) >= 6
        for resource in objects:
            assert resource.inputs["metadata"]["namespace"] == namespace, resource.urn
            assert namespace != "default"


def test_a_configured_namespace_is_used_but_never_default() -> None:
    run = run_stack("render", config=stack_values("render", {"models[0].namespace": "team-a-inference"}))
    assert run.outputs["minilm_namespace"] == "team-a-inference"
    deployment = run.one("kubernetes:apps/v1:Deployment", "minilm")
    assert deployment.inputs["metadata"]["namespace"] == "team-a-inference"
    assert {r.name for r in run.of_type("kubernetes:core/v1:Namespace")} == {"team-a-inference"}  # no GPU pool's


def test_every_model_resource_is_parented_under_its_model_service(prod: Run) -> None:
    owned = {r.urn for name in PROD_MODELS for r in _subtree(prod, name)}
    pool = prod.one("model-serving:index:GpuNodePool", "gpu")
    for resource in prod.resources:
        if resource.type in (SERVICE, "pulumi:providers:kubernetes") or pool.urn in (resource.urn, resource.parent):
            continue
        assert resource.urn in owned, resource.urn
        # and under the ModelService of its own model, not another's
        owner = _owner(prod, resource)
        assert owner is not None
        if resource.type.startswith("kubernetes:") and resource.kind not in CLUSTER_SCOPED:
            assert resource.inputs["metadata"]["namespace"] == prod.outputs[f"{owner.name}_namespace"]


# The part of the model (components.aliases.FORMER_PARENTS: the component that registered it) each kind belonged to
# before ModelService registered them itself (mode service models).
FORMER_PART = {
    "ServiceAccount": "deployment",
    "Secret": "deployment",
    "PersistentVolumeClaim": "deployment",
    "Job": "deployment",
    "Deployment": "deployment",
    "LeaderWorkerSet": "deployment",
    "PodDisruptionBudget": "deployment",
    "Service": "service",
    "NetworkPolicy": "service",
    "HorizontalPodAutoscaler": "autoscaler",
    "ScaledObject": "autoscaler",
    "ServiceMonitor": "monitoring",
    "PrometheusRule": "monitoring",
    "ConfigMap": "monitoring",
    "Image": "image",
}


def test_the_model_service_registers_every_object_itself(prod: Run) -> None:
    """One component per model: its objects are its own children, no component between."""
    for m in typed("prod").models:
        service = prod.one(SERVICE, m.name)
        children = [r for r in prod.resources if r.parent == service.urn]
        assert all(r.custom for r in children), m.name
        # Exactly the objects of the plans the standalone components register.
        stack = typed("prod")
        steps = [
            *specs.admission.plan(m, specs.gpu_scheduling(stack.gpu_pool)),
            *specs.workloads.plan(m, "image", specs.gpu_scheduling(stack.gpu_pool), "token"),
            *specs.network.plan(m, stack.monitoring, stack.gateway),
            *specs.scaling.plan(m, stack.monitoring),
            *specs.monitoring.plan(m, stack.monitoring),
        ]
        expected = {("Namespace", m.namespace), *((s.obj["kind"], s.obj["metadata"]["name"]) for s in steps)}
        if m.image.build is not None:
            expected.add(("Image", m.name))
        assert sorted((r.kind, r.name) for r in children) == sorted(expected), m.name
    # The 70B model runs a fixed replica (no autoscaling): no HPA nor ScaledObject, and a LeaderWorkerSet.
    kinds = {r.kind for r in _subtree(prod, "llama-3-1-70b")}
    assert "LeaderWorkerSet" in kinds and kinds.isdisjoint({"HorizontalPodAutoscaler", "ScaledObject", "Deployment"})
    assert model("prod", "llama-3-1-70b").autoscaling is None


def test_stacks_made_with_the_nested_components_keep_every_object(prod: Run) -> None:
    """Each object carries the alias to its URN under the component that registered it then (the namespace was
    ModelService's own child already). URNs as the engine makes them, which leave out the stack's own type (the
    mocks keep it); tests/integration/test_upgrade.py shows the engine takes them."""
    for m in typed("prod").models:
        service = prod.one(SERVICE, m.name)
        for r in prod.resources:
            if r.parent != service.urn or r.kind == "Namespace":
                continue
            if r.kind in ADDED_SINCE_NESTED:
                assert r.aliases == [], r.urn
                continue
            former = f"{SERVICE}${FORMER_PARENTS[FORMER_PART[r.kind]]}"
            assert r.aliases == [f"urn:pulumi:prod::model-serving::{former}${r.type}::{r.name}"], r.urn
        namespace = next(r for r in prod.resources if r.parent == service.urn and r.kind == "Namespace")
        assert namespace.aliases == []


def test_a_nested_model_service_aliases_under_its_own_urn() -> None:
    """Under a parent of the program's, the aliases follow the ModelService's URN (an Output then)."""

    class Team(pulumi.ComponentResource):
        def __init__(self) -> None:
            super().__init__("example:index:Team", "team-a")
            m = model("render", "minilm")
            scheduling = specs.gpu_scheduling(typed("render").gpu_pool)
            ModelService(m.name, ModelServiceArgs(model=m, scheduling=scheduling), pulumi.ResourceOptions(parent=self))

    registered = run_components(Team)
    service = registered.one(SERVICE, "minilm")
    assert service.urn.endswith(f"::example:index:Team${SERVICE}::minilm")
    deployment = registered.one("kubernetes:apps/v1:Deployment", "minilm")
    assert deployment.parent == service.urn
    types = f"example:index:Team${SERVICE}${FORMER_PARENTS['deployment']}$kubernetes:apps/v1:Deployment"
    assert deployment.aliases == [f"urn:pulumi:unit::model-serving::{types}::minilm"]


def test_routed_objects_alias_under_model_routing() -> None:
    run = run_stack("e2e")
    route = run.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llama")
    pool = run.one("kubernetes:inference.networking.k8s.io/v1:InferencePool", "llama")
    for r in (route, pool):
        assert r.aliases == [f"urn:pulumi:e2e::model-serving::{SERVICE}${FORMER_PARENTS['routing']}${r.type}::{r.name}"]


def _engine_urn(run: Run, resource: Registered) -> str:
    """The URN the engine gives ``resource``: the types of all its ancestors (the mocks name its parent's only)."""
    by_urn = {r.urn: r for r in run.resources}
    types = [a.type for a in reversed(_ancestors(run, resource))]
    assert resource.parent in ("", *by_urn), resource.urn
    return f"urn:pulumi:unit::model-serving::{'$'.join([*types, resource.type])}::{resource.name}"


@pytest.mark.parametrize("stack", ["prod", "e2e"])
def test_the_upgrade_fixture_has_the_nested_urns_the_aliases_name(stack: str) -> None:
    """tests/integration/legacy/model_service.py, the nested layout tests/integration/test_upgrade.py upgrades from,
    registers each object the current ModelService registers, with the same inputs, at the URN its alias names (the
    namespace: at its own URN), under the former component of its part; the upgrade test itself needs the CLI."""
    from tests.integration.legacy import model_service as legacy

    config = typed(stack)
    for m in config.models:
        new = run_model_service(m, stack, registry_password="pw")
        args = legacy.ModelServiceArgs(
            model=m,
            scheduling=specs.gpu_scheduling(config.gpu_pool),
            hub_token="hf_unit_token" if m.hub_token else None,
            registry_password="pw",
            monitoring=config.monitoring,
            gateway=config.gateway,
        )
        old = run_components(lambda: legacy.ModelService(m.name, args))  # noqa: B023 - run at once
        before = {_engine_urn(old, r): r for r in old.resources if r.custom}
        kept: dict[str, Registered] = {}
        for r in new.resources:
            if r.custom and r.kind not in ADDED_SINCE_NESTED:
                (former,) = [urn for urn in (_engine_urn(new, r), *r.aliases) if urn in before]
                kept[former] = r
        assert set(kept) == set(before), m.name
        for urn, r in kept.items():
            assert (r.inputs, r.secret_paths) == (before[urn].inputs, before[urn].secret_paths), urn
        service = old.one(SERVICE, m.name)
        parts = {r.type for r in old.resources if r.parent == service.urn and not r.custom}
        assert parts <= set(FORMER_PARENTS.values()) and FORMER_PARENTS["deployment"] in parts, m.name
        assert all(_owner(old, r) == service for r in old.resources if r.custom), m.name


def test_without_autoscaling_there_is_no_autoscaler() -> None:
    run = run_stack("render")
    kinds = {r.kind for r in run.resources if r.parent == run.one(SERVICE, "minilm").urn}
    assert kinds.isdisjoint({"HorizontalPodAutoscaler", "ScaledObject"})
    assert kinds.isdisjoint({"ServiceMonitor", "PrometheusRule"})  # monitoring is off
    assert "Deployment" in kinds


def _reaches(run: Run, start: Registered, target: str, deps: dict[str, list[str]]) -> bool:
    """Whether ``start`` waits for ``target``: through its dependencies, its parents', and theirs."""
    seen: set[str] = set()
    todo = [start.urn]
    while todo:
        urn = todo.pop()
        if urn == target:
            return True
        if urn in seen:
            continue
        seen.add(urn)
        resource = next((r for r in run.resources if r.urn == urn), None)
        if resource is not None and resource.parent:
            todo.append(resource.parent)
        todo.extend(deps.get(urn, []))
    return False


@pytest.mark.parametrize(
    ("name", "workload"),
    [("llama-3-1-8b", {"Deployment", "ScaledObject"}), ("llama-3-1-70b", {"LeaderWorkerSet"})],
)
def test_every_namespaced_object_is_created_after_its_namespace(name: str, workload: set[str]) -> None:
    m = model("prod", name)
    run = _component(m)
    deps = {urn: options.dependencies for urn, options in run.options.items()}
    namespace = run.one("kubernetes:core/v1:Namespace", m.namespace).urn
    objects = [r for r in run.kubernetes_objects() if r.kind not in CLUSTER_SCOPED]
    assert {r.kind for r in objects} >= {"Service", "Secret", "ServiceAccount", *workload}
    assert {r.kind for r in objects} >= {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    assert {r.kind for r in objects} >= {"PersistentVolumeClaim", "Job"}  # both pre-stage their weights
    for resource in objects:
        assert _reaches(run, resource, namespace, deps), resource.urn


# --- outputs ------------------------------------------------------------------------------------------


def _lb(args: MockResourceArgs) -> dict[str, Any] | None:
    if args.typ == "kubernetes:core/v1:Service":
        return {"status": {"loadBalancer": {"ingress": [{"ip": "10.20.30.40"}]}}}
    return None


def _component(m: ModelConfig) -> Components[ModelService]:
    return run_model_service(m, hub_token="hf_unit", registry_password="pw", outputs=_lb)


def test_the_outputs_are_endpoint_image_ref_and_namespace() -> None:
    m = model("prod", "embeddings")
    run = _component(m)
    service = run.built
    assert resolve(service.endpoint) == "http://10.20.30.40:80"
    assert resolve(service.image_ref) == f"registry.example.com/model-serving/server@sha256:{'ab' * 32}"
    assert resolve(service.namespace) == "prod-embeddings"
    registered = run.component_outputs[run.one(SERVICE, m.name).urn]
    assert registered == {
        "endpoint": "http://10.20.30.40:80",
        "image_ref": f"registry.example.com/model-serving/server@sha256:{'ab' * 32}",
        "namespace": "prod-embeddings",
    }
    for output in (service.endpoint, service.image_ref, service.namespace):
        assert not is_secret(output)


def test_the_deployment_runs_the_image_the_model_service_reports() -> None:
    m = model("prod", "llama-3-1-8b")
    run = _component(m)
    container = run.one("kubernetes:apps/v1:Deployment", m.name).inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == resolve(run.built.image_ref) == m.image.ref


def test_the_stack_exports_every_models_outputs(prod: Run) -> None:
    assert set(prod.outputs) == {
        f"{name}_{key}" for name in PROD_MODELS for key in ("endpoint", "image_ref", "namespace")
    } | {"gpu_budget"}
    assert "llama-3-1-70b_endpoint" in prod.outputs
