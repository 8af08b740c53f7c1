"""The local cluster's add-ons (scripts/cluster/addons.py): valid objects, run on the real node from the images the
cluster imports, selecting what the `local` stack registers, and sized so that the platform, the stack's models and
one more replica of each fit the node's two CPUs."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from tests.harness import ROOT, load_script
from tests.kube_checks import validate_object
from tests.unit.mocking import typed

NODE_CPU = 2  # the real node's allocatable CPUs (the kubelet reserves none)


addons = load_script("cluster_addons", ROOT / "scripts" / "cluster" / "addons.py")
VERSIONS = addons.Versions.load()
IMAGES = VERSIONS.images()
MONITORING = addons.Monitoring.of_stack()
OBJECTS: list[dict[str, Any]] = addons.manifests(IMAGES, VERSIONS, MONITORING)


def _pod_specs() -> dict[str, dict[str, Any]]:
    out = {}
    for obj in OBJECTS:
        if obj["kind"] == "Deployment":
            out[obj["metadata"]["name"]] = obj["spec"]["template"]["spec"]
        if obj["kind"] == "Prometheus":  # the operator makes its StatefulSet from these fields
            out["prometheus"] = obj["spec"]
    return out


PODS = _pod_specs()


@pytest.mark.parametrize(
    "obj", [o for o in OBJECTS if o["kind"] != "Prometheus"], ids=lambda o: f"{o['kind']}/{o['metadata']['name']}"
)
def test_objects_are_valid_kubernetes(obj: dict[str, Any]) -> None:
    if obj["kind"] not in ("ServiceMonitor", "APIService"):
        validate_object(obj)
    assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "model-serving-local"


def test_the_platform_is_what_the_cluster_runs() -> None:
    kinds = Counter(o["kind"] for o in OBJECTS)
    assert kinds["Deployment"] == 7 and kinds["Prometheus"] == 1 and kinds["APIService"] == 1
    assert set(PODS) == {
        "coredns",
        "prometheus-operator",
        "prometheus",
        "kube-state-metrics",
        "keda-operator",
        "keda-metrics-apiserver",
        "lws-controller",
        "local-path-provisioner",
    }


@pytest.mark.parametrize("name", sorted(PODS))
def test_every_pod_runs_on_the_real_node_restricted_from_an_imported_image(name: str) -> None:
    pod = PODS[name]
    assert pod["nodeSelector"] == {"model-serving.dev/node": "local"}
    assert pod["tolerations"] == [
        {"key": "model-serving.dev/node", "operator": "Equal", "value": "local", "effect": "NoSchedule"}
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65534
    containers = pod.get("containers") or [pod]  # the Prometheus object: one server, its fields at the top
    for container in containers:
        assert container["image"] in IMAGES.values()
        assert container["imagePullPolicy"] == "Never"  # nothing is pulled: the images exist only on the node
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert set(requests) == set(limits) == {"cpu", "memory"}
        assert parse_quantity(requests["cpu"]) <= parse_quantity(limits["cpu"])
        if "command" in container:  # a Deployment's container (the operator shapes Prometheus' own)
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}
            assert container["command"] == [f"/bin/{container['image'].split('/')[-1].split(':')[0]}"]


def test_the_operator_gives_prometheus_the_local_reloader_image() -> None:
    args = PODS["prometheus-operator"]["containers"][0]["args"]
    assert f"--prometheus-config-reloader={IMAGES['prometheus-config-reloader']}" in args


def test_the_images_are_the_binaries_install_k8s_builds() -> None:
    install = (ROOT / "scripts" / "install-k8s").read_text()
    for binary, ref in IMAGES.items():
        assert re.search(rf"(RENAME=\"[^\"]*=|=){re.escape(binary)}[ \"]", install), binary
        assert ref.startswith(f"model-serving.local/{binary}:v")


def test_prometheus_selects_what_the_local_stack_registers() -> None:
    stack = typed("local")
    assert stack.monitoring.enabled
    spec = PODS["prometheus"]
    for selector in ("serviceMonitorSelector", "podMonitorSelector", "ruleSelector"):
        assert spec[selector] == {"matchLabels": dict(stack.monitoring.labels)}
    prometheus = next(o for o in OBJECTS if o["kind"] == "Prometheus")
    assert prometheus["metadata"]["namespace"] == stack.monitoring.namespace
    # KEDA's triggers query the Service the operator makes for this Prometheus, in its namespace.
    assert stack.monitoring.prometheus_url == f"http://prometheus-operated.{stack.monitoring.namespace}:9090"
    monitors = [o for o in OBJECTS if o["kind"] == "ServiceMonitor"]
    assert [m["metadata"]["name"] for m in monitors] == ["kube-state-metrics"]
    assert dict(stack.monitoring.labels).items() <= monitors[0]["metadata"]["labels"].items()


def test_kube_dns_has_the_address_the_kubelet_gives_pods() -> None:
    node_script = (ROOT / "scripts" / "cluster" / "real-node.sh").read_text()
    cluster_dns = re.search(r"^CLUSTER_DNS=(\S+)", node_script, re.MULTILINE)
    assert cluster_dns is not None
    dns = next(o for o in OBJECTS if o["kind"] == "Service" and o["metadata"]["name"] == "kube-dns")
    assert dns["spec"]["clusterIP"] == cluster_dns.group(1) == addons.CLUSTER_DNS
    # The stacks' NetworkPolicies admit DNS to these labels on port 53 in kube-system.
    assert dns["metadata"]["namespace"] == "kube-system"
    assert dns["spec"]["selector"]["k8s-app"] == "kube-dns"
    assert {p["port"] for p in dns["spec"]["ports"]} == {53, 9153}


def _cpu_requests(pod: dict[str, Any]) -> float:
    containers = pod.get("containers") or [pod]
    return sum(float(parse_quantity(c["resources"]["requests"]["cpu"])) for c in containers)


def test_the_platform_the_models_and_one_more_replica_of_each_fit_the_node() -> None:
    platform = sum(_cpu_requests(pod) for pod in PODS.values())
    operator_args = PODS["prometheus-operator"]["containers"][0]["args"]
    reloader = next(a for a in operator_args if a.startswith("--config-reloader-cpu-request="))
    platform += float(parse_quantity(reloader.split("=", 1)[1]))  # the sidecar the operator adds to Prometheus
    models = sum(2 * float(parse_quantity(m.resources.cpu)) for m in typed("local").models)
    assert platform + models <= NODE_CPU, f"platform {platform:.3f} + two of each model {models:.3f} CPUs"


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in OBJECTS if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def test_the_leaderworkerset_webhooks_are_the_ones_its_certificate_rotator_fills_in() -> None:
    # The rotator patches the caBundle of these two names (fixed in the controller) and serves the Service's DNS name.
    mutating = _one("MutatingWebhookConfiguration", "lws-mutating-webhook-configuration")
    validating = _one("ValidatingWebhookConfiguration", "lws-validating-webhook-configuration")
    config = yaml.safe_load(_one("ConfigMap", "lws-config")["data"]["controller_manager_config.yaml"])
    certs = config["internalCertManagement"]
    assert certs["enable"] is True and config["leaderElection"]["resourceNamespace"] == addons.LWS_NAMESPACE
    service = _one("Service", certs["webhookServiceName"])
    assert service["metadata"]["namespace"] == addons.LWS_NAMESPACE
    assert service["spec"]["ports"][0]["targetPort"] == config["webhook"]["port"] == 9443
    secret = _one("Secret", certs["webhookSecretName"])
    assert "data" not in secret  # the rotator's to write; server-side apply then leaves it alone
    mounted = {v["name"]: v for v in PODS["lws-controller"]["volumes"]}
    assert mounted["certs"]["secret"]["secretName"] == certs["webhookSecretName"]
    for hook in mutating["webhooks"] + validating["webhooks"]:
        assert hook["clientConfig"]["service"] == {
            **hook["clientConfig"]["service"],
            "name": service["metadata"]["name"],
        }
        assert "caBundle" not in hook["clientConfig"]
        if hook["rules"][0]["resources"] == ["pods"]:
            # Only a group's pods go through the controller: every other pod of the cluster is admitted without it.
            assert hook["objectSelector"]["matchExpressions"] == [
                {"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}
            ]
    assert {h["name"] for h in mutating["webhooks"]} == {"mleaderworkerset.kb.io", "mpod.kb.io"}


def test_claims_bind_by_themselves_to_volumes_on_the_real_node_that_cluster_down_removes() -> None:
    default = _one("StorageClass")
    assert default["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert default["volumeBindingMode"] == "Immediate" and default["reclaimPolicy"] == "Delete"
    data = _one("ConfigMap", "local-path-config")["data"]
    config = json.loads(data["config.json"])
    # Shared-filesystem mode: no node affinity, so a claim of a pod on a fake node binds too.
    assert config["sharedFileSystemPath"] == str(addons.VOLUMES_DIR) and "nodePathMap" not in config
    assert config["setupCommand"] == config["teardownCommand"] == "/bin/local-path-helper"
    helper = yaml.safe_load(data["helperPod.yaml"])
    assert helper["spec"]["nodeSelector"] == addons.NODE_SELECTOR
    assert helper["spec"]["containers"][0]["image"] == IMAGES["local-path-helper"]
    assert helper["spec"]["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["DAC_OVERRIDE"],
    }
    node_script = (ROOT / "scripts" / "cluster" / "real-node.sh").read_text()
    cluster = (ROOT / ".cluster").resolve()  # a project copy's link to the cluster's own directory, resolved
    assert cluster / "node" / "volumes" == addons.VOLUMES_DIR
    assert re.search(r'rm -rf .*"\$NODE_DIR/volumes"', node_script)
