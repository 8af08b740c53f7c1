"""Generated from components/config/policy_facts.py by ``python -m components.config.docs --write`` (do not edit).

The namespaced Kubernetes kinds the model-serving program emits: ``no-default-namespace`` checks each of them
(beside the kinds any stack may hold).
"""

NAMESPACED_KINDS: tuple[str, ...] = (
    "ConfigMap",
    "DaemonSet",
    "Deployment",
    "Gateway",
    "HTTPRoute",
    "HorizontalPodAutoscaler",
    "InferencePool",
    "Job",
    "LeaderWorkerSet",
    "LimitRange",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "PrometheusRule",
    "ResourceQuota",
    "Role",
    "RoleBinding",
    "ScaledObject",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
)
