"""Reading the stack's config from Pulumi: the one place that turns config errors into a clean stop."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.config import SECRET_KEYS, TOP_KEYS, ConfigError, StackConfig, parse_stack_config
from components.config.declare import Block, BlockList, keys

# Keys holding objects or lists (YAML or JSON in the stack file); the others are plain strings.
_OBJECT_KEYS = tuple(k.name for k in keys(StackConfig) if isinstance(k.kind, Block | BlockList))


def load_stack_config(config: pulumi.Config) -> StackConfig:
    """Parse ``model-serving:*`` or stop the program with one message naming every mistake's key."""
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
        full = f"model-serving:{key}"
        present[key] = pulumi.runtime.get_config(full) is not None
        if present[key] and not pulumi.runtime.is_config_secret(full):
            raise pulumi.RunError(f"{full} must be a secret: pulumi config set --secret {full} …")
    try:
        return parse_stack_config(
            raw, has_hub_token=present["hubToken"], has_registry_password=present["registryPassword"]
        )
    except ConfigError as error:
        raise pulumi.RunError(f"invalid stack config: {error.report('model-serving:')}") from None


def kubeconfig_path(stack: StackConfig) -> str | None:
    """``model-serving:kubeconfig`` as an absolute path: the provider takes a relative one for file contents."""
    if stack.kubeconfig is None:
        return None
    path = Path(stack.kubeconfig).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path  # Pulumi runs the program in the project directory
    if not path.is_file():
        pulumi.log.warn(
            f"model-serving:kubeconfig: {stack.kubeconfig} does not exist"
            + (" (make cluster-up writes it)" if stack.kubeconfig.startswith(".cluster/") else "")
        )
    return str(path)
