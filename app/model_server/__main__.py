"""Entry point: ``python -m model_server`` (configured by environment variables)."""

from __future__ import annotations

import logging
import os
import sys


def main() -> int:
    # One BLAS thread per inference: multi-threaded OpenBLAS spins badly when
    # CPUs are shared or limited by a cgroup quota. INFERENCE_CONCURRENCY runs
    # requests side by side instead. Must be set before numpy is imported.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    from .config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"model-server: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("model_server")
    # uvicorn's own INFO lines ("Started server process", ...) repeat what the server logs itself.
    if settings.log_level != "DEBUG":
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    if settings.hf_token_file:
        state = "read" if settings.hf_token else "absent or empty"
        log.info("hub token file %s: %s (offline: the token is not sent anywhere)", settings.hf_token_file, state)

    from .server import ModelServer

    try:
        server = ModelServer(settings)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
