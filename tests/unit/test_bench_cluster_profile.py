"""The cluster benchmark's profile of a pulumi run, from a small synthetic event log (bench/cluster.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import cluster

PREFIX = "urn:pulumi:bench::model-serving::"
STACK = PREFIX + "pulumi:pulumi:Stack::model-serving-bench"
PROVIDER = PREFIX + "pulumi:providers:kubernetes::kubernetes"
MODEL = PREFIX + "model-serving:index:ModelService::m00"


def urn(type_token: str, name: str) -> str:
    return f"{PREFIX}model-serving:index:ModelService${type_token}::{name}"


NS = urn("kubernetes:core/v1:Namespace", "bench-m00")
SA = urn("kubernetes:core/v1:ServiceAccount", "m00")
SVC = urn("kubernetes:core/v1:Service", "m00")
DEPLOY = urn("kubernetes:apps/v1:Deployment", "m00")
HPA = urn("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "m00")
TYPES = {
    STACK: "pulumi:pulumi:Stack",
    PROVIDER: "pulumi:providers:kubernetes",
    MODEL: "model-serving:index:ModelService",
    NS: "kubernetes:core/v1:Namespace",
    SA: "kubernetes:core/v1:ServiceAccount",
    SVC: "kubernetes:core/v1:Service",
    DEPLOY: "kubernetes:apps/v1:Deployment",
    HPA: "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
}
CUSTOM = {PROVIDER, NS, SA, SVC, DEPLOY, HPA}
# What the state records (pulumi stack export): the HPA waits for the whole workload.
DEPENDENCIES = {SA: [NS], SVC: [NS], DEPLOY: [SA, NS], HPA: [NS, SA, DEPLOY]}

# (second it arrived, event key, URN); the CLI exits at 14.0 s.
TIMELINE = [
    (2.0, "resourcePreEvent", STACK),
    (2.1, "resourcePreEvent", PROVIDER),
    (2.5, "resOutputsEvent", PROVIDER),
    (2.6, "resourcePreEvent", MODEL),
    (2.8, "resourcePreEvent", NS),
    (3.0, "resOutputsEvent", NS),
    (3.2, "resourcePreEvent", SA),
    (3.3, "resourcePreEvent", SVC),
    (3.4, "resOutputsEvent", SA),
    (4.4, "resourcePreEvent", DEPLOY),  # queued for a second behind other steps
    (5.4, "resOutputsEvent", DEPLOY),
    (5.6, "resourcePreEvent", HPA),
    (5.8, "resOutputsEvent", HPA),
    (13.3, "resOutputsEvent", SVC),  # the Service's await: 10 s after its endpoints settle
    (13.4, "resOutputsEvent", MODEL),
    (13.5, "resOutputsEvent", STACK),
]
SECONDS = 14.0


def event(sequence: int, key: str, resource: str, *, planning: bool = False) -> dict[str, Any]:
    state = {"type": TYPES[resource], "urn": resource, "custom": resource in CUSTOM}
    metadata = {"op": "create", "urn": resource, "type": TYPES[resource], "old": None, "new": state}
    payload: dict[str, Any] = {"metadata": metadata}
    if planning:
        payload["planning"] = True
    return {"sequence": sequence, "timestamp": 1796003700, key: payload}


def log_lines() -> list[tuple[float, str]]:
    """The event log as the bench reads it from the FIFO: a prelude, the resource events, a diagnostic and a
    summary, and a torn line."""
    lines = [(0.9, json.dumps({"sequence": 0, "timestamp": 1796003700, "preludeEvent": {"config": {}}}))]
    for sequence, (at, key, resource) in enumerate(TIMELINE, start=1):
        lines.append((at, json.dumps(event(sequence, key, resource))))
    diagnostic = {"sequence": 99, "timestamp": 1796003713, "diagnosticEvent": {"message": "x", "severity": "info"}}
    lines += [(13.6, json.dumps(diagnostic)), (13.7, '{"sequence": 100, "summ'), (13.8, "")]
    return lines


def events() -> list[cluster.Stamped]:
    return cluster.stamped_events(log_lines())


def test_event_log_lines_parse_and_torn_ones_are_skipped() -> None:
    parsed = events()
    assert len(parsed) == 1 + len(TIMELINE) + 1
    assert parsed[0] == (0.9, {"sequence": 0, "timestamp": 1796003700, "preludeEvent": {"config": {}}})
    assert [at for at, _ in parsed][-2:] == [13.5, 13.6]


def test_kinds_are_the_types_last_part_and_providers_are_named_as_such() -> None:
    assert cluster.kind_of("kubernetes:apps/v1:Deployment") == "Deployment"
    assert cluster.kind_of("kubernetes:networking.k8s.io/v1:NetworkPolicy") == "NetworkPolicy"
    assert cluster.kind_of("pulumi:pulumi:Stack") == "Stack"
    assert cluster.kind_of("pulumi:providers:kubernetes") == "provider:kubernetes"


def test_spans_run_from_pre_event_to_outputs_and_only_objects_are_custom() -> None:
    spans = cluster.resource_spans(events())
    assert set(spans) == set(TYPES)
    assert spans[DEPLOY] == cluster.Span("kubernetes:apps/v1:Deployment", 4.4, 5.4, custom=True)
    assert spans[SVC].seconds == pytest.approx(10.0)
    assert spans[STACK].start == 2.0 and spans[STACK].end == 13.5
    # The provider is a custom resource to the engine but no object of the cluster; components are not custom.
    assert not spans[PROVIDER].custom and not spans[MODEL].custom and not spans[STACK].custom
    assert {urn for urn, span in spans.items() if span.custom} == {NS, SA, SVC, DEPLOY, HPA}


def test_a_previews_planning_events_and_a_failed_step_are_told_apart() -> None:
    stamped = [
        (1.0, event(1, "resourcePreEvent", NS, planning=True)),
        (1.1, event(2, "resOutputsEvent", NS, planning=True)),
        (2.0, event(3, "resourcePreEvent", NS)),
        (2.5, event(4, "resourcePreEvent", SA)),
        (3.0, event(5, "resOpFailedEvent", SA)),
        (3.5, event(6, "resOutputsEvent", NS)),
        (4.0, event(7, "resourcePreEvent", HPA)),  # never finished: no span
    ]
    spans = cluster.resource_spans(stamped)
    assert set(spans) == {NS, SA}
    assert (spans[NS].start, spans[NS].end) == (2.0, 3.5)
    assert (spans[SA].start, spans[SA].end) == (2.5, 3.0)


def test_the_profile_splits_the_run_into_phases_that_add_up() -> None:
    result = cluster.profile(events(), SECONDS, DEPENDENCIES)
    assert result["seconds"] == 14.0
    assert result["phases"] == {
        "startup": 2.0,  # to the stack's pre-event
        "before_objects": 0.8,  # the provider, the component, to the Namespace's step
        "objects": 10.5,  # 2.8 to the Service's end at 13.3
        "after_objects": 0.2,  # the component's and the stack's outputs
        "exit": 0.5,
    }
    assert sum(result["phases"].values()) == pytest.approx(SECONDS)


def test_the_profile_summarises_each_kind_and_how_long_objects_waited_after_their_dependencies() -> None:
    result = cluster.profile(events(), SECONDS, DEPENDENCIES)
    kinds = result["kinds"]
    assert set(kinds) == {
        "Stack",
        "provider:kubernetes",
        "ModelService",
        "Namespace",
        "ServiceAccount",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
    }
    assert kinds["Service"] == {"count": 1, "median": 10.0, "max": 10.0, "waited": {"median": 0.3, "max": 0.3}}
    assert kinds["Deployment"] == {"count": 1, "median": 1.0, "max": 1.0, "waited": {"median": 1.0, "max": 1.0}}
    assert kinds["HorizontalPodAutoscaler"]["waited"] == {"median": 0.2, "max": 0.2}
    assert "waited" not in kinds["Namespace"]  # it waits for nothing
    assert kinds["provider:kubernetes"] == {"count": 1, "median": 0.4, "max": 0.4}
    # The Service runs beside the ServiceAccount, the Deployment and the HPA: two object steps at most.
    assert result["max_in_flight"] == 2


def test_the_critical_path_follows_the_dependency_that_ended_last() -> None:
    path = cluster.profile(events(), SECONDS, DEPENDENCIES)["critical_path"]
    # The Service ends last; it waited only for the Namespace.
    assert [link["kind"] for link in path["links"]] == ["Namespace", "Service"]
    assert path == {
        "head": 2.8,
        "working": 10.2,
        "waiting": 0.3,
        "end": 13.3,
        "links": [
            {"kind": "Namespace", "name": "bench-m00", "start": 2.8, "seconds": 0.2, "waited": None},
            {"kind": "Service", "name": "m00", "start": 3.3, "seconds": 10.0, "waited": 0.3},
        ],
    }


def test_without_the_services_wait_the_critical_path_is_the_workloads_chain() -> None:
    quick = [(at if urn != SVC or key != "resOutputsEvent" else 3.5, key, urn) for at, key, urn in TIMELINE]
    stamped = [(at, event(i, key, urn)) for i, (at, key, urn) in enumerate(sorted(quick))]
    path = cluster.critical_path(cluster.resource_spans(stamped), DEPENDENCIES)
    assert path is not None
    assert [link["kind"] for link in path["links"]] == [
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "HorizontalPodAutoscaler",
    ]
    assert path["working"] == pytest.approx(0.2 + 0.2 + 1.0 + 0.2)
    assert path["waiting"] == pytest.approx(0.2 + 1.0 + 0.2)  # 3.0→3.2, 3.4→4.4, 5.4→5.6
    assert path["head"] == 2.8 and path["end"] == 5.8


def test_a_destroys_critical_path_runs_from_dependents_to_what_they_depended_on() -> None:
    # Deletes: the HPA first, then the Deployment, the ServiceAccount and the Service, the Namespace last.
    deletes = [
        (1.0, "resourcePreEvent", HPA),
        (1.1, "resOutputsEvent", HPA),
        (1.2, "resourcePreEvent", SVC),
        (1.3, "resourcePreEvent", DEPLOY),
        (1.4, "resOutputsEvent", SVC),
        (3.3, "resOutputsEvent", DEPLOY),
        (3.4, "resourcePreEvent", SA),
        (3.5, "resOutputsEvent", SA),
        (3.6, "resourcePreEvent", NS),
        (9.6, "resOutputsEvent", NS),
    ]
    stamped = [(at, event(i, key, urn)) for i, (at, key, urn) in enumerate(deletes)]
    result = cluster.profile(stamped, 10.0, DEPENDENCIES, reverse=True)
    path = result["critical_path"]
    assert [link["kind"] for link in path["links"]] == [
        "HorizontalPodAutoscaler",
        "Deployment",
        "ServiceAccount",
        "Namespace",
    ]
    assert path["working"] == pytest.approx(0.1 + 2.0 + 0.1 + 6.0)
    assert path["waiting"] == pytest.approx(0.2 + 0.1 + 0.1)
    assert result["phases"]["exit"] == pytest.approx(0.4)
    assert all("waited" not in kind for kind in result["kinds"].values())


def test_no_dependencies_no_critical_path_and_no_resources_only_the_seconds() -> None:
    assert cluster.profile(events(), SECONDS)["critical_path"] is None
    assert cluster.profile(events()[:1], 3.0) == {"seconds": 3.0, "events": 1}


def test_dependencies_come_from_the_exported_state() -> None:
    exported = {
        "version": 3,
        "deployment": {
            "resources": [
                {"urn": STACK, "type": "pulumi:pulumi:Stack"},
                {"urn": DEPLOY, "type": TYPES[DEPLOY], "dependencies": [SA, NS]},
                {"urn": NS, "type": TYPES[NS], "dependencies": []},
            ]
        },
    }
    assert cluster.state_dependencies(exported) == {STACK: [], DEPLOY: [SA, NS], NS: []}
    assert cluster.state_dependencies({"version": 3, "deployment": {}}) == {}


def test_the_recorded_profile_is_the_median_runs() -> None:
    runs = [{"seconds": 17.0, "id": "a"}, {"seconds": 15.5, "id": "b"}, {"seconds": 16.0, "id": "c"}]
    assert cluster._median_run(runs)["id"] == "c"
    assert cluster._median_run(runs[:2])["id"] == "b"  # of two, the faster
