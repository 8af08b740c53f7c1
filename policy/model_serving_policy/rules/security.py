"""Pod security: non-root, no privilege escalation, not privileged, capabilities dropped,
a seccomp profile, and no host namespaces or hostPath volumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ResourceValidationPolicy, Severity

from .. import k8s
from ..framework import ResourceContext, resource_policy
from ..settings import string_list_schema


def _cap(name: Any) -> str:
    text = str(name).upper()
    return text[4:] if text.startswith("CAP_") else text


def _effective(container: Mapping[str, Any], pod_ctx: Mapping[str, Any], key: str) -> Any:
    """A security setting from the container's securityContext, else the pod's."""
    value = k8s.get(container, "securityContext", key)
    return value if value is not None else k8s.get(pod_ctx, key)


def _check_pod_level(ctx: ResourceContext) -> None:
    pod = ctx.pod
    if pod is None:
        return
    cfg = ctx.config
    if not cfg["allowHostNamespaces"]:
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            with ctx.deciding():
                if k8s.get(pod.spec, key) is True:
                    ctx.report(f"{pod.path}.{key} is true; pods share no host namespaces.")
    if not cfg["allowHostPath"]:
        with ctx.deciding():
            for i, v in enumerate(k8s.items(k8s.get(pod.spec, "volumes"))):
                if k8s.get(v, "hostPath") is not None:
                    path = k8s.get(v, "hostPath", "path")
                    ctx.report(
                        f"{pod.path}.volumes[{i}] ({k8s.get(v, 'name')}) mounts the host path "
                        f"{path!r}; hostPath volumes are not allowed."
                    )


def _check_container(ctx: ResourceContext) -> None:
    pod = ctx.pod
    if pod is None:
        return
    cfg = ctx.config
    required_drop = {_cap(c) for c in cfg["requiredDropCapabilities"]}
    allowed_add = {_cap(c) for c in cfg["allowedAddCapabilities"]}
    for c in pod.containers:
        sc_path = f"{c.path}.securityContext"
        with ctx.deciding():
            pod_sc = k8s.mapping(k8s.get(pod.spec, "securityContext"))
            user = k8s.as_int(_effective(c.spec, pod_sc, "runAsUser"))
            non_root = _effective(c.spec, pod_sc, "runAsNonRoot")
            if user == 0:
                ctx.report(f"{c.describe()} runs as root (runAsUser: 0).")
            elif non_root is not True and (user is None or user <= 0):
                ctx.report(
                    f"{c.describe()} may run as root: set runAsNonRoot: true (and a non-zero "
                    f"runAsUser) in {sc_path} or the pod's securityContext."
                )
        with ctx.deciding():
            if k8s.get(c.spec, "securityContext", "allowPrivilegeEscalation") is not False:
                ctx.report(
                    f"{c.describe()} does not set {sc_path}.allowPrivilegeEscalation: false (it defaults to true)."
                )
        with ctx.deciding():
            if k8s.get(c.spec, "securityContext", "privileged") is True:
                ctx.report(f"{c.describe()} is privileged.")
        with ctx.deciding():
            caps = k8s.mapping(k8s.get(c.spec, "securityContext", "capabilities"))
            dropped = {_cap(x) for x in k8s.items(k8s.get(caps, "drop"))}
            missing = sorted(required_drop - dropped) if "ALL" not in dropped else []
            if missing:
                ctx.report(
                    f"{c.describe()} does not drop capabilities {', '.join(missing)} ({sc_path}.capabilities.drop)."
                )
            added = sorted({_cap(x) for x in k8s.items(k8s.get(caps, "add"))} - allowed_add)
            if added:
                ctx.report(f"{c.describe()} adds capabilities {', '.join(added)}.")
        if cfg["requireSeccompProfile"]:
            with ctx.deciding():
                pod_sc = k8s.mapping(k8s.get(pod.spec, "securityContext"))
                profile = _effective(c.spec, pod_sc, "seccompProfile")
                kind = k8s.get(profile, "type")
                if kind not in ("RuntimeDefault", "Localhost"):
                    ctx.report(
                        f"{c.describe()} has no seccomp profile (seccompProfile.type "
                        f"RuntimeDefault or Localhost, in {sc_path} or the pod's "
                        f"securityContext); got {kind or 'none'}."
                    )


def _check_security(ctx: ResourceContext) -> None:
    _check_pod_level(ctx)
    _check_container(ctx)


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="pod-security",
        description=(
            "Containers run as non-root, without privilege escalation, unprivileged, with all "
            "capabilities dropped and a seccomp profile; pods use no host namespaces or "
            "hostPath volumes."
        ),
        applies=k8s.is_workload,
        check=_check_security,
        properties={
            "requiredDropCapabilities": string_list_schema(
                "Capabilities every container must drop (ALL covers any).", ["ALL"]
            ),
            "allowedAddCapabilities": string_list_schema("Capabilities a container may add back.", []),
            "requireSeccompProfile": {
                "type": "boolean",
                "description": "Require seccompProfile RuntimeDefault or Localhost.",
                "default": True,
            },
            "allowHostPath": {
                "type": "boolean",
                "description": "Allow hostPath volumes.",
                "default": False,
            },
            "allowHostNamespaces": {
                "type": "boolean",
                "description": "Allow hostNetwork, hostPID and hostIPC.",
                "default": False,
            },
        },
        severity=Severity.CRITICAL,
    ),
]
