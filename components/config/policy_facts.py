"""What the policy pack must know about the objects the program emits, declared once on the program's side.

The pack imports nothing from ``components/``: :mod:`.policy_settings` writes what it needs from here into its
generated files (``policy/model_serving_policy/kinds.py``, ``policy/config/<stack>.json``).

- :data:`KINDS`: every Kubernetes kind the program registers, and whether it is namespaced. A builder of a new kind
  adds one line here; ``tests/unit/test_policy_settings.py`` fails while a shipped stack registers a kind this list
  lacks, and the pack's ``no-default-namespace`` rule follows the generated copy.
- :data:`NODE_AGENTS`: the GPU pool's node agents (DaemonSets) that need what the pack refuses to every other
  workload, with the reason per rule. Each stack's settings exempt those its GPU pool registers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Kind:
    api_version: str
    """As the object says it (``v1`` for the core group)."""
    kind: str
    namespaced: bool


KINDS: tuple[Kind, ...] = (
    Kind("v1", "ConfigMap", True),
    Kind("v1", "LimitRange", True),
    Kind("v1", "Namespace", False),
    Kind("v1", "PersistentVolumeClaim", True),
    Kind("v1", "ResourceQuota", True),
    Kind("v1", "Secret", True),
    Kind("v1", "Service", True),
    Kind("v1", "ServiceAccount", True),
    Kind("apps/v1", "DaemonSet", True),
    Kind("apps/v1", "Deployment", True),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", True),
    Kind("batch/v1", "Job", True),
    Kind("gateway.networking.k8s.io/v1", "Gateway", True),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", True),
    Kind("inference.networking.k8s.io/v1", "InferencePool", True),
    Kind("karpenter.sh/v1", "NodePool", False),
    Kind("keda.sh/v1alpha1", "ScaledObject", True),
    Kind("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", True),
    Kind("monitoring.coreos.com/v1", "PrometheusRule", True),
    Kind("monitoring.coreos.com/v1", "ServiceMonitor", True),
    Kind("networking.k8s.io/v1", "NetworkPolicy", True),
    Kind("node.k8s.io/v1", "RuntimeClass", False),
    Kind("policy/v1", "PodDisruptionBudget", True),
    Kind("rbac.authorization.k8s.io/v1", "Role", True),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", True),
    Kind("scheduling.k8s.io/v1", "PriorityClass", False),
)


@dataclass(frozen=True)
class NodeAgent:
    """A DaemonSet of the GPU pool, and why each policy rule named here lets it through."""

    doc: str
    reasons: Mapping[str, str]
    """policy rule -> the reason its exemption states (the pack's ``exempted-resources`` reports it every run)."""


DEVICE_PLUGIN = NodeAgent(
    "the NVIDIA device plugin (gpuPool.devicePlugin)",
    MappingProxyType(
        {
            "pod-security": (
                "The NVIDIA device plugin registers its socket in the kubelet's /var/lib/kubelet/device-plugins "
                "(hostPath), which needs root; with gpuPool.devicePlugin.migStrategy single or mixed it also adds "
                "the SYS_ADMIN capability to enumerate MIG devices, as NVIDIA's own deployment does."
            ),
            "gpu-scheduling": (
                "The NVIDIA device plugin must run on the tainted GPU nodes to advertise their GPUs; it requests "
                "none itself."
            ),
        }
    ),
)

DCGM_EXPORTER = NodeAgent(
    "NVIDIA's DCGM exporter (gpuPool.dcgmExporter)",
    MappingProxyType(
        {
            "pod-security": (
                "NVIDIA's DCGM exporter (gpuPool.dcgmExporter) reads the kubelet's pod-resources socket (hostPath "
                "/var/lib/kubelet/pod-resources, owned by root) to label each GPU's metrics with the pod using it; "
                "it runs as root with every capability dropped."
            ),
            "gpu-scheduling": (
                "NVIDIA's DCGM exporter must run on the tainted GPU nodes to read their GPUs' metrics; it requests "
                "none itself."
            ),
        }
    ),
)

NODE_AGENTS: tuple[NodeAgent, ...] = (DEVICE_PLUGIN, DCGM_EXPORTER)
