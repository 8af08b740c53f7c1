"""Rules 9 and 10: container images and pod security."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from model_serving_policy.rules.images import parse_image
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE

from .builders import DIGEST, check, container, deployment, device_plugin, set_path

C0 = "spec.template.spec.containers[0]"
POD = "spec.template.spec"


def with_image(image: Any) -> dict[str, Any]:
    return set_path(deployment(), f"{C0}.image", image)


# --- container-images ------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [f"registry.example.com/models/server:1.2.3@{DIGEST}", f"registry.example.com/models/server@{DIGEST}"],
)
def test_pinned_images_pass(image: str) -> None:
    assert not check("container-images", with_image(image))


@pytest.mark.parametrize(
    ("image", "config", "message"),
    [
        ("registry.example.com/server", {"requireDigest": False}, "has no tag"),
        ("localhost:5000/server", {"requireDigest": False}, "has no tag"),
        ("server:latest", {"requireDigest": False}, "mutable tag 'latest'"),
        ("registry.example.com/server:1.2.3", {}, "not pinned by digest"),
        ("registry.example.com/server:1.2.3@sha256:abc", {"requireDigest": False}, "malformed digest"),
        (f"ghcr.io/other/server:1@{DIGEST}", {"allowedRegistries": ["registry.example.com"]}, "allowed registry"),
        ("", {}, "has no image"),
    ],
)
def test_image_violations(image: str, config: dict[str, Any], message: str) -> None:
    out = check("container-images", with_image(image), config)
    assert message in out.text()


def test_dev_stacks_may_skip_digests_and_registries_match_prefixes() -> None:
    assert not check(
        "container-images", with_image("registry.example.com/models/server:1.2.3"), {"requireDigest": False}
    )
    allowed = {"allowedRegistries": ["registry.example.com/models", "docker.io/library"]}
    assert not check("container-images", with_image(f"registry.example.com/models/server:1@{DIGEST}"), allowed)
    assert not check("container-images", with_image(f"nginx:1.27@{DIGEST}"), allowed)
    assert check("container-images", with_image(f"registry.example.com/modelsx/server:1@{DIGEST}"), allowed)


def test_init_container_images_are_checked() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["initContainers"] = [container("fetch", image="busybox")]
    out = check("container-images", obj)
    assert 'init container "fetch"' in out.text()


def test_unknown_image_is_undecided() -> None:
    out = check("container-images", with_image(UNKNOWN_STRING_VALUE))
    assert not out.violations
    assert out.undecided == f"cannot decide: {C0}.image is unknown during preview"


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_name = st.text(_ALNUM, min_size=1, max_size=8)
_tag = st.builds(
    lambda a, b: a + b, st.text(_ALNUM + "_", min_size=1, max_size=1), st.text(_ALNUM + "._-", max_size=12)
)


@given(
    registry=st.sampled_from(["", "ghcr.io/", "localhost:5000/", "registry.example.com:443/"]),
    path=st.lists(_name, min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tag),
    digest=st.one_of(st.none(), st.just(DIGEST)),
)
def test_parse_image_recovers_parts(registry: str, path: list[str], tag: str | None, digest: str | None) -> None:
    ref = registry + "/".join(path) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    img = parse_image(ref)
    assert img.tag == tag and img.digest == digest
    if registry:
        assert img.registry == registry.rstrip("/") and img.path == "/".join(path)
    elif len(path) == 1 or not ("." in path[0] or path[0] == "localhost"):
        assert img.registry == "docker.io"
        assert img.path == ("/".join(path) if len(path) > 1 else f"library/{path[0]}")


# --- pod-security ----------------------------------------------------------------------


def test_compliant_pod_passes() -> None:
    assert not check("pod-security", deployment(gpus=2))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (f"{C0}.securityContext.runAsUser", 0, "runs as root"),
        (f"{C0}.securityContext.runAsNonRoot", False, "may run as root"),
        (f"{C0}.securityContext.allowPrivilegeEscalation", True, "allowPrivilegeEscalation: false"),
        (f"{C0}.securityContext.privileged", True, "is privileged"),
        (f"{C0}.securityContext.capabilities", {"drop": ["NET_RAW"]}, "does not drop capabilities ALL"),
        (f"{C0}.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "adds capabilities SYS_ADMIN"),
        (f"{POD}.securityContext", {}, "no seccomp profile"),
        (f"{C0}.securityContext.seccompProfile", {"type": "Unconfined"}, "got Unconfined"),
        (f"{POD}.hostNetwork", True, "hostNetwork is true"),
        (f"{POD}.volumes", [{"name": "h", "hostPath": {"path": "/"}}], "hostPath volumes are not allowed"),
    ],
)
def test_security_violations(path: str, value: Any, message: str) -> None:
    obj = set_path(deployment(), path, value)
    if path.endswith("runAsNonRoot"):
        obj = set_path(obj, f"{C0}.securityContext.runAsUser", None)
    out = check("pod-security", obj)
    assert message in out.text(), out.text()


def test_pod_level_non_root_and_cap_prefix_are_accepted() -> None:
    obj = deployment()
    sc = obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    del sc["runAsNonRoot"], sc["runAsUser"]
    sc["capabilities"] = {"drop": ["all"], "add": ["CAP_NET_BIND_SERVICE"]}
    obj["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = True
    assert not check("pod-security", obj, {"allowedAddCapabilities": ["NET_BIND_SERVICE"]})


def test_security_config_switches() -> None:
    obj = set_path(deployment(), f"{POD}.volumes", [{"name": "h", "hostPath": {"path": "/data"}}])
    assert not check("pod-security", obj, {"allowHostPath": True})
    assert not check(
        "pod-security", set_path(deployment(), f"{POD}.securityContext", {}), {"requireSeccompProfile": False}
    )


def test_device_plugin_fails_without_exemption() -> None:
    out = check("pod-security", device_plugin())
    assert "hostPath" in out.text() and "may run as root" in out.text()


def test_unknown_security_field_is_undecided_but_other_checks_run() -> None:
    obj = set_path(deployment(), f"{C0}.securityContext.privileged", UNKNOWN_BOOLEAN_VALUE)
    obj = set_path(obj, f"{C0}.securityContext.allowPrivilegeEscalation", True)
    out = check("pod-security", obj)
    assert len(out.violations) == 1 and "allowPrivilegeEscalation" in out.violations[0]
    assert out.undecided == f"cannot decide: {C0}.securityContext.privileged is unknown during preview"
