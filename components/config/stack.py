"""The top level of the ``model-serving:`` config: the stack's own keys (namespace prefix, kubeconfig, image
lock, …), its ``monitoring`` and ``gateway`` blocks, the ``gpuPool`` and ``models`` it holds, and its secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from components.config.declare import EMPTY, REQUIRED, Block, BlockList, Secret, key
from components.config.kinds import (
    HTTP_URL,
    LABEL_KEY,
    PROM_DURATION,
    DnsLabel,
    Flag,
    ImageRef,
    Int,
    StringMap,
    Text,
    check_dns_label,
    check_label_value,
)
from components.config.model import ModelConfig
from components.config.policy_config import PolicyConfig
from components.config.pool import GpuPoolConfig

# Namespaces the stack's model namespaces and its Gateway must not take over.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _stack_namespace(value: str) -> str | None:
    message = check_dns_label(value)
    if message is None and value in SYSTEM_NAMESPACES:
        message = f"must not be a system namespace (got {value!r})"
    return message


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """Prometheus (prometheus-operator) monitoring of the models, and the Prometheus KEDA's triggers query."""

    type_name: ClassVar[str] = "Monitoring"
    enabled: bool = key(
        Flag(),
        False,
        "per model a ServiceMonitor, a PrometheusRule of serving alerts and a Grafana dashboard ConfigMap "
        "(needs prometheus-operator's CRDs)",
    )
    prometheus_url: str | None = key(
        Text("URL", pattern=HTTP_URL),
        None,
        "the Prometheus KEDA's triggers query, e.g. `http://prometheus-operated.monitoring:9090` (driver keda)",
    )
    namespace: str = key(
        DnsLabel(), "monitoring", "where Prometheus runs: the models' NetworkPolicies admit its scrapes from there"
    )
    labels: Mapping[str, str] = key(
        StringMap(LABEL_KEY, check=check_label_value),
        {},
        "labels of the ServiceMonitors and PrometheusRules, for Prometheus' selectors (e.g. `release: prometheus`)",
    )
    scrape_interval: str = key(Text("duration", pattern=PROM_DURATION), "30s", "how often Prometheus scrapes")


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The Gateway (Gateway API) the models' HTTPRoutes attach to (routing.mode gateway or inference-pool)."""

    type_name: ClassVar[str] = "Gateway"
    name: str = key(DnsLabel(), "inference-gateway", "the Gateway's name")
    namespace: str = key(
        Text("DNS label", check=_stack_namespace), "gateway", "its namespace; its pods reach the models from there"
    )
    gateway_class_name: str | None = key(
        Text(),
        None,
        "set: the stack creates the Gateway (and its namespace) with this GatewayClass, one HTTP listener admitting "
        "routes from the stack's model namespaces",
        unset="the Gateway exists already",
    )
    port: int = key(Int(1, 65535), 80, "the created Gateway's HTTP listener port")
    proxy_namespace: str | None = key(
        DnsLabel(),
        None,
        "where the gateway's proxy pods run, if not in its own namespace (e.g. `envoy-gateway-system`): the models' "
        "NetworkPolicies admit requests from there",
        unset="`namespace`",
    )


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything under the ``model-serving:`` config namespace but the secrets."""

    namespace: str = key(
        Text("DNS label", check=_stack_namespace),
        "models",
        "prefix of the model namespaces: model `m` lives in `<namespace>-m`; never `default` or `kube-*`",
    )
    render_directory: str | None = key(
        Text("path"), None, "render manifests there instead of applying (`render`: `rendered/render`)"
    )
    kubeconfig: str | None = key(
        Text("path"),
        None,
        "kubeconfig file to deploy with, relative to the project (`local`, `e2e`: `.cluster/kubeconfig`)",
        unset="`KUBECONFIG`, else ~/.kube/config",
    )
    kube_context: str | None = key(Text(), None, "the kubeconfig context to deploy to", unset="kubeconfig's current")
    image_lock: str | None = key(
        Text("path"),
        None,
        "JSON file, relative to the project, mapping `image.ref` values to digest-pinned references "
        "(`repo@sha256:…`) the models deploy instead; refs it lacks stay as written "
        "(`local`: `.cluster/images.json`, which `make cluster-up` writes)",
        unset="none: every ref as written",
    )
    gpu_pool: GpuPoolConfig = key(
        Block(GpuPoolConfig),
        EMPTY,
        "the shared GPU node pool; its objects (RuntimeClass, device plugin, DCGM exporter, Karpenter NodePool) are "
        "deployed only when a model uses GPUs (`resources.gpus` > 0, given or derived) or `karpenter` is set: a "
        "CPU-only stack leaves them to the stacks that need them",
        name="gpuPool",
    )
    monitoring: MonitoringConfig = key(Block(MonitoringConfig), EMPTY, "Prometheus monitoring and KEDA's Prometheus")
    gateway: GatewayConfig = key(
        Block(GatewayConfig), EMPTY, "the Gateway of models routed through one (docs/load-balancing.md)"
    )
    image_ref_override: str | None = key(
        ImageRef(),
        None,
        "test/CI only: every model's image becomes this prebuilt reference (previews without a Docker engine)",
    )
    models: tuple[ModelConfig, ...] = key(BlockList(ModelConfig, "models"), REQUIRED, "the models to serve")
    policy: PolicyConfig = key(Block(PolicyConfig), EMPTY, "how strictly the policy pack checks the stack")

    @property
    def needs_gpu_pool(self) -> bool:
        """Whether the program registers the GpuNodePool (the rule the ``gpuPool`` key's doc states): some model
        uses GPUs, or the config asks for a Karpenter NodePool. Models get their scheduling from ``gpu_pool``
        either way."""
        return self.gpu_pool.karpenter is not None or any(m.resources.gpus > 0 for m in self.models)

    @property
    def routed_models(self) -> tuple[ModelConfig, ...]:
        """The models whose HTTPRoutes attach to ``gateway``."""
        return tuple(m for m in self.models if m.routing.mode != "service")


@dataclass(frozen=True, kw_only=True)
class StackSecrets:
    """Secrets: set with ``pulumi config set --secret``, never written in clear; the program reads them."""

    hub_token: str | None = key(
        Secret(),
        None,
        "model-hub token, mounted as a file into models that set `hubToken: true` (ModelService: when given)",
    )
    registry_password: str | None = key(Secret(), None, "password of `image.build.registry`, for pushes")
