"""The image lock (``imageLock``): image references as the config writes them, mapped to digest-pinned ones.

Pure: :func:`parse_image_lock` checks the file's parsed JSON and :func:`pin_images` returns the stack with the
pinned references; reading the file is the program's (``components/program.py``), where ``kubeconfig`` is
resolved too. Every mistake names ``imageLock``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from components.config.errors import ConfigError, Problem
from components.config.kinds import IMAGE_REF, kind_of
from components.config.model import ModelConfig
from components.config.stack import StackConfig

KEY = "imageLock"
# The local cluster's lock: `make cluster-up` builds the app/ image, imports it and writes this file.
LOCAL_CLUSTER_LOCK = ".cluster/images.json"


def missing_message(path: str) -> str:
    """The message for a lock file that does not exist (``path`` as the config gives it)."""
    hint = f"make cluster-up writes {LOCAL_CLUSTER_LOCK} for the local stack"
    return f"must name an existing file: {path} does not exist ({hint})"


def is_pinned(ref: str) -> bool:
    """An image reference pinned by digest: ``[registry/]repo[:tag]@sha256:<64 hex>``."""
    match = IMAGE_REF.match(ref)
    return match is not None and match["digest"] is not None


def parse_image_lock(data: object, path: str) -> dict[str, str]:
    """The lock's entries, or one ConfigError naming ``imageLock`` with every mistake of the file at ``path``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            KEY, f"must be a JSON object of image references to pinned ones ({path} holds {kind_of(data)})"
        )
    problems = []
    for ref, pinned in data.items():
        if not isinstance(pinned, str):
            problems.append(Problem(KEY, f"must map each image reference to a string ({ref!r} maps to {pinned!r})"))
        elif not is_pinned(pinned):
            problems.append(
                Problem(
                    KEY,
                    f"must pin every image by digest, <repository>@sha256:<64 hex> ({ref!r} maps to {pinned!r})",
                )
            )
    if problems:
        raise ConfigError.of(problems)
    return {str(ref): str(pinned) for ref, pinned in data.items()}


def pin_images(stack: StackConfig, lock: Mapping[str, str]) -> StackConfig:
    """The stack with each model's ``image.ref`` (and its canary's ``image``, and its ``modelCache.prestageImage``)
    that is a key of ``lock`` replaced by its pinned value.

    Models that build their image, and refs the lock lacks, are left as they are. The ref looked up is the one
    the model deploys, after ``imageRefOverride``.
    """

    def pinned(model: ModelConfig) -> ModelConfig:
        if model.image.ref is not None and model.image.ref in lock:
            model = dataclasses.replace(model, image=dataclasses.replace(model.image, ref=lock[model.image.ref]))
        canary = model.canary
        if canary is not None and canary.image is not None and canary.image in lock:
            model = dataclasses.replace(model, canary=dataclasses.replace(canary, image=lock[canary.image]))
        staging = model.cache.prestage_image
        if staging is not None and staging in lock:
            model = dataclasses.replace(model, cache=dataclasses.replace(model.cache, prestage_image=lock[staging]))
        return model

    return dataclasses.replace(stack, models=tuple(pinned(m) for m in stack.models))
