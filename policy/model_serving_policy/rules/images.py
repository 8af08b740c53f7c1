"""Container images: a pinned tag (never ``latest``), a digest when required, and an
allowed registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulumi_policy import ResourceValidationPolicy, Severity

from .. import k8s
from ..framework import ResourceContext, resource_policy
from ..settings import string_list_schema

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")


@dataclass(frozen=True)
class ImageRef:
    registry: str
    #: Repository path within the registry, e.g. ``library/nginx``.
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_image(ref: str) -> ImageRef:
    """Split a reference the way the container runtime does (``docker.io`` and
    ``library/`` implied for short names)."""
    name, _, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, None)
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], "/".join(parts[1:])
    else:
        registry = "docker.io"
        path = repo if len(parts) > 1 else f"library/{repo}"
    return ImageRef(registry, path, tag or None, digest or None)


def registry_allowed(image: ImageRef, allowed: list[str]) -> bool:
    """``allowed`` entries are registries (``ghcr.io``) or repository prefixes
    (``ghcr.io/acme``, ``docker.io/library/nginx``)."""
    for entry in allowed:
        entry = entry.rstrip("/")
        if "/" not in entry:
            if image.registry == entry:
                return True
        elif image.repository == entry or image.repository.startswith(entry + "/"):
            return True
    return False


def _check_images(ctx: ResourceContext) -> None:
    cfg = ctx.config
    for c in ctx.containers():
        with ctx.deciding():
            ref = k8s.get(c.spec, "image")
            if not isinstance(ref, str) or not ref.strip():
                ctx.report(f"{c.describe()} has no image.")
                continue
            img = parse_image(ref.strip())
            if img.digest is not None and not _DIGEST.match(img.digest):
                ctx.report(f"{c.describe()}: image {ref!r} has a malformed digest.")
            if img.tag is None and img.digest is None:
                ctx.report(
                    f"{c.describe()}: image {ref!r} has no tag, so it pulls 'latest'; pin a version tag or a digest."
                )
            if img.tag is not None and img.tag in cfg["forbiddenTags"]:
                ctx.report(f"{c.describe()}: image {ref!r} uses the mutable tag {img.tag!r}.")
            if cfg["requireDigest"] and img.digest is None:
                ctx.report(
                    f"{c.describe()}: image {ref!r} is not pinned by digest "
                    "(<repository>@sha256:<digest>); requireDigest is on."
                )
            if cfg["allowedRegistries"] and not registry_allowed(img, cfg["allowedRegistries"]):
                ctx.report(
                    f"{c.describe()}: image {ref!r} ({img.repository}) is not from an allowed "
                    f"registry: {', '.join(cfg['allowedRegistries'])}."
                )


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="container-images",
        description=(
            "Container images carry a version tag (not latest), a digest where required, "
            "and come from an allowed registry."
        ),
        applies=k8s.is_workload,
        check=_check_images,
        properties={
            "requireDigest": {
                "type": "boolean",
                "description": "Require every image to be pinned by digest.",
                "default": True,
            },
            "forbiddenTags": string_list_schema("Mutable tags that must not be deployed.", ["latest"]),
            "allowedRegistries": string_list_schema(
                ("Registries (ghcr.io) or repository prefixes (ghcr.io/acme) images may come from; empty allows any."),
                [],
            ),
        },
        severity=Severity.HIGH,
    ),
]
