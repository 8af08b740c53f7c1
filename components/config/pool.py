"""The ``gpuPool`` block: the stack's shared GPU node pool, how GPU nodes are provided (Karpenter or the
cluster's own) and how GPU workloads land on them (selector, taint, runtime class), with the node agents the pool
deploys (the NVIDIA device plugin and DCGM exporter) and the GPU budget the models' peak must fit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from components.config.declare import EMPTY, Block, key
from components.config.kinds import (
    DURATION,
    LABEL_KEY,
    TAINT_EFFECTS,
    Choice,
    DnsLabel,
    Flag,
    ImageRef,
    Int,
    LabelKey,
    StringMap,
    Strings,
    Text,
    check_memory_size,
    one_of,
)

_key = key


@dataclass(frozen=True, kw_only=True)
class Taint:
    """The taint that keeps other pods off GPU nodes; GPU pods tolerate it."""

    # (``_key``: the field ``key`` hides the function in the class body.)
    key: str = _key(LabelKey(), "nvidia.com/gpu", "taint key")
    value: str = _key(Text(), "present", "taint value")
    effect: str = _key(Choice(TAINT_EFFECTS), "NoSchedule", "taint effect")


@dataclass(frozen=True, kw_only=True)
class DevicePluginConfig:
    """The NVIDIA device plugin DaemonSet that advertises the GPUs."""

    type_name: ClassVar[str] = "DevicePlugin"
    enabled: bool = key(Flag(), True, "deploy it; false where the cluster already runs one")
    # Pinned by digest: the plugin runs as root on every GPU node.
    image: str = key(
        ImageRef(),
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
        "@sha256:af31e2b7c7f89834c4e5219860def7ac2e49a207b3d4e8610d5a26772b7738e5",
        "the plugin image, pinned: it runs as root on every GPU node",
    )
    namespace: str = key(
        DnsLabel(), "nvidia-device-plugin", "its namespace (pod security `privileged`: it needs a hostPath)"
    )
    time_slicing_replicas: int = key(Int(1, 64), 1, "time-slicing: pods per physical GPU (1 = off)")
    mig_strategy: str = key(Choice(("none", "single", "mixed")), "none", "MIG strategy")


@dataclass(frozen=True, kw_only=True)
class DcgmExporterConfig:
    """NVIDIA's DCGM exporter on the GPU nodes, and its ServiceMonitor (prometheus-operator).

    GPU utilization and memory per pod."""

    type_name: ClassVar[str] = "DcgmExporter"
    enabled: bool = key(Flag(), False, "deploy it (and its ServiceMonitor)")
    # Pinned by digest: it runs as root on every GPU node.
    image: str = key(
        ImageRef(),
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
        "@sha256:60d3b00ac80b4ae77f94dae2f943685605585ad9e92fdccda3154d009ae317cc",
        "the exporter image, pinned: it runs as root on every GPU node",
    )
    namespace: str = key(
        DnsLabel(),
        "nvidia-dcgm-exporter",
        "its namespace (pod security `privileged`: it reads the kubelet's pod resources socket through a hostPath)",
    )


@dataclass(frozen=True, kw_only=True)
class KarpenterConfig:
    """A Karpenter NodePool for GPU nodes (needs gpuBudget, its limit)."""

    type_name: ClassVar[str] = "Karpenter"
    node_class_group: str = key(Text(), "karpenter.k8s.aws", "API group of the node class", name="nodeClassRef.group")
    node_class_kind: str = key(Text(), "EC2NodeClass", "kind of the node class", name="nodeClassRef.kind")
    node_class_name: str = key(DnsLabel(), "gpu", "the node class the NodePool launches from", name="nodeClassRef.name")
    instance_types: tuple[str, ...] = key(Strings(), (), "allowed instance types (this or `gpuProducts` is required)")
    gpu_products: tuple[str, ...] = key(
        Strings(), (), "allowed GPU names (`karpenter.k8s.aws/instance-gpu-name`, e.g. `h100`)"
    )
    capacity_types: tuple[str, ...] = key(
        Strings(check=one_of(("on-demand", "spot", "reserved"))),
        ("on-demand",),
        "`on-demand`, `spot` or `reserved` (an empty list: the default)",
    )
    consolidation_policy: str = key(
        Choice(("WhenEmpty", "WhenEmptyOrUnderutilized")), "WhenEmpty", "which nodes Karpenter may consolidate"
    )
    consolidate_after: str = key(Text("duration", pattern=DURATION), "30m", "how long a node idles before that")
    disruption_budget_nodes: str = key(
        Text("count or %", pattern=re.compile(r"^[0-9]+$|^(100|[1-9]?[0-9])%$")),
        "10%",
        "nodes Karpenter may disrupt at once",
    )
    expire_after: str = key(Text("duration", pattern=DURATION), "720h", "node lifetime before replacement")


@dataclass(frozen=True, kw_only=True)
class GpuPoolConfig:
    """The stack's GPU node pool: how GPU nodes are provided and how workloads land on them."""

    type_name: ClassVar[str] = "GpuPool"
    name: str = key(DnsLabel(), "gpu", "name of the Karpenter NodePool", resource_name=True)
    gpu_resource_name: str = key(
        LabelKey("resource name"), "nvidia.com/gpu", "extended resource the device plugin advertises"
    )
    node_selector: Mapping[str, str] = key(
        StringMap(LABEL_KEY),
        {"nvidia.com/gpu.present": "true"},
        "labels of GPU nodes (Karpenter nodes get them from the NodePool template)",
    )
    taint: Taint = key(Block(Taint), EMPTY, "the taint keeping other pods off GPU nodes")
    runtime_class: str = key(DnsLabel(), "nvidia", "RuntimeClass (handler `nvidia`) GPU pods use")
    gpu_budget: int | None = key(
        Int(1),
        None,
        "GPUs the pool may hold; the models' peak `(maxReplicas + maxSurge) × gpus` must fit",
        unset="none (required with `karpenter`)",
    )
    gpu_memory: str = key(
        Text("size", check=check_memory_size), "80Gi", "memory of one GPU, for sizing models from their architecture"
    )
    gpus_per_node: int | None = key(
        Int(1, 64),
        None,
        "GPUs on one node: a model that needs more runs each replica over several nodes (a LeaderWorkerSet, "
        "tensor parallel within a node, pipeline parallel across)",
        unset="one node holds any model (up to 8 GPUs)",
    )
    device_plugin: DevicePluginConfig = key(Block(DevicePluginConfig), EMPTY, "the NVIDIA device plugin")
    dcgm_exporter: DcgmExporterConfig = key(Block(DcgmExporterConfig), EMPTY, "the NVIDIA DCGM exporter")
    karpenter: KarpenterConfig | None = key(Block(KarpenterConfig), None, "a Karpenter NodePool for the GPU nodes")
