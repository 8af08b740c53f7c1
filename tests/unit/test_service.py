"""A model's Service, the NetworkPolicy admitting only the serving port, and the endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.mocks import MockResourceArgs

from components import specs
from components.config import ModelConfig, MonitoringConfig
from components.kube import _endpoint
from components.model_service import ModelService
from tests.kube_checks import validate_object
from tests.unit.mocking import SERVICE, Components, model, resolve, run_model_service, typed

INTERNAL = {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}

LLAMA = model("prod", "llama-3-1-8b")
MINILM = model("render")  # ClusterIP
SCHEDULING = specs.gpu_scheduling(typed("prod").gpu_pool)
OFF = MonitoringConfig()


def _minilm(service: dict[str, Any], **more: Any) -> ModelConfig:
    return model("render", edits={"models[0].service": service, **more})


# --- Service ----------------------------------------------------------------------------------------


def test_a_load_balancer_keeps_annotations_source_ranges_and_local_traffic() -> None:
    service = specs.service(LLAMA)
    assert service["spec"]["type"] == "LoadBalancer"
    # No pulumi.com/waitFor: Pulumi waits until the load balancer has an address and the Service endpoints.
    assert service["metadata"]["annotations"] == INTERNAL
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert service["spec"]["externalTrafficPolicy"] == "Local"  # keeps client IPs, skips a hop
    assert service["metadata"]["namespace"] == LLAMA.namespace


def test_a_cluster_ip_service_has_no_external_fields() -> None:
    spec = specs.service(MINILM)["spec"]
    assert spec["type"] == "ClusterIP"
    for key in ("externalTrafficPolicy", "loadBalancerSourceRanges", "sessionAffinityConfig"):
        assert key not in spec
    # Pulumi waits for the cluster IP only: the Deployment's await waits for the pods.
    assert specs.service(MINILM)["metadata"]["annotations"] == {"pulumi.com/waitFor": "jsonpath={.spec.clusterIP}"}


def test_the_config_may_set_what_pulumi_waits_for() -> None:
    given = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0].hostname}"}
    service = specs.service(_minilm({"type": "NodePort", "annotations": given}))
    assert service["metadata"]["annotations"] == given


def test_a_node_port_service_keeps_its_traffic_policy() -> None:
    spec = specs.service(_minilm({"type": "NodePort", "externalTrafficPolicy": "Cluster"}))["spec"]
    assert spec["type"] == "NodePort"
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert "loadBalancerSourceRanges" not in spec


def test_client_ip_affinity_sets_its_timeout() -> None:
    spec = specs.service(_minilm({"type": "ClusterIP", "sessionAffinity": "ClientIP"}))["spec"]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert specs.service(MINILM)["spec"]["sessionAffinity"] == "None"


def test_several_source_ranges_keep_their_order() -> None:
    m = _minilm({"type": "LoadBalancer", "sourceRanges": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]})
    assert specs.service(m)["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]


@pytest.mark.parametrize("m", [LLAMA, MINILM], ids=lambda m: m.name)
def test_the_service_targets_the_pods_named_port(m: ModelConfig) -> None:
    service = specs.service(m)
    assert service["spec"]["selector"] == specs.selector_labels(m)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": m.service.port, "targetPort": "http", "protocol": "TCP"}
    ]
    template = specs.deployment(m, "img:1", SCHEDULING)["spec"]["template"]
    assert [p["name"] for p in template["spec"]["containers"][0]["ports"]] == ["http"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()


def test_the_service_port_is_independent_of_the_container_port() -> None:
    m = _minilm({"type": "ClusterIP", "port": 8080}, **{"models[0].port": 9000})
    port = specs.service(m)["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (8080, "http")


# --- NetworkPolicy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [LLAMA, MINILM], ids=lambda m: m.name)
def test_the_network_policy_admits_only_the_serving_port(m: ModelConfig) -> None:
    policy = specs.network_policy(m, OFF)
    assert policy["metadata"]["namespace"] == m.namespace
    # Every pod of the model: a canary's too.
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": m.name}}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": m.port}]}]


@pytest.mark.parametrize("m", [LLAMA, MINILM], ids=lambda m: m.name)
def test_egress_is_dns_and_the_hub_only_for_models_that_download(m: ModelConfig) -> None:
    egress = specs.network_policy(m, OFF)["spec"]["egress"]
    assert egress[0]["to"] == [specs.DNS_PEER]
    assert {p["port"] for p in egress[0]["ports"]} == {53}
    if m.model_dir is None:  # vLLM downloads its weights from the hub
        assert egress[1:] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]
    else:  # the server's image holds the model
        assert egress[1:] == []


def test_egress_to_narrows_the_hub() -> None:
    m = _minilm({"egressTo": ["203.0.113.0/24"]})
    assert specs.network_policy(m, OFF)["spec"]["egress"][1]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_the_network_policy_follows_a_changed_container_port() -> None:
    m = model("render", edits={"models[0].port": 9000})
    assert specs.network_policy(m, OFF)["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9000}]


def test_allow_from_limits_the_sources_too() -> None:
    m = _minilm({"type": "ClusterIP", "allowFrom": ["10.1.0.0/16", "10.2.0.0/16"]})
    (rule,) = specs.network_policy(m, OFF)["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}, {"ipBlock": {"cidr": "10.2.0.0/16"}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": m.port}]


def test_with_monitoring_the_policy_also_admits_prometheus_from_its_namespace() -> None:
    """allowFrom would shut out Prometheus' scrapes of /metrics on the serving port: its namespace gets a rule."""
    m = _minilm({"type": "ClusterIP", "allowFrom": ["10.1.0.0/16"]})
    monitoring = MonitoringConfig(enabled=True, namespace="observability")
    clients, prometheus = specs.network_policy(m, monitoring)["spec"]["ingress"]
    assert clients["from"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert prometheus == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"protocol": "TCP", "port": m.port}],
    }
    validate_object(specs.network_policy(m, monitoring))
    # Without allowFrom the port is open to every source, Prometheus included: nothing to add.
    assert len(specs.network_policy(MINILM, monitoring)["spec"]["ingress"]) == 1


@pytest.mark.parametrize("service", [{"type": "ClusterIP"}, {"type": "NodePort", "sessionAffinity": "ClientIP"}])
def test_service_and_policy_validate_against_the_schema(service: dict[str, Any]) -> None:
    m = _minilm(service)
    validate_object(specs.service(m))
    validate_object(specs.network_policy(m, OFF))
    validate_object(specs.service(LLAMA))


# --- the endpoint helper ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cluster_ip", "expected"),
    [
        ({"load_balancer": {"ingress": [{"hostname": "lb.example.com"}]}}, "10.0.0.7", "http://lb.example.com:80"),
        ({"load_balancer": {"ingress": [{"ip": "203.0.113.9"}]}}, "10.0.0.7", "http://203.0.113.9:80"),
        (
            {"load_balancer": {"ingress": [{"hostname": "lb.example.com", "ip": "203.0.113.9"}]}},
            None,
            "http://lb.example.com:80",
        ),
        ({"load_balancer": {"ingress": [{}, {"ip": "203.0.113.10"}]}}, None, "http://203.0.113.10:80"),
        ({"load_balancer": {"ingress": []}}, "10.0.0.7", "http://10.0.0.7:80"),
        ({"load_balancer": {}}, "10.0.0.7", "http://10.0.0.7:80"),
        (None, "10.0.0.7", "http://10.0.0.7:80"),
        (None, None, ""),
    ],
    ids=["hostname", "ip", "hostname-first", "skips-empty", "pending", "no-ingress", "no-status", "nothing"],
)
def test_the_endpoint_prefers_the_load_balancer_then_the_cluster_ip(
    status: dict[str, Any] | None, cluster_ip: str | None, expected: str
) -> None:
    assert _endpoint(status, 80, cluster_ip) == expected


def test_the_endpoint_uses_the_service_port() -> None:
    assert _endpoint({"load_balancer": {"ingress": [{"ip": "203.0.113.9"}]}}, 8080, None) == "http://203.0.113.9:8080"


# --- the component ---------------------------------------------------------------------------------------


def _provider_status(status: dict[str, Any]) -> Any:
    def outputs(args: MockResourceArgs) -> dict[str, Any] | None:
        if args.typ != "kubernetes:core/v1:Service":
            return None
        return {"status": status, "spec": {**args.inputs["spec"], "clusterIP": "10.0.0.7"}}

    return outputs


def _component(m: ModelConfig, status: dict[str, Any]) -> Components[ModelService]:
    return run_model_service(m, "prod" if m is LLAMA else "render", outputs=_provider_status(status))


def test_the_component_reports_the_load_balancer_hostname() -> None:
    run = _component(LLAMA, {"loadBalancer": {"ingress": [{"hostname": "internal-lb.elb.amazonaws.com"}]}})
    assert resolve(run.built.endpoint) == "http://internal-lb.elb.amazonaws.com:80"
    component = run.one(SERVICE, LLAMA.name)
    assert run.component_outputs[component.urn]["endpoint"] == "http://internal-lb.elb.amazonaws.com:80"


def test_the_component_falls_back_to_the_cluster_ip() -> None:
    run = _component(MINILM, {"loadBalancer": {}})
    assert resolve(run.built.endpoint) == "http://10.0.0.7:80"


def test_the_component_registers_service_and_policy_as_children() -> None:
    run = _component(LLAMA, {})
    component = run.one(SERVICE, LLAMA.name)
    children = sorted(
        r.kind for r in run.resources if r.parent == component.urn and r.kind in ("NetworkPolicy", "Service")
    )
    assert children == ["NetworkPolicy", "Service"]
    assert run.one("kubernetes:core/v1:Service", LLAMA.name).inputs["spec"] == specs.service(LLAMA)["spec"]
    policy = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", LLAMA.name)
    assert policy.inputs["spec"] == specs.network_policy(LLAMA, typed("prod").monitoring)["spec"]
