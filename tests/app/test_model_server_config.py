"""Settings from the environment and offline model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_server.config import ConfigError, Settings, cgroup_cpu_limit, default_concurrency, resolve_model_dir


def test_defaults_match_the_kubernetes_contract() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port) == ("0.0.0.0", 8000)
    assert s.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert s.drain_seconds == 25.0
    assert s.hf_home == "/cache"
    assert s.hf_hub_cache == "/cache/hub"
    assert s.model_dir is None
    assert not s.debug_allow_delay_header
    assert s.debug_load_delay_seconds == 0


def test_environment_overrides() -> None:
    s = Settings.from_env(
        {"PORT": "9000", "MODEL_ID": "org/m", "MODEL_DIR": "/models/m", "DRAIN_SECONDS": "5", "HF_HOME": "/h"}
    )
    assert (s.port, s.model_id, s.model_dir, s.drain_seconds, s.hf_hub_cache) == (
        9000,
        "org/m",
        "/models/m",
        5.0,
        "/h/hub",
    )
    assert Settings.from_env({"HF_HOME": "/h", "HF_HUB_CACHE": "/elsewhere"}).hf_hub_cache == "/elsewhere"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "http"), ("PORT", "70000"), ("DRAIN_SECONDS", "-1"), ("DRAIN_SECONDS", "nan"), ("MAX_BATCH_INPUTS", "0")],
)
def test_bad_values_are_config_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_token_file_is_read_but_never_shown(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_secret_value\n")
    s = Settings.from_env({"HF_TOKEN_FILE": str(token_file)})
    assert s.hf_token == "hf_secret_value"
    assert "hf_secret_value" not in repr(s)
    assert Settings.from_env({"HF_TOKEN_FILE": str(tmp_path / "absent")}).hf_token is None


def make_snapshot(cache: Path, model_id: str, commit: str, ref: str | None = "main") -> Path:
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def test_resolves_model_id_in_the_hub_cache(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "hub", "org/model", "abc123")
    make_snapshot(tmp_path / "hub", "org/model-other", "def456")
    s = Settings.from_env({"HF_HOME": str(tmp_path), "MODEL_ID": "org/model"})
    assert resolve_model_dir(s) == snap


def test_single_snapshot_without_refs(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "hub", "org/model", "abc123", ref=None)
    assert (
        resolve_model_dir(Settings.from_env({"HF_HUB_CACHE": str(tmp_path / "hub"), "MODEL_ID": "org/model"})) == snap
    )


def test_missing_model_has_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"org/absent.*MODEL_DIR"):
        resolve_model_dir(Settings.from_env({"HF_HOME": str(tmp_path), "MODEL_ID": "org/absent"}))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        resolve_model_dir(Settings.from_env({"MODEL_DIR": str(tmp_path)}))


def test_model_dir_wins_over_the_cache(tmp_path: Path, model_dir: Path) -> None:
    assert resolve_model_dir(Settings.from_env({"MODEL_DIR": str(model_dir), "HF_HOME": str(tmp_path)})) == model_dir


def test_cpu_limit_from_cgroup_v2(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(str(tmp_path)) is None


def test_cpu_limit_from_cgroup_v1(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(str(tmp_path)) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(str(tmp_path)) is None
    assert 1 <= default_concurrency() <= 4


def test_batch_wait() -> None:
    assert Settings.from_env({}).batch_wait_ms == 2.0
    assert Settings.from_env({"BATCH_WAIT_MS": "0"}).batch_wait_ms == 0.0
    assert Settings.from_env({"BATCH_WAIT_MS": "7.5"}).batch_wait_ms == 7.5
    for bad in ("-1", "1001", "soon", "nan"):
        with pytest.raises(ConfigError, match="BATCH_WAIT_MS"):
            Settings.from_env({"BATCH_WAIT_MS": bad})
