"""Reading the stack's config from Pulumi: the one place that turns config errors into a clean stop."""

from __future__ import annotations

import pulumi

from components.config import TOP_KEYS, ConfigError, StackConfig, parse_stack_config

_OBJECT_KEYS = ("gpuPool", "models")
_SECRET_KEYS = ("hubToken", "registryPassword")


def load_stack_config(config: pulumi.Config) -> StackConfig:
    """Parse ``model-serving:*`` or stop the program with one message naming the key."""
    # A misspelt top-level key would otherwise drop its whole block silently (e.g. model-serving:gpupool).
    known = {config.full_key(k) for k in (*TOP_KEYS, *_SECRET_KEYS)}
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
    for key in _SECRET_KEYS:
        full = f"model-serving:{key}"
        present[key] = pulumi.runtime.get_config(full) is not None
        if present[key] and not pulumi.runtime.is_config_secret(full):
            raise pulumi.RunError(f"{full} must be a secret: pulumi config set --secret {full} …")
    try:
        return parse_stack_config(
            raw, has_hub_token=present["hubToken"], has_registry_password=present["registryPassword"]
        )
    except ConfigError as error:
        raise pulumi.RunError(f"invalid stack config: model-serving:{error}") from None
