"""Model weights pinned like code: a container that downloads a model from the hub names the
hub commit it serves, so that a restart, a rescheduled pod or a new replica serves the same
weights as the pods already running.

A container loads a model from the hub when its command or args name one to vLLM
(``--model <id>``, ``--model=<id>``, ``vllm serve <id>``) or it sets env ``MODEL_ID`` (the
project's server). vLLM reads the revision from ``--revision``; the server from env
``MODEL_REVISION``. A container with env ``MODEL_DIR`` has its weights in the image, pinned
by the image's digest (``container-images``), and a model given as a local path
(``/models/x``) is not downloaded: neither needs a revision.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, Severity

from .. import k8s
from ..framework import ResourceContext, resource_policy

COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HEXISH = re.compile(r"^[0-9a-fA-F]{7,64}$")
FIX = "set models[i].modelRevision"


@dataclass(frozen=True)
class HubModel:
    """The model a container downloads and the revision it asks for."""

    model: str
    #: How the container names the model: ``--model``, ``vllm serve`` or ``env MODEL_ID``.
    source: str
    #: Where the revision is read from: ``--revision`` or ``env MODEL_REVISION``.
    revision_key: str
    #: The revision given; ``None`` when there is none.
    revision: str | None
    #: Why the revision cannot be checked (``valueFrom``); ``None`` when it can.
    unverifiable: str | None = None


def _strings(value: Any) -> list[str]:
    seq = k8s.items(value)
    return [v for v in (seq[i] for i in range(len(seq))) if isinstance(v, str)]


def _argv(spec: Mapping[str, Any]) -> list[str]:
    """``command`` + ``args``, a shell script (``sh -c "vllm serve ..."``) split into words."""
    out: list[str] = []
    for token in _strings(k8s.get(spec, "command")) + _strings(k8s.get(spec, "args")):
        if any(ch.isspace() for ch in token.strip()):
            try:
                out += shlex.split(token)
            except ValueError:
                out += token.split()
        else:
            out.append(token)
    return out


def _flag(argv: Sequence[str], name: str) -> tuple[bool, str | None]:
    """Whether ``--name`` is given, and its (last) value: ``--name v`` or ``--name=v``."""
    found, value = False, None
    for i, token in enumerate(argv):
        if token == name:
            found = True
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            value = nxt if nxt is not None and not nxt.startswith("--") else None
        elif token.startswith(name + "="):
            found, value = True, token[len(name) + 1 :]
    return found, value


def _vllm_serve_model(argv: Sequence[str]) -> str | None:
    """The positional model of ``vllm serve <id>``."""
    for i, token in enumerate(argv[:-1]):
        if token.rsplit("/", 1)[-1] == "vllm" and argv[i + 1] == "serve":
            nxt = argv[i + 2] if i + 2 < len(argv) else None
            return nxt if nxt is not None and not nxt.startswith("-") else None
    return None


def _env(spec: Mapping[str, Any]) -> dict[str, tuple[str | None, bool]]:
    """Env name to (literal value, whether it comes from ``valueFrom``); the last entry wins."""
    out: dict[str, tuple[str | None, bool]] = {}
    entries = k8s.items(k8s.get(spec, "env"))
    for i in range(len(entries)):
        e = k8s.mapping(entries[i])
        name = k8s.get(e, "name")
        if not isinstance(name, str):
            continue
        value = k8s.get(e, "value")
        out[name] = (value if isinstance(value, str) else None, k8s.get(e, "valueFrom") is not None)
    return out


def _is_local(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~"))


def hub_model(spec: Mapping[str, Any]) -> HubModel | None:
    """What ``spec`` downloads from the hub; ``None`` when it downloads no model."""
    env = _env(spec)
    model_dir, dir_from = env.get("MODEL_DIR", (None, False))
    if model_dir or dir_from:
        return None
    argv = _argv(spec)
    has_model, model = _flag(argv, "--model")
    source = "--model"
    if not has_model:
        model, source = _vllm_serve_model(argv), "vllm serve"
    if has_model or model is not None:
        if model is not None and _is_local(model):
            return None
        _, revision = _flag(argv, "--revision")
        return HubModel(model or "(none given)", source, "--revision", revision)
    if "MODEL_ID" not in env:
        return None
    model_id, id_from = env["MODEL_ID"]
    if model_id is not None and _is_local(model_id):
        return None
    revision, rev_from = env.get("MODEL_REVISION", (None, False))
    return HubModel(
        model_id if model_id is not None else "(valueFrom)" if id_from else "(none given)",
        "env MODEL_ID",
        "env MODEL_REVISION",
        revision,
        "it comes from valueFrom" if rev_from and revision is None else None,
    )


def _check_model_revision(ctx: ResourceContext) -> None:
    for c in ctx.containers():
        with ctx.deciding():
            m = hub_model(c.spec)
            if m is None:
                continue
            what = f"{c.describe()}: model {m.model!r} ({m.source})"
            if m.unverifiable is not None:
                ctx.report(
                    f"{what} is downloaded from the hub at a revision ({m.revision_key}) that cannot be checked: "
                    f"{m.unverifiable}; give the 40-hex commit as a literal value: {FIX}."
                )
            elif m.revision is None:
                ctx.report(
                    f"{what} is downloaded from the hub without a pinned revision, so a restarted or new pod "
                    f"may serve other weights; pin the 40-hex commit ({m.revision_key}): {FIX}."
                )
            elif COMMIT.match(m.revision):
                continue
            elif _HEXISH.match(m.revision):
                ctx.report(
                    f"{what}: revision {m.revision!r} ({m.revision_key}) is not a full commit hash; "
                    f"give all 40 lower-case hex digits: {FIX}."
                )
            else:
                ctx.report(
                    f"{what}: revision {m.revision!r} ({m.revision_key}) is a moving name; pin the commit "
                    f"(40 hex digits): {FIX}."
                )


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="model-revision",
        description=(
            "A container that downloads a model from the hub (vLLM's --model or vllm serve's model argument, "
            "the server's env MODEL_ID) pins its full 40-hex commit (--revision, env MODEL_REVISION), not a "
            "branch or tag; weights baked into the image (env MODEL_DIR) are pinned by the image's digest."
        ),
        applies=k8s.is_workload,
        check=_check_model_revision,
        severity=Severity.MEDIUM,
        enforcement_level=EnforcementLevel.ADVISORY,
        remediation_steps=(
            "Set models[i].modelRevision to the hub commit (40 hex digits) the model is served at; the program "
            "passes it as --revision (vLLM) or MODEL_REVISION (server)."
        ),
    ),
]
