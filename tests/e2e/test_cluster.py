"""`make cluster-up` twice is harmless and `make cluster-down` leaves no process or listener behind.

A second cluster, on its own ports, in a copy of the project (its own .cluster/), so the one the other e2e
tests use keeps running. It has fake nodes only (CLUSTER_REAL_NODE=0): one machine holds one real node.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Kube
from tests.project import copy_project

PORT = 17443
PORTS = range(PORT, PORT + 6)  # apiserver, etcd client and peer, controller-manager, scheduler, kwok


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pids(root: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (root / ".cluster" / "pids").glob("*.pid")}


def _cluster(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / "local-cluster"), command],
        env={**os.environ, "CLUSTER_PORT": str(PORT), "CLUSTER_REAL_NODE": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cluster_up_twice_then_down_leaves_nothing(kube: Kube, tmp_path: Path) -> None:
    assert not any(_listening(p) for p in PORTS), f"ports {PORTS} are taken before the test"
    root = copy_project(tmp_path).path
    try:
        first = _cluster(root, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        pids = _pids(root)
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "lb-standin",
        }
        second = _cluster(root, "up")
        assert second.returncode == 0 and "already running" in second.stdout, second.stdout + second.stderr
        assert _pids(root) == pids, "a second up started new processes"
        status = _cluster(root, "status")
        assert status.returncode == 0, status.stdout
        assert f"127.0.0.1:{PORT}" in status.stdout
        nodes = Kube(root / ".cluster" / "kubeconfig").items("nodes")
        assert any("nvidia.com/gpu" in n["status"]["allocatable"] for n in nodes)
        for port in PORTS:
            listeners = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
            for line in listeners.splitlines():
                assert line.split()[3].startswith("127.0.0.1:"), f"listener off loopback: {line}"
    finally:
        down = _cluster(root, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _exe(pid) != name, f"{name} (pid {pid}) still runs"
    assert not any(_listening(p) for p in PORTS), "a listener is left after down"
    assert _cluster(root, "status").returncode == 1


def _exe(pid: int) -> str:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return ""


@pytest.mark.parametrize("command", ["bogus", ""])
def test_cluster_script_rejects_unknown_commands(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [str(Path(__file__).resolve().parents[2] / "scripts" / "local-cluster"), command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Usage" in result.stderr
