"""The model server's container image, built with pulumi-docker or taken prebuilt, and the reference the pods run.

Whatever runs it, a rebuild with other content must change the reference, or the Deployment (with
``imagePullPolicy: IfNotPresent``) keeps running the old image: a pushed build is referenced by its digest, a local
one by a tag with the digest of its build inputs appended (:func:`content_tagged`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.config import IMAGE_REF, ImageBuildConfig, ImageConfig

# Caches a build context may hold that are no part of any image (app/.dockerignore keeps them from Docker too).
# Everything else counts, even what .dockerignore leaves out: a spurious new tag only costs a rebuild.
_IGNORED_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
IMAGE_TYPE = "docker:index/image:Image"  # pulumi-docker's type token of docker.Image


def context_digest(build: ImageBuildConfig, root: Path | None = None) -> str:
    """SHA-256 of everything the build reads: the context's files (paths, modes, bytes), the Dockerfile,
    the build arguments and the platform. Equal inputs give an equal digest on any machine.

    Paths are relative to ``root`` (default: the working directory, which is the project directory when
    the engine runs the program).
    """
    base = root or Path.cwd()
    context = base / build.context
    dockerfile = base / build.dockerfile
    if not context.is_dir():
        raise FileNotFoundError(f"image.build.context {build.context!r} is not a directory (from {base})")
    if not dockerfile.is_file():
        raise FileNotFoundError(f"image.build.dockerfile {build.dockerfile!r} is not a file (from {base})")
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    for directory, dirs, files in os.walk(context):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in sorted(files):
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            path = Path(directory) / name
            relative = path.relative_to(context).as_posix()
            add(f"file {relative} {'x' if os.access(path, os.X_OK) else '-'}", path.read_bytes())
    add("dockerfile", dockerfile.read_bytes())
    add("args", "\n".join(f"{k}={v}" for k, v in sorted(build.args.items())).encode())
    add("platform", build.platform.encode())
    return digest.hexdigest()


def content_tagged(image_name: str, digest: str) -> str:
    """``repo:tag`` -> ``repo:tag-<12 hex of digest>``: a new build content is a new reference."""
    match = IMAGE_REF.match(image_name)
    if match is None or match["digest"]:
        return image_name  # validated config never gets here; a digest already names the content
    suffix = digest[:12]
    tag = match["tag"] or "build"
    tag = f"{tag[: 127 - len(suffix)]}-{suffix}"
    return f"{match['name']}:{tag}"


def register_image(
    name: str, image: ImageConfig, registry_password: pulumi.Input[str] | None, opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    """The image reference the model runs: ``image.ref`` as given, or the ``docker.Image`` it registers with
    ``opts``. ``registry_password``: for pushes, a secret."""
    build = image.build
    if build is None:
        assert image.ref is not None  # guaranteed by config validation
        return pulumi.Output.from_input(image.ref)
    image_name = build.image_name
    if not build.push:
        try:
            image_name = content_tagged(build.image_name, context_digest(build))
        except FileNotFoundError as error:
            raise pulumi.RunError(f"model {name!r}: {error}") from None
    registry = None
    if build.registry_server:
        registry = docker.RegistryArgs(
            server=build.registry_server,
            username=build.registry_username,
            password=pulumi.Output.secret(registry_password) if registry_password else None,
        )
    built = docker.Image(
        name,
        image_name=image_name,
        build=docker.DockerBuildArgs(
            context=build.context,
            dockerfile=build.dockerfile,
            args=dict(build.args),
            platform=build.platform,
            cache_from=docker.CacheFromArgs(images=list(build.cache_from)) if build.cache_from else None,
        ),
        registry=registry,
        skip_push=not build.push,
        opts=opts,
    )
    # Pushed: the digest pins exactly what was built. Local only: the content-tagged name.
    ref: pulumi.Output[str] = built.repo_digest if build.push else built.image_name
    return ref
