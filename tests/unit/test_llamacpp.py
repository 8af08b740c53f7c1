"""The llamacpp engine: its declaration, llama-server's flags, CPU sizing from a GGUF, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from components import sizing, specs
from components.config import ENGINES, EXPORTERS, ModelConfig
from components.config.errors import ConfigError
from tests.unit.mocking import DELETE, model, typed


def _gemma(edits: dict[str, object] | None = None) -> ModelConfig:
    return model("local", "gemma", edits)


def test_the_engine_scales_on_its_queue_and_probes_health() -> None:
    engine = ENGINES["llamacpp"]
    assert not engine.uses_gpus and engine.gpus == 0
    assert (engine.liveness, engine.readiness, engine.port) == ("/health", "/health", 8000)
    assert engine.metric == {"type": "pods", "name": "llamacpp:requests_deferred", "targetAverageValue": "2"}
    assert engine.queue_metric == "llamacpp:requests_deferred"
    assert engine.running_metric == "llamacpp:requests_processing"
    exported = set(EXPORTERS["llamacpp"].metrics)
    for metric in (engine.queue_metric, engine.running_metric, engine.tokens_metric):
        assert metric in exported
    assert engine.kv_cache_metric is None and engine.latency_metric is None  # llama-server exports neither


def test_an_autoscaled_model_without_a_metric_scales_on_the_queue() -> None:
    gemma = _gemma({"models[1].autoscaling.metric": DELETE})
    assert gemma.autoscaling is not None
    metric = gemma.autoscaling.metric
    assert (metric.type, metric.name, metric.target_average_value) == ("pods", "llamacpp:requests_deferred", "2")


def test_llama_server_flags_follow_the_config() -> None:
    gemma = _gemma(
        {
            "models[1].llamacpp": {"ctxSize": 1024, "parallel": 4, "modelFile": "q8.gguf", "promptCacheMib": 0},
            "models[1].resources.cpu": "2500m",
            "models[1].args": ["--top-k", "20"],
        }
    )
    args = specs.container_args(gemma)
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--model"] == "/models/gemma-3-270m/q8.gguf"
    assert (flags["--ctx-size"], flags["--parallel"]) == ("4096", "4")  # four slots of 1024 tokens
    assert (flags["--threads"], flags["--threads-batch"]) == ("2", "2")  # the whole CPUs of 2500m
    assert flags["--cache-ram"] == "0"
    assert "--chat-template" not in args  # the GGUF's own
    assert args[-2:] == ["--top-k", "20"]  # extra args last: llama-server takes the last value of a flag


def test_memory_is_sized_from_the_gguf_and_every_slot() -> None:
    small, large = _gemma(), _gemma({"models[1].llamacpp.parallel": 8})
    assert small.resources.memory == "826Mi"
    kv_per_slot = 2 * 18 * 1 * 256 * 2 * 2048  # K and V, f16, 2048 tokens
    assert large.cpu_sizing is not None and large.cpu_sizing.kv_cache_bytes == 8 * kv_per_slot
    assert int(large.resources.memory[:-2]) - int(small.resources.memory[:-2]) == 6 * kv_per_slot // 2**20
    # Given memory wins over sizing; without the GGUF's size the engine-wide default applies.
    assert _gemma({"models[1].resources.memory": "3Gi"}).resources.memory == "3Gi"
    assert _gemma({"models[1].llamacpp.ggufBytes": DELETE}).resources.memory == "16Gi"


def test_threads_are_the_whole_cpus_of_the_limit() -> None:
    assert [sizing.llamacpp_threads(c) for c in ("250m", "750m", "1", "1500m", "2", "16")] == [1, 1, 1, 1, 2, 16]


def test_sizing_refuses_what_is_not_a_count() -> None:
    with pytest.raises(sizing.SizingError, match="parallel"):
        sizing.size_llamacpp(1, 1, 1, 1, 1, 0)


def _tiny_gguf(path: Path) -> None:
    """A GGUF with Gemma 3's metadata keys and two small tensors (GGUFWriter, the reader's own package)."""
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_block_count(3)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_key_length(32)
    writer.add_context_length(8192)
    writer.add_tensor("token_embd.weight", np.zeros((10, 64), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_is_read_for_its_shape_and_size(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    _tiny_gguf(path)
    facts = sizing.read_gguf(str(path))
    assert (facts.architecture, facts.layers, facts.heads, facts.kv_heads, facts.head_dim) == ("gemma3", 3, 4, 2, 32)
    assert (facts.context_length, facts.params, facts.gguf_bytes) == (8192, 10 * 64 + 64, path.stat().st_size)


def test_the_cli_sizes_a_gguf_and_prints_the_keys_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.gguf"
    _tiny_gguf(path)
    assert sizing.main(["--gguf", str(path), "--ctx-size", "1024", "--parallel", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kv_cache_bytes"] == 2 * 3 * 2 * 32 * 2 * 1024 * 2
    assert out["memory_bytes"] % 2**20 == 0 and out["memory_bytes"] >= out["gguf_bytes"] + out["kv_cache_bytes"]
    assert sizing.main(["--gguf", str(path)]) == 0
    text = capsys.readouterr().out
    assert "kvHeads: 2, headDim: 32" in text and f"ggufBytes: {path.stat().st_size}" in text
    assert sizing.main(["--gguf", str(tmp_path / "missing.gguf")]) == 2


def test_a_config_error_names_every_llamacpp_mistake_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        typed("local", {"models[1].modelDir": DELETE, "models[0].llamacpp": {"ctxSize": 512}})
    message = str(error.value)
    assert "models[1].modelDir" in message and "models[0].llamacpp" in message
