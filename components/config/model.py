"""One entry of ``models``: the model's own keys (name, engine, hub id and revision, port, replicas, placement,
the container patch), the blocks it is made of (:mod:`.workload`, :mod:`.scaling`, :mod:`.routing`), and what
follows from them (its sizing, peak pods and GPUs, its canary's track)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components import sizing
from components.config import derive
from components.config.declare import EMPTY, REQUIRED, Block, BlockList, computed, key
from components.config.engines import ENGINES, Engine, EngineSpec
from components.config.kinds import (
    ENV_NAME,
    HTTP_URL,
    LABEL_KEY,
    Choice,
    DnsLabel,
    Flag,
    Int,
    Patch,
    Quantity,
    StringMap,
    Strings,
    Text,
    check_dns_label,
    check_label_value,
)
from components.config.routing import CanaryConfig, RoutingConfig, ServiceConfig
from components.config.scaling import Alerts, Autoscaling
from components.config.workload import (
    Architecture,
    ImageConfig,
    LlamaCppConfig,
    ModelCache,
    PriorityClassConfig,
    Probes,
    Resources,
    Rollout,
    Toleration,
    check_revision,
)
from components.sizing import LlamaCppSizing


def _model_namespace(value: str) -> str | None:
    message = check_dns_label(value)
    if message is None and (value == "default" or value.startswith("kube-")):
        message = f"must not be a system namespace (got {value!r})"
    return message


# What the program sets on the server container: never patched, or never removed by a patch.
PATCH_FIXED = ("name", "image")
PATCH_KEPT = ("resources", "securityContext", "startupProbe", "readinessProbe", "livenessProbe")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """One entry of the stack config's models list."""

    type_name: ClassVar[str] = "ModelServiceArgs"
    name: str = key(DnsLabel(), REQUIRED, "model name; names the namespace suffix and every object", resource_name=True)
    namespace: str = key(Text("DNS label", check=_model_namespace), derive.NAMESPACE, "the model's own namespace")
    engine: Engine = key(
        Choice(tuple(ENGINES)), "server", "; ".join(f"`{name}`: {e.doc}" for name, e in ENGINES.items())
    )
    model_id: str = key(Text(), REQUIRED, "hub id of the model (`--model` for vLLM, `MODEL_ID` for the server)")
    model_revision: str | None = key(
        Text("commit", check=check_revision),
        None,
        "the hub commit the model is served at (`--revision` for vLLM, `MODEL_REVISION` for the server)",
        unset="whatever the hub serves that day",
    )
    model_dir: str | None = key(
        Text("absolute path", pattern=re.compile(r"^/[^\0]*$")),
        None,
        "where the image holds the model's files (`MODEL_DIR`); `server` images bake them in (build arg `MODEL_DIR`)",
        unset="the hub cache under `/cache`",
    )
    image: ImageConfig = key(Block(ImageConfig), REQUIRED, "the server image", override=derive.image_override)
    architecture: Architecture | None = key(
        Block(Architecture),
        None,
        "the model's shape: sizes GPU engines (README: GPU sizing) and, with `llamacpp.ggufBytes`, llama.cpp's memory",
    )
    llamacpp: LlamaCppConfig = key(Block(LlamaCppConfig), EMPTY, "llama-server's settings (engine `llamacpp`)")
    sizing: sizing.SizingResult | None = computed(derive.size)
    cpu_sizing: LlamaCppSizing | None = computed(derive.size_llamacpp)
    resources: Resources = key(Block(Resources), EMPTY, "per pod; requests equal limits")
    port: int = key(Int(1, 65535), derive.engine_default("port"), "container port (named `http`)")
    args: tuple[str, ...] = key(Strings(), (), "extra container args")
    env: Mapping[str, str] = key(StringMap(ENV_NAME), {}, "extra environment variables")
    replicas: int = key(Int(1, 1000), 1, "fixed replica count (not with `autoscaling`)")
    probes: Probes = key(Block(Probes), EMPTY, "startup probe budget")
    cache: ModelCache = key(Block(ModelCache), EMPTY, "the model hub cache", name="modelCache")
    shm_size: str = key(Quantity(), derive.SHM_DEFAULT, "`/dev/shm`: a memory-backed emptyDir")
    hub_token: bool = key(Flag(), False, "mount the `hubToken` secret as `/var/run/secrets/model-hub/token`")
    hub_endpoint: str | None = key(
        Text("URL", pattern=HTTP_URL),
        None,
        "the model hub to download from, e.g. a mirror inside the network (`HF_ENDPOINT` of the server and of the "
        "pre-stage Job)",
        unset="huggingface.co",
    )
    autoscaling: Autoscaling | None = key(
        Block(Autoscaling), None, "an autoscaler (HPA or KEDA) instead of a fixed replica count"
    )
    alerts: Alerts = key(Block(Alerts), EMPTY, "alert thresholds (monitoring.enabled)")
    rollout: Rollout = key(Block(Rollout), EMPTY, "rolling update bounds")
    node_selector: Mapping[str, str] = key(
        StringMap(LABEL_KEY, check=check_label_value),
        {},
        "node labels the pods must land on; a GPU model's pods also get gpuPool.nodeSelector (a key both set "
        "must have the same value)",
    )
    tolerations: tuple[Toleration, ...] = key(
        BlockList(Toleration, "tolerations", may_be_empty=True),
        (),
        "taints the pods tolerate; a GPU model's pods also tolerate gpuPool.taint, a CPU model's must not",
    )
    routing: RoutingConfig = key(Block(RoutingConfig), EMPTY, "how requests reach the pods (docs/load-balancing.md)")
    canary: CanaryConfig | None = key(
        Block(CanaryConfig),
        None,
        "a canary Deployment taking a share of requests (routing.mode gateway or inference-pool)",
    )
    service: ServiceConfig = key(Block(ServiceConfig), EMPTY, "the model's Service")
    quotas: bool = key(
        Flag(),
        True,
        "in the model's namespace, a ResourceQuota at its peak (GPUs, CPU and memory of every replica, surge, "
        "canary and pre-stage Job) and a LimitRange giving containers without limits the server's; false where "
        "the cluster manages quotas",
    )
    priority_class: PriorityClassConfig = key(
        Block(PriorityClassConfig), EMPTY, "the PriorityClass of the model's pods", name="priorityClass"
    )
    # JSON merge patch (RFC 7386) over the server container: the escape hatch for fields the config does not
    # cover. null deletes a key; the policy pack still checks the result.
    container_patch: Mapping[str, Any] = key(
        Patch(PATCH_FIXED, PATCH_KEPT, "the container keeps its resources, probes and security context"),
        {},
        "JSON merge patch over the server container for fields the config lacks; it may not set "
        "name or image, nor remove resources, probes or the security context",
    )

    # Not a config key: which of the model's Deployments this describes (:meth:`canary_track`).
    track: str = "stable"

    @property
    def engine_spec(self) -> EngineSpec:
        return ENGINES[self.engine]

    @property
    def instance(self) -> str:
        """The name of this track's Deployment, Service and PDB: the model's name, `<name>-canary` for the canary."""
        return self.name if self.track == "stable" else f"{self.name}-{self.track}"

    def canary_track(self) -> ModelConfig:
        """The model as its canary runs it: the canary's image, args and revision, its fixed replica count, no
        autoscaler and no canary of its own. Its objects are named by :attr:`instance`."""
        canary = self.canary
        if canary is None:
            raise ValueError(f"model {self.name!r} has no canary")
        return dataclasses.replace(
            self,
            track="canary",
            image=self.image if canary.image is None else ImageConfig(ref=canary.image),
            args=self.args if canary.args is None else canary.args,
            model_revision=self.model_revision if canary.model_revision is None else canary.model_revision,
            replicas=canary.replicas,
            autoscaling=None,
            canary=None,
        )

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas

    @property
    def peak_pods(self) -> int:
        """Pods the model may run at once: every replica the autoscaler may run and the canary's, plus the pods
        a rollout surges (each Deployment surges on its own)."""
        surge = self.rollout.max_surge
        canary = self.canary.replicas + surge if self.canary is not None else 0
        return self.max_replicas + surge + canary

    @property
    def nodes_per_replica(self) -> int:
        """Nodes (pods) one replica spans: more than one when sizing splits the model over nodes."""
        return self.sizing.nodes_per_replica if self.sizing is not None else 1

    @property
    def multi_node(self) -> bool:
        """Whether each replica is a LeaderWorkerSet group of pods on several nodes, rather than one pod."""
        return self.nodes_per_replica > 1

    @property
    def peak_gpus(self) -> int:
        """GPUs the model may hold at once: :attr:`peak_pods` replicas (groups of :attr:`nodes_per_replica` pods
        when multi-node) of its GPUs each."""
        return self.peak_pods * self.nodes_per_replica * self.resources.gpus

    @property
    def min_replicas(self) -> int:
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas

    @property
    def keda(self) -> bool:
        """Whether a KEDA ScaledObject, rather than an HPA, owns the replica count."""
        return self.autoscaling is not None and self.autoscaling.driver == "keda"

    @property
    def liveness_path(self) -> str:
        return self.engine_spec.liveness

    @property
    def readiness_path(self) -> str:
        return self.engine_spec.readiness
