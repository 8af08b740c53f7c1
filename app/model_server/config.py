"""Settings from the environment, and locating the model on disk (offline)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class ConfigError(ValueError):
    """An environment variable has a value the server cannot use."""


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value != value or value < minimum:  # NaN or too small
        raise ConfigError(f"{name}={raw!r} must be >= {minimum:g}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r} must be <= {maximum:g}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name}={raw!r} must be {bound}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by the container's CFS quota (cgroup v2 or v1), None if unlimited."""
    try:
        quota, period = Path(root, "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path(root, "cpu", "cpu.cfs_quota_us").read_text())
        period_us = int(Path(root, "cpu", "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def default_concurrency() -> int:
    """Forward passes at once: the usable CPUs (affinity, then the pod's CPU limit), at most 4."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = float(os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, limit)
    return max(1, min(math.ceil(cpus), 4))


@dataclass(frozen=True)
class Settings:
    model_id: str = DEFAULT_MODEL_ID
    model_dir: str | None = None
    host: str = "0.0.0.0"
    port: int = 8000
    hf_home: str = "/cache"
    hf_hub_cache: str = "/cache/hub"
    model_revision: str = "main"
    hf_token_file: str | None = None
    drain_seconds: float = 25.0
    max_request_bytes: int = 4 * 1024 * 1024
    max_batch_inputs: int = 256
    inference_concurrency: int = 1
    token_budget: int = 4096
    batch_wait_ms: float = 2.0
    keepalive_seconds: float = 15.0
    log_level: str = "INFO"
    # Test hooks, off unless set: delay model loading; honour X-Debug-Delay-Seconds.
    debug_load_delay_seconds: float = 0.0
    debug_allow_delay_header: bool = False
    # Never printed: repr=False keeps it out of logs and tracebacks.
    hf_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        hf_home = env.get("HF_HOME", "").strip() or "/cache"
        hub_cache = env.get("HF_HUB_CACHE", "").strip() or os.path.join(hf_home, "hub")
        token_file = env.get("HF_TOKEN_FILE", "").strip() or None
        model_id = env.get("MODEL_ID", "").strip() or DEFAULT_MODEL_ID
        return cls(
            model_id=model_id,
            model_dir=env.get("MODEL_DIR", "").strip() or None,
            host=env.get("HOST", "").strip() or "0.0.0.0",
            port=_integer(env, "PORT", 8000, minimum=0, maximum=65535),
            hf_home=hf_home,
            hf_hub_cache=hub_cache,
            model_revision=env.get("MODEL_REVISION", "").strip() or "main",
            hf_token_file=token_file,
            hf_token=read_token(token_file),
            drain_seconds=_number(env, "DRAIN_SECONDS", 25.0),
            max_request_bytes=_integer(env, "MAX_REQUEST_BYTES", 4 * 1024 * 1024, minimum=1024),
            max_batch_inputs=_integer(env, "MAX_BATCH_INPUTS", 256),
            inference_concurrency=_integer(env, "INFERENCE_CONCURRENCY", default_concurrency(), maximum=64),
            token_budget=_integer(env, "TOKEN_BUDGET", 4096, minimum=64),
            batch_wait_ms=_number(env, "BATCH_WAIT_MS", 2.0, maximum=1000.0),
            keepalive_seconds=_number(env, "KEEPALIVE_SECONDS", 15.0, minimum=0.1),
            log_level=(env.get("LOG_LEVEL", "").strip() or "INFO").upper(),
            debug_load_delay_seconds=_number(env, "DEBUG_LOAD_DELAY_SECONDS", 0.0),
            debug_allow_delay_header=_flag(env, "DEBUG_ALLOW_DELAY_HEADER"),
        )


def read_token(path: str | None) -> str | None:
    """The hub token from HF_TOKEN_FILE, if that file exists and is readable."""
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def resolve_model_dir(settings: Settings) -> Path:
    """MODEL_DIR if set, else MODEL_ID's snapshot in the Hugging Face hub cache.

    Never downloads: the cache layout is
    ``<HF_HUB_CACHE>/models--<org>--<name>/{refs/<revision>,snapshots/<commit>/}``.
    """
    if settings.model_dir:
        path = Path(settings.model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"MODEL_DIR={settings.model_dir} has no config.json")
        return path
    repo = Path(settings.hf_hub_cache) / ("models--" + settings.model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        raise FileNotFoundError(
            f"model {settings.model_id!r} is not in the hub cache {settings.hf_hub_cache} "
            f"(no {snapshots}); set MODEL_DIR or pre-populate HF_HOME/HF_HUB_CACHE"
        )
    revision = settings.model_revision
    ref = repo / "refs" / revision
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(snapshots / ref.read_text(encoding="utf-8").strip())
    candidates.append(snapshots / revision)
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    complete = sorted(p for p in snapshots.iterdir() if (p / "config.json").is_file())
    if len(complete) == 1 and not ref.is_file():
        return complete[0]
    raise FileNotFoundError(
        f"no snapshot of {settings.model_id!r} for revision {revision!r} with a config.json under {snapshots}"
    )
