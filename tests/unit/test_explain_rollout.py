"""scripts/explain_rollout.py, against a cluster's answers recorded as kubectl would give them: a claim that is not
bound is named with the provisioner's last warning, or with its class when there is none; a bound claim is not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import ROOT, load_script

explain = load_script("explain_rollout", ROOT / "scripts" / "explain_rollout.py")
KUBECTL = ["kubectl"]


def _claim(phase: str, storage_class: str | None = "missing") -> dict[str, Any]:
    return {"spec": {"storageClassName": storage_class}, "status": {"phase": phase}}


def _cluster(monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any], events: dict[str, list[dict[str, Any]]]) -> None:
    def run_json(*args: str) -> Any:
        if args[1:3] == ("get", "pvc"):
            return claims.get(args[5])
        if args[1:3] == ("get", "events"):
            name = args[args.index("--field-selector") + 1].split("involvedObject.name=")[1].split(",")[0]
            assert "involvedObject.kind=PersistentVolumeClaim" in args[args.index("--field-selector") + 1]
            return {"items": events.get(name, [])}
        raise AssertionError(args)

    monkeypatch.setattr(explain, "run_json", run_json)


def test_an_unbound_claim_is_named_with_the_provisioners_last_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {"reason": "ProvisioningFailed", "message": "old", "lastTimestamp": "2026-01-01T00:00:00Z"}
    new = {
        "reason": "ProvisioningFailed",
        "message": 'storageclass.storage.k8s.io "missing" not found',
        "lastTimestamp": "2026-01-01T00:01:00Z",
    }
    _cluster(monkeypatch, {"cache": _claim("Pending"), "bound": _claim("Bound")}, {"cache": [old, new]})
    claims = [{"namespace": "ns", "name": "cache"}, {"namespace": "ns", "name": "bound"}]
    assert explain.unbound_claims(KUBECTL, claims) == [
        '  PersistentVolumeClaim ns/cache: Pending: ProvisioningFailed: storageclass.storage.k8s.io "missing" not found'
    ]


def test_a_claim_without_a_warning_names_its_class_and_a_missing_one_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _cluster(monkeypatch, {"waiting": _claim("Pending", None)}, {})
    claims = [{"namespace": "ns", "name": "waiting"}, {"namespace": "ns", "name": "gone"}]
    assert explain.unbound_claims(KUBECTL, claims) == [
        "  PersistentVolumeClaim ns/waiting: Pending: no volume bound it yet (StorageClass none)",
        "  PersistentVolumeClaim ns/gone: absent: no volume bound it yet (StorageClass none)",
    ]


def test_the_claims_are_read_from_the_stacks_state() -> None:
    state = {
        "deployment": {
            "resources": [
                {"type": explain.CLAIM, "outputs": {"metadata": {"namespace": "ns", "name": "cache"}}},
                {"type": explain.DEPLOYMENT, "outputs": {"metadata": {"namespace": "ns", "name": "model"}}},
                {"type": explain.CLAIM, "outputs": {}},  # not created yet
            ]
        }
    }
    assert explain.in_state(state, explain.CLAIM) == [{"namespace": "ns", "name": "cache"}]
