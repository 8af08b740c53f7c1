"""Reading the stack's config from Pulumi: the one place that turns config errors into a clean stop, and that
reads the files the config names (``kubeconfig``, ``imageLock``) relative to the project directory."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi

from components.config import SECRET_KEYS, TOP_KEYS, ConfigError, StackConfig, parse_stack_config
from components.config.declare import Block, BlockList, keys
from components.config.image_lock import KEY as IMAGE_LOCK
from components.config.image_lock import missing_message, parse_image_lock, pin_images

# Keys holding objects or lists (YAML or JSON in the stack file); the others are plain strings.
_OBJECT_KEYS = tuple(k.name for k in keys(StackConfig) if isinstance(k.kind, Block | BlockList))
PREFIX = "model-serving:"


def load_stack_config(config: pulumi.Config) -> StackConfig:
    """Parse ``model-serving:*`` or stop the program with one message naming every mistake's key.

    With ``imageLock`` set, the models' image references are the lock's pinned ones (:func:`lock_images`).
    """
    # A misspelt top-level key would otherwise drop its whole block silently (e.g. model-serving:gpupool).
    known = {config.full_key(k) for k in (*TOP_KEYS, *SECRET_KEYS)}
    given = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    unknown = sorted(k for k in given if k.startswith(config.full_key("")) and k not in known)
    if unknown:
        raise pulumi.RunError(f"{unknown[0]} is not a known key (known: {', '.join(sorted(known))})")
    raw: dict[str, object] = {}
    try:
        for key in TOP_KEYS:
            value = config.get_object(key) if key in _OBJECT_KEYS else config.get(key)
            if value is not None:
                raw[key] = value
    except pulumi.ConfigTypeError as error:
        raise pulumi.RunError(f"{error.key} is not valid JSON or YAML") from None
    present = {}
    for key in SECRET_KEYS:
        full = f"{PREFIX}{key}"
        present[key] = pulumi.runtime.get_config(full) is not None
        if present[key] and not pulumi.runtime.is_config_secret(full):
            raise pulumi.RunError(f"{full} must be a secret: pulumi config set --secret {full} …")
        # A preview shows the objects without the secret (a placeholder stands in, see stack_secret); the update
        # itself still stops on it, before anything is registered.
        present[key] = present[key] or pulumi.runtime.is_dry_run()
    try:
        stack = parse_stack_config(
            raw, has_hub_token=present["hubToken"], has_registry_password=present["registryPassword"]
        )
        return lock_images(stack)
    except ConfigError as error:
        raise pulumi.RunError(f"invalid stack config: {error.report(PREFIX)}") from None


def project_path(value: str) -> Path:
    """A path the config gives, absolute: relative ones are relative to the project directory."""
    path = Path(value).expanduser()
    # Pulumi runs the program in the project directory.
    return path if path.is_absolute() else Path.cwd() / path


def kubeconfig_path(stack: StackConfig) -> str | None:
    """``model-serving:kubeconfig`` as an absolute path: the provider takes a relative one for file contents."""
    if stack.kubeconfig is None:
        return None
    path = project_path(stack.kubeconfig)
    if not path.is_file():
        pulumi.log.warn(
            f"{PREFIX}kubeconfig: {stack.kubeconfig} does not exist"
            + (" (make cluster-up writes it)" if stack.kubeconfig.startswith(".cluster/") else "")
        )
    return str(path)


def lock_images(stack: StackConfig) -> StackConfig:
    """The stack with the image references ``imageLock`` pins; ConfigError (naming imageLock) for a lock file that
    is missing, not JSON, not an object of strings, or that maps a ref to one not pinned by digest."""
    if stack.image_lock is None:
        return stack
    path = project_path(stack.image_lock)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(IMAGE_LOCK, missing_message(stack.image_lock)) from None
    except (OSError, ValueError) as error:  # a directory, no permission, not UTF-8
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(IMAGE_LOCK, f"must be a readable text file ({stack.image_lock}: {reason})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(IMAGE_LOCK, f"must be a JSON file ({stack.image_lock}: {error})") from None
    return pin_images(stack, parse_image_lock(data, stack.image_lock))


def stack_secret(config: pulumi.Config, key: str, needed: bool) -> pulumi.Output[str] | None:
    """The secret ``model-serving:<key>``. In a preview where the stack ``needed`` it but it is not set, a secret
    placeholder, with a warning that the update needs it: a team previews a stack before it holds the secret."""
    value = config.get_secret(key)
    if value is not None or not needed or not pulumi.runtime.is_dry_run():
        return value
    pulumi.log.warn(
        f"{PREFIX}{key} is not set: this preview uses a placeholder, and `pulumi up` stops until it is set "
        f"(pulumi config set --secret {PREFIX}{key} …)"
    )
    return pulumi.Output.secret(f"<{PREFIX}{key} not set>")


def stack_secrets(
    config: pulumi.Config, stack: StackConfig
) -> tuple[pulumi.Output[str] | None, pulumi.Output[str] | None]:
    """``hubToken`` and ``registryPassword``, each needed when a model mounts the token or pushes to a registry (the
    rule that refuses an update without them reads the same properties)."""
    pushes = any(m.image.build is not None and m.image.build.logs_in for m in stack.models)
    return (
        stack_secret(config, "hubToken", any(m.hub_token for m in stack.models)),
        stack_secret(config, "registryPassword", pushes),
    )
