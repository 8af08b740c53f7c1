"""model-revision: a model downloaded from the hub is pinned to a full commit, like code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from model_serving_policy import PACK_NAME, ResourceRecord, all_policies, evaluate, state
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import POLICIES, TYPES, check, container, deployment, urn_of

RULE = "model-revision"
SHA = "5206a32e0bd3067aef1ce90f5528ade7d866253f"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "policy" / "config"


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    state.reset()


def workload(
    *, args: list[Any] | None = None, command: list[Any] | None = None, env: dict[str, Any] | None = None
) -> dict[str, Any]:
    c = container("llm", gpus=1)
    if command is not None:
        c["command"] = command
    if args is not None:
        c["args"] = args
    if env is not None:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return deployment(containers=[c])


def vllm(*extra: str) -> dict[str, Any]:
    """As components/specs/pods.py writes a vLLM container (env MODEL_ID too, which vLLM does not read)."""
    return workload(args=["--model", MODEL, "--port", "8000", *extra], env={"MODEL_ID": MODEL})


# --- vLLM ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        vllm("--revision", SHA),
        vllm(f"--revision={SHA}"),
        workload(args=[f"--model={MODEL}", f"--revision={SHA}"]),
        workload(command=["vllm", "serve", MODEL], args=["--revision", SHA]),
        workload(args=["vllm", "serve", MODEL, "--revision", SHA]),
        workload(command=["/bin/sh", "-c"], args=[f"exec vllm serve {MODEL} --revision {SHA} --port 8000"]),
    ],
    ids=["flag", "flag=", "model=", "vllm-serve-command", "vllm-serve-args", "shell"],
)
def test_vllm_pinned_to_a_commit_passes(obj: dict[str, Any]) -> None:
    assert not check(RULE, obj)


@pytest.mark.parametrize(
    "obj",
    [
        vllm(),
        workload(args=[f"--model={MODEL}"]),
        workload(command=["vllm", "serve", MODEL]),
        workload(command=["/usr/local/bin/vllm"], args=["serve", MODEL, "--port", "8000"]),
        # vLLM reads --revision only: MODEL_REVISION does not pin it.
        workload(args=["--model", MODEL], env={"MODEL_ID": MODEL, "MODEL_REVISION": SHA}),
        # A flag with no value pins nothing.
        vllm("--revision"),
    ],
    ids=["flag", "model=", "vllm-serve", "vllm-path-serve", "env-only", "no-value"],
)
def test_vllm_without_a_revision_is_a_violation(obj: dict[str, Any]) -> None:
    out = check(RULE, obj)
    [msg] = out.violations
    assert msg.startswith('container "llm" (spec.template.spec.containers[0]): model ')
    assert "without a pinned revision" in msg and "(--revision)" in msg
    assert msg.endswith("set models[i].modelRevision.")


def test_vllm_message_names_the_model_and_how_it_was_given() -> None:
    assert f"model {MODEL!r} (--model)" in check(RULE, vllm()).text()
    assert f"model {MODEL!r} (vllm serve)" in check(RULE, workload(command=["vllm", "serve", MODEL])).text()


@pytest.mark.parametrize("rev", ["main", "v1.0", "refs/pr/1"])
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_a_branch_or_tag_is_a_moving_name(rev: str, form: str) -> None:
    obj = vllm("--revision", rev) if form == "separate" else vllm(f"--revision={rev}")
    [msg] = check(RULE, obj).violations
    assert f"revision {rev!r} (--revision) is a moving name; pin the commit" in msg
    assert 'container "llm"' in msg and msg.endswith("set models[i].modelRevision.")


@pytest.mark.parametrize("rev", ["5206a32", SHA.upper(), SHA + "00"])
def test_an_abbreviated_or_malformed_commit_is_not_enough(rev: str) -> None:
    [msg] = check(RULE, vllm("--revision", rev)).violations
    assert "is not a full commit hash" in msg


def test_the_last_revision_flag_wins_as_in_argparse() -> None:
    assert not check(RULE, vllm("--revision", "main", "--revision", SHA))
    assert check(RULE, vllm("--revision", SHA, "--revision", "main"))


def test_other_revision_flags_do_not_count() -> None:
    assert check(RULE, vllm("--tokenizer-revision", SHA, "--code-revision", SHA))


# --- the project's server ------------------------------------------------------------


def test_server_with_model_revision_passes() -> None:
    assert not check(RULE, workload(env={"MODEL_ID": "BAAI/bge-reranker-base", "MODEL_REVISION": SHA}))


def test_server_without_model_revision_is_a_violation() -> None:
    [msg] = check(RULE, workload(env={"MODEL_ID": "BAAI/bge-reranker-base", "PORT": "8000"})).violations
    assert "model 'BAAI/bge-reranker-base' (env MODEL_ID)" in msg
    assert "without a pinned revision" in msg and "(env MODEL_REVISION)" in msg
    assert msg.endswith("set models[i].modelRevision.")


def test_server_with_a_moving_model_revision_is_a_violation() -> None:
    out = check(RULE, workload(env={"MODEL_ID": "BAAI/bge-reranker-base", "MODEL_REVISION": "main"}))
    assert "revision 'main' (env MODEL_REVISION) is a moving name; pin the commit" in out.text()


def test_model_revision_from_value_from_cannot_be_checked() -> None:
    obj = workload(env={"MODEL_ID": "BAAI/bge-reranker-base"})
    obj["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MODEL_REVISION", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "revision"}}}
    )
    assert "cannot be checked: it comes from valueFrom" in check(RULE, obj).text()


# --- not checked -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        workload(env={"MODEL_ID": "sentence-transformers/all-MiniLM-L6-v2", "MODEL_DIR": "/models/minilm"}),
        workload(args=["--model", MODEL], env={"MODEL_ID": MODEL, "MODEL_DIR": "/models/llama"}),
        workload(args=["--model", "/models/llama"]),
        workload(env={"MODEL_ID": "/models/minilm"}),
    ],
    ids=["server-model-dir", "vllm-model-dir", "vllm-local-path", "server-local-path"],
)
def test_weights_in_the_image_or_on_disk_need_no_revision(obj: dict[str, Any]) -> None:
    assert not check(RULE, obj)


def test_an_empty_model_dir_does_not_exempt() -> None:
    assert check(RULE, workload(env={"MODEL_ID": "BAAI/bge-reranker-base", "MODEL_DIR": ""}))


@pytest.mark.parametrize(
    "obj",
    [
        deployment(),
        workload(args=["--port", "8000"], env={"PORT": "8000", "MODEL_NAME": "x"}),
        workload(command=["python", "-m", "http.server"]),
    ],
    ids=["plain", "other-env", "other-command"],
)
def test_containers_that_load_no_model_are_not_checked(obj: dict[str, Any]) -> None:
    assert not check(RULE, obj)


def test_only_the_container_loading_a_model_is_named() -> None:
    obj = vllm()
    obj["spec"]["template"]["spec"]["containers"].append(container("metrics", cpu="100m", memory="128Mi"))
    obj["spec"]["template"]["spec"]["initContainers"] = [
        dict(container("fetch", cpu="100m", memory="128Mi"), env=[{"name": "MODEL_ID", "value": MODEL}])
    ]
    out = check(RULE, obj)
    assert len(out.violations) == 2
    assert 'init container "fetch"' in out.violations[0] and 'container "llm"' in out.violations[1]


def test_unknown_revision_is_undecided() -> None:
    out = check(RULE, vllm("--revision", UNKNOWN_STRING_VALUE))
    assert not out.violations
    assert out.undecided == "cannot decide: spec.template.spec.containers[0].args[5] is unknown during preview"


def test_exemptions_apply() -> None:
    exemption = {"namespace": "models", "name": "llm", "kind": "Deployment", "reason": "research model"}
    assert not check(RULE, vllm(), {"exemptions": [exemption]})
    [use] = state.drain_exemptions()
    assert use.policy == RULE


# --- levels ----------------------------------------------------------------------------


def _record(obj: dict[str, Any]) -> ResourceRecord:
    return ResourceRecord(TYPES["Deployment"], "llm", urn_of(TYPES["Deployment"], "llm"), obj)


def test_default_level_is_advisory_with_medium_severity() -> None:
    policy = POLICIES[RULE]
    assert policy.enforcement_level == EnforcementLevel.ADVISORY
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", all_policies(), EnforcementLevel.ADVISORY)
    [info] = [p for p in servicer.GetAnalyzerInfo(None, None).policies if p.name == RULE]
    assert info.enforcementLevel == proto.ADVISORY
    assert info.severity == proto.POLICY_SEVERITY_MEDIUM
    found = [v for v in evaluate([_record(vllm())]) if v.policy_name == RULE]
    assert found and not any(v.blocking for v in found)


@pytest.mark.parametrize("stack", ["prod", "e2e"])
def test_prod_config_makes_it_mandatory(stack: str) -> None:
    config = json.loads((CONFIG_DIR / f"{stack}.json").read_text())
    assert config[RULE] == {"enforcementLevel": "mandatory"}
    [v] = [v for v in evaluate([_record(vllm())], config) if v.policy_name == RULE]
    assert v.enforcement_level == EnforcementLevel.MANDATORY and v.blocking
    assert not [v for v in evaluate([_record(vllm("--revision", SHA))], config) if v.policy_name == RULE]
