"""The pack as the engine loads it: __main__.py, PulumiPolicy.yaml, requirements, the rule reference,
the shipped config files, and evaluate() against pulumi-policy's own gRPC servicer."""

from __future__ import annotations

import copy
import json
import runpy
from pathlib import Path
from typing import Any

import jsonschema  # requirements-dev.txt: a dev requirement, so this module never skips (nor may it in CI)
import pytest
import yaml
from google.protobuf import json_format, struct_pb2
from model_serving_policy import PACK_NAME, ResourceRecord, Violation, all_policies, evaluate, state
from model_serving_policy.settings import resolve
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import (
    TYPES,
    container,
    cpu_metric,
    deployment,
    device_plugin,
    hpa,
    node_pool,
    pdb,
    service,
    urn_of,
)

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
CONFIGS = sorted((POLICY_DIR / "config").glob("*.json"))

EXPECTED_RULES = {
    "container-resource-requests",
    "container-resource-limits",
    "container-limit-request-ratio",
    "container-resource-maximums",
    "gpu-resources",
    "gpu-scheduling",
    "gpu-probes",
    "gpu-shared-memory",
    "gpu-budget",
    "container-images",
    "model-revision",
    "pod-security",
    "hpa-replica-bounds",
    "hpa-target",
    "hpa-gpu-scaling-signal",
    "workload-availability",
    "service-exposure",
    "service-selector",
    "no-default-namespace",
    "scraped-metrics",
    "scraped-metrics-unmonitored",
    "route-backends",
    "inference-pool-selector",
    "inference-pool-metrics",
    "pod-priority",
    "exempted-resources",
}


def test_main_builds_the_pack_with_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}

    def fake_init(self: PolicyPack, name: str, policies: list[Any], *args: Any, **kwargs: Any) -> None:
        captured.update(name=name, policies=policies, args=args, kwargs=kwargs)

    monkeypatch.setattr(PolicyPack, "__init__", fake_init)
    runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    assert captured["name"] == PACK_NAME == "model-serving-policies"
    names = [p.name for p in captured["policies"]]
    assert set(names) == EXPECTED_RULES and len(names) == len(EXPECTED_RULES)
    assert names[-1] == "exempted-resources"


def test_pack_metadata_serves_to_the_engine() -> None:
    """GetAnalyzerInfo as the CLI calls it: every schema must survive protobuf."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", all_policies(), EnforcementLevel.ADVISORY)
    info = servicer.GetAnalyzerInfo(None, None)
    by_name = {p.name: p for p in info.policies}
    assert set(by_name) == EXPECTED_RULES
    assert by_name["gpu-probes"].enforcementLevel == proto.MANDATORY
    assert by_name["hpa-gpu-scaling-signal"].enforcementLevel == proto.ADVISORY
    schema = json_format.MessageToDict(by_name["gpu-probes"].configSchema)
    assert schema["properties"]["modelLoadSeconds"]["default"] == 600


def test_pulumi_policy_yaml_and_requirements() -> None:
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"] == "python" and meta["description"]
    reqs = (POLICY_DIR / "requirements.txt").read_text().split()
    assert reqs == ["pulumi==3.272.0", "pulumi-policy==1.21.0", "kubernetes==37.0.2"]


# --- shipped config files --------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_is_valid_for_the_cli_and_the_rules(path: Path) -> None:
    config = json.loads(path.read_text())
    policies = {p.name: p for p in all_policies()}
    for name, entry in config.items():
        assert name in policies, f"{path.name}: unknown policy {name}"
        schema = policies[name].config_schema
        assert schema is not None
        props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        # What the CLI validates (ReconcilePolicyPackConfig / gojsonschema) ...
        jsonschema.validate(props, {"type": "object", "properties": schema.properties})
        # ... and what the rule itself accepts.
        resolve(name, schema, props)


def test_stack_configs_differ_where_intended() -> None:
    configs = {p.stem: json.loads(p.read_text()) for p in CONFIGS}
    assert set(configs) == {"local", "render", "dev", "prod", "e2e"}
    assert configs["prod"]["container-images"]["requireDigest"] is True
    assert configs["e2e"] == configs["prod"], "the end-to-end stack is checked as production is"
    assert configs["render"] == configs["local"], "the render stack renders what the local stack deploys"
    assert configs["dev"]["container-images"]["requireDigest"] is False
    assert configs["local"]["container-images"]["requireDigest"] is False
    for stack, config in configs.items():
        # Only the stacks whose GPU pool registers the node agents exempt them (tests/unit/test_policy_settings.py).
        agents = stack in ("prod", "e2e")
        for rule in ("pod-security", "gpu-scheduling"):
            exempt = [(ex["kind"], ex["namespace"], ex["name"]) for ex in config.get(rule, {}).get("exemptions", [])]
            assert exempt == (
                [
                    ("DaemonSet", "nvidia-device-plugin", "nvidia-device-plugin"),
                    ("DaemonSet", "nvidia-dcgm-exporter", "dcgm-exporter"),
                ]
                if agents
                else []
            ), stack
    assert "gpu-budget" not in configs["local"], "the local stack has no GPUs to budget"


# The stacks whose GPU pool runs the device plugin (the others' settings exempt nothing).
PLUGIN_CONFIGS = [p for p in CONFIGS if "pod-security" in json.loads(p.read_text())]


@pytest.mark.parametrize("path", PLUGIN_CONFIGS, ids=lambda p: p.name)
def test_device_plugin_passes_under_each_stack_config(path: Path) -> None:
    dp = device_plugin()
    dp["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    record = ResourceRecord(
        TYPES["DaemonSet"], "nvidia-device-plugin", urn_of(TYPES["DaemonSet"], "nvidia-device-plugin"), dp
    )
    found = evaluate([record], json.loads(path.read_text()))
    blocking = [str(v) for v in found if v.blocking and v.policy_name != "container-images"]
    assert blocking == []


# --- evaluate() against the real servicer ----------------------------------------------


def _sample() -> list[ResourceRecord]:
    """Good and bad objects, unknowns included, touching every rule."""
    sidecar = container("metrics", cpu="100m", memory="128Mi", image="registry.example.com/metrics:latest")
    del sidecar["resources"]["requests"]
    bad = deployment("bad", namespace=None, containers=[container(gpus=2), sidecar], replicas=2)
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    unknown_image = deployment("pending", containers=[container(gpus=1, image=UNKNOWN_STRING_VALUE)])
    objs: list[tuple[str, dict[str, Any]]] = [
        ("pool", node_pool(4)),
        ("llm", deployment(gpus=2, max_surge=1)),
        ("llm-hpa", hpa(max_replicas=2, metrics=[cpu_metric()])),
        ("llm-pdb", pdb()),
        ("llm-svc", service(type_="LoadBalancer", source_ranges=["0.0.0.0/0"])),
        ("bad", bad),
        ("pending", unknown_image),
        ("orphan", service("orphan", selector={"app": "nothing"})),
        ("nvidia-device-plugin", device_plugin()),
    ]
    return [ResourceRecord(TYPES[o["kind"]], n, urn_of(TYPES[o["kind"]], n), o) for n, o in objs]


_PROTO_LEVEL = {
    EnforcementLevel.ADVISORY: proto.ADVISORY,
    EnforcementLevel.MANDATORY: proto.MANDATORY,
    EnforcementLevel.REMEDIATE: proto.REMEDIATE,
    EnforcementLevel.DISABLED: proto.DISABLED,
}
_FROM_PROTO = {v: k for k, v in _PROTO_LEVEL.items()}


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(copy.deepcopy(value))
    return s


def _via_servicer(records: list[ResourceRecord], config: dict[str, Any]) -> list[tuple[str, str, str | None, Any]]:
    """The pack driven through pulumi-policy's gRPC servicer, as the CLI drives it."""
    state.reset()
    policies = all_policies()
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", policies, EnforcementLevel.ADVISORY)
    request = proto.ConfigureAnalyzerRequest()
    for p in policies:  # the CLI sends every policy: its level and its (merged) properties
        entry = config.get(p.name, {})
        level = EnforcementLevel(
            entry.get("enforcementLevel", (p.enforcement_level or EnforcementLevel.ADVISORY).value)
        )
        props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        request.policyConfig[p.name].CopyFrom(
            proto.PolicyConfig(enforcementLevel=_PROTO_LEVEL[level], properties=_struct(props))
        )
    servicer.Configure(request, None)
    descriptions = {p.name: p.description for p in policies}
    out: list[tuple[str, str, str | None, Any]] = []

    def collect(diags: Any, urn: str | None) -> None:
        for d in diags:
            msg = d.message.removeprefix(descriptions[d.policyName] + "\n")
            out.append((d.policyName, msg, d.urn or urn or None, _FROM_PROTO[d.enforcementLevel]))

    stack_resources = []
    for r in records:
        props = dict(r.props)
        req = proto.AnalyzeRequest(type=r.resource_type, properties=_struct(props), urn=r.urn, name=r.name)
        remediated = servicer.Remediate(req, None)
        for rem in remediated.remediations:
            if rem.properties:
                props = json_format.MessageToDict(rem.properties)
        req = proto.AnalyzeRequest(type=r.resource_type, properties=_struct(props), urn=r.urn, name=r.name)
        collect(servicer.Analyze(req, None).diagnostics, r.urn)
        stack_resources.append(
            proto.AnalyzerResource(type=r.resource_type, properties=_struct(props), urn=r.urn, name=r.name)
        )
    collect(servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=stack_resources), None).diagnostics, None)
    return out


def _key(v: Violation) -> tuple[str, str, str | None, Any]:
    return (v.policy_name, v.message, v.urn, v.enforcement_level)


@pytest.mark.parametrize(
    "config",
    [
        json.loads((POLICY_DIR / "config" / "prod.json").read_text()),
        {
            "gpu-resources": {"enforcementLevel": "remediate"},
            "container-resource-requests": {"enforcementLevel": "remediate"},
        },
        {"gpu-scheduling": {"enforcementLevel": "disabled"}, "service-exposure": {"enforcementLevel": "advisory"}},
    ],
    ids=["prod", "remediate", "levels"],
)
def test_evaluate_matches_the_engine_servicer(config: dict[str, Any]) -> None:
    records = _sample()
    engine = _via_servicer(records, config)
    ours = [_key(v) for v in evaluate(records, config)]
    assert sorted(ours, key=repr) == sorted(engine, key=repr)
    assert any(level == EnforcementLevel.MANDATORY for *_, level in ours)
    assert any(msg.startswith("can't run policy") for _, msg, *_ in ours)


def test_evaluate_reports_levels_and_blocking() -> None:
    found = evaluate(_sample(), {"all": "advisory", "pod-security": "mandatory"})
    assert {v.policy_name for v in found if v.blocking} == {"pod-security"}
    undecided = [v for v in found if v.message.startswith("can't run policy 'container-images'")]
    assert undecided and undecided[0].message.endswith(
        "cannot decide: spec.template.spec.containers[0].image is unknown during preview"
    )
    assert not evaluate([], None)


def test_evaluate_accepts_tuples_and_mappings() -> None:
    obj = deployment(namespace="default")
    as_tuple = (TYPES["Deployment"], "llm", "urn:1", obj)
    as_mapping = {"type": TYPES["Deployment"], "name": "llm", "urn": "urn:1", "props": obj}
    assert evaluate([as_tuple]) == evaluate([as_mapping])
    with pytest.raises(ValueError, match="unknown policies"):
        evaluate([as_tuple], {"no-such-rule": "advisory"})


def test_stack_policies_are_stack_policies() -> None:
    kinds = {p.name: isinstance(p, StackValidationPolicy) for p in all_policies()}
    assert {n for n, is_stack in kinds.items() if is_stack} == {
        "gpu-budget",
        "hpa-target",
        "hpa-gpu-scaling-signal",
        "scraped-metrics",
        "scraped-metrics-unmonitored",
        "workload-availability",
        "service-selector",
        "route-backends",
        "inference-pool-selector",
        "inference-pool-metrics",
        "exempted-resources",
    }
    assert all(isinstance(p, ResourceValidationPolicy) for p in all_policies() if not kinds[p.name])
