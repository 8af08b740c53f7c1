"""Tests for components.sizing: GPU memory sizing and tensor-parallel choice."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.sizing import (
    DTYPE_BYTES,
    GiB,
    KiB,
    ModelArchitecture,
    SizingError,
    SizingRequest,
    SizingResult,
    main,
    min_gpus_for_weights,
    parse_memory,
    size_model,
    valid_tensor_parallel_sizes,
)

REPO = Path(__file__).resolve().parents[2]

# Published architectures. Layer and head counts are from each model's
# config.json on the Hugging Face hub (num_hidden_layers, num_attention_heads,
# num_key_value_heads; head_dim = hidden_size / num_attention_heads);
# parameter counts are the ones shown on the model cards.

# meta-llama/Llama-3.1-8B config.json: 32 layers, 32 heads, 8 KV heads,
# hidden_size 4096; model card: 8.03B parameters. Also "The Llama 3 Herd of
# Models" (arXiv:2407.21783), Table 3.
LLAMA_31_8B = ModelArchitecture(params=8.03e9, layers=32, heads=32, kv_heads=8, head_dim=128)
# meta-llama/Llama-3.1-70B config.json: 80 layers, 64 heads, 8 KV heads,
# hidden_size 8192; model card: 70.6B parameters. arXiv:2407.21783, Table 3.
LLAMA_31_70B = ModelArchitecture(params=70.6e9, layers=80, heads=64, kv_heads=8, head_dim=128)
# meta-llama/Llama-3.1-405B config.json: 126 layers, 128 heads, 8 KV heads,
# hidden_size 16384; 405B parameters. arXiv:2407.21783, Table 3. Meta ships
# an FP8 variant (Llama-3.1-405B-Instruct-FP8) for a single 8-GPU node.
LLAMA_31_405B = ModelArchitecture(params=405e9, layers=126, heads=128, kv_heads=8, head_dim=128)
# Qwen/Qwen2.5-7B config.json: 28 layers, 28 heads, 4 KV heads,
# hidden_size 3584; model card: 7.61B parameters. Qwen2.5 Technical Report
# (arXiv:2412.15115), Table 1.
QWEN_25_7B = ModelArchitecture(params=7.61e9, layers=28, heads=28, kv_heads=4, head_dim=128)
# Qwen/Qwen2.5-1.5B config.json: 28 layers, 12 heads, 2 KV heads,
# hidden_size 1536; model card: 1.54B parameters.
QWEN_25_1_5B = ModelArchitecture(params=1.54e9, layers=28, heads=12, kv_heads=2, head_dim=128)
# mistralai/Mixtral-8x7B-v0.1: "Mixtral of Experts" (arXiv:2401.04088),
# Table 1: 32 layers, 32 heads, 8 KV heads, head_dim 128; 46.7B parameters
# in total (all experts stay resident even though 2 of 8 run per token).
MIXTRAL_8X7B = ModelArchitecture(params=46.7e9, layers=32, heads=32, kv_heads=8, head_dim=128)

FAST = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------
# Published architectures
# --------------------------------------------------------------------------


def test_dtype_bytes() -> None:
    assert dict(DTYPE_BYTES) == {
        "fp32": 4,
        "bf16": 2,
        "fp16": 2,
        "fp8": 1,
        "int8": 1,
        "int4": 0.5,
    }


def test_llama_31_8b_kv_cache_and_weights() -> None:
    result = size_model(SizingRequest(LLAMA_31_8B, max_model_len=8192, max_num_seqs=16))
    # 2 (K and V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes.
    assert result.kv_cache_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 128 * KiB
    assert result.kv_cache_bytes == 128 * KiB * 8192 * 16 == 16 * GiB
    assert result.weights_bytes == 16_060_000_000  # about 16.1 GB
    assert result.fits
    assert result.reason == ""
    assert result.tensor_parallel_size == result.gpus_per_replica == 1
    assert result.usable_bytes_per_gpu == 72 * GiB
    assert result.per_gpu_bytes == result.total_bytes
    assert result.total_bytes == (result.weights_bytes + result.kv_cache_bytes + result.overhead_bytes)


def test_llama_31_70b_does_not_fit_on_one_gpu() -> None:
    result = size_model(SizingRequest(LLAMA_31_70B, max_model_len=8192, gpus=1))
    assert result.weights_bytes == 141_200_000_000
    assert not result.fits
    assert result.tensor_parallel_size == 1
    assert result.per_gpu_bytes > result.usable_bytes_per_gpu
    assert "gpus=1" in result.reason
    assert "131.50 GiB" in result.reason  # its weights
    assert "72.00 GiB usable" in result.reason
    assert "at least 2 GPUs" in result.reason


def test_llama_31_70b_chooses_tp4_at_moderate_context() -> None:
    request = SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=4)
    result = size_model(request)
    assert result.fits
    assert result.tensor_parallel_size == 4
    assert result.gpus_per_replica == 4
    assert result.per_gpu_bytes <= result.usable_bytes_per_gpu
    assert result.shm_bytes > size_model(SizingRequest(LLAMA_31_8B)).shm_bytes
    # The weights alone would squeeze onto two GPUs, but not with the cache.
    assert min_gpus_for_weights(request) == 2
    two = size_model(replace(request, gpus=2))
    assert not two.fits
    assert "KV cache" in two.reason


def test_qwen_25_7b_gqa_needs_less_kv_cache_than_llama() -> None:
    qwen = size_model(SizingRequest(QWEN_25_7B))
    llama = size_model(SizingRequest(LLAMA_31_8B))
    # 2 x 28 layers x 4 KV heads x 128 head_dim x 2 bytes.
    assert qwen.kv_cache_bytes_per_token == 57344
    assert qwen.kv_cache_bytes_per_token < llama.kv_cache_bytes_per_token / 2


def test_mixtral_keeps_every_expert_resident() -> None:
    result = size_model(SizingRequest(MIXTRAL_8X7B, max_model_len=32768))
    assert result.kv_cache_bytes_per_token == 128 * KiB  # Llama-like attention
    assert result.weights_bytes == 93_400_000_000
    assert result.tensor_parallel_size == 2
    assert result.fits


def test_llama_31_405b_needs_fp8_on_one_node() -> None:
    bf16 = size_model(SizingRequest(LLAMA_31_405B, max_model_len=8192))
    assert not bf16.fits
    assert bf16.tensor_parallel_size == 8
    assert "max_gpus=8" in bf16.reason
    fp8 = size_model(SizingRequest(LLAMA_31_405B, dtype="fp8", max_model_len=8192))
    assert fp8.fits
    assert fp8.tensor_parallel_size == 8
    assert fp8.kv_cache_bytes_per_token == 2 * 126 * 8 * 128


# --------------------------------------------------------------------------
# Tensor-parallel choice
# --------------------------------------------------------------------------


def test_qwen_tensor_parallel_sizes_are_limited_by_28_heads() -> None:
    assert valid_tensor_parallel_sizes(QWEN_25_7B, 64) == [1, 2, 4]
    assert valid_tensor_parallel_sizes(LLAMA_31_70B, 8) == [1, 2, 4, 8]


def test_qwen_needing_more_than_four_gpus_does_not_fit() -> None:
    result = size_model(SizingRequest(QWEN_25_7B, max_model_len=32768, max_num_seqs=256))
    assert not result.fits
    assert result.tensor_parallel_size == 4
    assert "8 does not divide heads=28" in result.reason
    assert "valid for heads=28, kv_heads=4: 1, 2, 4" in result.reason
    assert "GiB" in result.reason


def test_explicit_gpus_must_be_a_valid_tensor_parallel_size() -> None:
    with pytest.raises(SizingError, match=r"gpus .*got 8; valid: 1, 2, 4") as info:
        size_model(SizingRequest(QWEN_25_7B, gpus=8))
    assert info.value.field == "gpus"
    with pytest.raises(ValueError, match=r"^gpus must be a valid tensor-parallel"):
        size_model(SizingRequest(LLAMA_31_8B, gpus=3))
    with pytest.raises(ValueError, match=r"^gpus"):
        min_gpus_for_weights(SizingRequest(LLAMA_31_8B, gpus=3))


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    one = size_model(SizingRequest(QWEN_25_1_5B, gpus=1, max_model_len=1024))
    four = size_model(SizingRequest(QWEN_25_1_5B, gpus=4, max_model_len=1024))
    assert four.kv_cache_bytes_per_token == one.kv_cache_bytes_per_token
    # 2 KV heads over 4 GPUs: each GPU keeps one head, so the cache doubles.
    assert four.kv_cache_bytes == 2 * one.kv_cache_bytes


def test_explicit_gpus_are_checked_not_chosen() -> None:
    result = size_model(SizingRequest(LLAMA_31_8B, gpus=4, max_gpus=1))
    assert result.fits
    assert result.tensor_parallel_size == 4


def test_min_gpus_for_weights() -> None:
    assert min_gpus_for_weights(SizingRequest(LLAMA_31_8B)) == 1
    assert min_gpus_for_weights(SizingRequest(LLAMA_31_405B)) == 16
    small = SizingRequest(LLAMA_31_405B, gpu_memory_bytes=4 * GiB)
    with pytest.raises(SizingError, match="gpu_memory_bytes") as info:
        min_gpus_for_weights(small)
    assert info.value.field == "gpu_memory_bytes"


# --------------------------------------------------------------------------
# Dtypes, rounding, validation, parsing, JSON
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "kv_cache_dtype", "expected_kv_dtype"),
    [
        ("fp32", None, "fp32"),
        ("bf16", None, "bf16"),
        ("fp8", None, "fp8"),
        ("int8", None, "bf16"),
        ("int4", None, "bf16"),
        ("int4", "fp8", "fp8"),
        ("bfloat16", "float16", "fp16"),
    ],
)
def test_kv_cache_dtype(dtype: str, kv_cache_dtype: str | None, expected_kv_dtype: str) -> None:
    request = SizingRequest(LLAMA_31_8B, dtype=dtype, kv_cache_dtype=kv_cache_dtype)
    assert request.effective_kv_cache_dtype == expected_kv_dtype
    result = size_model(request)
    expected = 2 * 32 * 8 * 128 * DTYPE_BYTES[expected_kv_dtype]
    assert result.kv_cache_bytes_per_token == expected
    assert result.weights_bytes == pytest.approx(8.03e9 * DTYPE_BYTES[request.weight_dtype], abs=1)


def test_sequences_are_rounded_up_to_kv_blocks() -> None:
    result = size_model(SizingRequest(LLAMA_31_8B, max_model_len=1))
    assert result.kv_cache_bytes == 16 * 128 * KiB


UTIL = r"gpu_memory_utilization must be in \(0, 1\]"


@pytest.mark.parametrize(
    ("arch_kwargs", "request_kwargs", "field", "message"),
    [
        ({"params": 0}, {}, "params", "params must be positive"),
        ({"params": float("nan")}, {}, "params", "params must be positive"),
        ({"layers": 0}, {}, "layers", "layers must be positive"),
        ({"heads": -1}, {}, "heads", "heads must be positive"),
        ({"head_dim": 1.5}, {}, "head_dim", "head_dim must be an integer"),
        ({"kv_heads": 5}, {}, "kv_heads", r"kv_heads must divide heads \(got 32 % 5\)"),
        ({}, {"dtype": "fp7"}, "dtype", "dtype must be one of"),
        ({}, {"kv_cache_dtype": "q3"}, "kv_cache_dtype", "kv_cache_dtype must be"),
        ({}, {"max_model_len": 0}, "max_model_len", "max_model_len must be positive"),
        ({}, {"max_num_seqs": -2}, "max_num_seqs", "max_num_seqs"),
        ({}, {"gpu_memory_bytes": 0}, "gpu_memory_bytes", "gpu_memory_bytes"),
        ({}, {"gpu_memory_utilization": 0.0}, "gpu_memory_utilization", UTIL),
        ({}, {"gpu_memory_utilization": 1.01}, "gpu_memory_utilization", UTIL),
        ({}, {"gpus": 0}, "gpus", "gpus must be positive"),
        ({}, {"max_gpus": 0}, "max_gpus", "max_gpus must be positive"),
    ],
)
def test_invalid_inputs_name_the_field(
    arch_kwargs: dict[str, object],
    request_kwargs: dict[str, object],
    field: str,
    message: str,
) -> None:
    arch_values: dict[str, object] = {
        "params": 8.03e9,
        "layers": 32,
        "heads": 32,
        "kv_heads": 8,
        "head_dim": 128,
    }
    arch_values.update(arch_kwargs)
    architecture = ModelArchitecture(**arch_values)  # type: ignore[arg-type]
    request = SizingRequest(architecture, **request_kwargs)  # type: ignore[arg-type]
    # Construction does not check; sizing does, with the field name first.
    with pytest.raises(ValueError, match=f"^{message}") as info:
        size_model(request)
    assert isinstance(info.value, SizingError)
    assert info.value.field == field


def test_utilization_of_one_is_allowed() -> None:
    request = SizingRequest(LLAMA_31_8B, gpu_memory_utilization=1.0)
    assert size_model(request).usable_bytes_per_gpu == 80 * GiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80Gi", 80 * GiB),
        ("80GiB", 80 * GiB),
        ("80gib", 80 * GiB),
        ("81920Mi", 80 * GiB),
        ("80G", 80 * 10**9),
        ("80GB", 80 * 10**9),
        ("1.5Ti", 1536 * GiB),
        ("24 Gi", 24 * GiB),
        ("85899345920", 80 * GiB),
        ("4096B", 4096),
        ("1e3", 1000),
        ("0.5Ki", 512),
    ],
)
def test_parse_memory(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text", ["", "Gi", "80X", "-1Gi", "0", "0.0Gi", "80 G i", "eighty", "1e999999999Ei", "1e99999999999999999999"]
)
def test_parse_memory_rejects_bad_values(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("+", r"\+")):
        parse_memory(text)


def test_to_json_is_serialisable_and_complete() -> None:
    result = size_model(SizingRequest(LLAMA_31_8B))
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    for key in (
        "weights_bytes",
        "kv_cache_bytes_per_token",
        "kv_cache_bytes",
        "overhead_bytes",
        "total_bytes",
        "tensor_parallel_size",
        "gpus_per_replica",
        "fits",
        "reason",
        "per_gpu_bytes",
        "usable_bytes_per_gpu",
        "shm_bytes",
        "host_memory_bytes",
    ):
        assert key in data
    assert SizingResult(**data) == result  # type: ignore[arg-type]


def test_pod_recommendations() -> None:
    small = size_model(SizingRequest(LLAMA_31_8B))
    assert small.shm_bytes == 1 * GiB
    assert small.host_memory_bytes % GiB == 0
    assert small.host_memory_bytes >= small.weights_bytes + small.shm_bytes
    big = size_model(SizingRequest(LLAMA_31_70B, gpus=4))
    assert big.shm_bytes == 4 * GiB
    assert big.host_memory_bytes > small.host_memory_bytes


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


@st.composite
def architectures(draw: st.DrawFn) -> ModelArchitecture:
    kv_heads = draw(st.sampled_from([1, 2, 4, 5, 8, 16]))
    group = draw(st.integers(1, 8))
    return ModelArchitecture(
        params=draw(st.floats(1e8, 5e11)),
        layers=draw(st.integers(1, 128)),
        heads=kv_heads * group,
        kv_heads=kv_heads,
        head_dim=draw(st.sampled_from([64, 80, 96, 128, 256])),
    )


@st.composite
def requests(draw: st.DrawFn) -> SizingRequest:
    return SizingRequest(
        architecture=draw(architectures()),
        dtype=draw(st.sampled_from(sorted(DTYPE_BYTES))),
        max_model_len=draw(st.integers(1, 131072)),
        max_num_seqs=draw(st.integers(1, 256)),
        gpu_memory_bytes=draw(st.integers(8, 192)) * GiB,
        gpu_memory_utilization=draw(st.floats(0.5, 1.0)),
        max_gpus=draw(st.sampled_from([1, 2, 4, 8, 16])),
    )


@FAST
@given(requests(), st.integers(1, 65536))
def test_bytes_grow_with_context(request: SizingRequest, extra: int) -> None:
    longer = replace(request, max_model_len=request.max_model_len + extra)
    small, large = size_model(request), size_model(longer)
    assert large.kv_cache_bytes >= small.kv_cache_bytes
    assert large.total_bytes >= small.total_bytes
    assert large.tensor_parallel_size >= small.tensor_parallel_size


@FAST
@given(requests(), st.integers(1, 64))
def test_bytes_grow_with_sequences(request: SizingRequest, extra: int) -> None:
    more = replace(request, max_num_seqs=request.max_num_seqs + extra)
    small, large = size_model(request), size_model(more)
    assert large.kv_cache_bytes > small.kv_cache_bytes
    assert large.total_bytes > small.total_bytes


@FAST
@given(requests(), st.floats(1.0, 4.0))
def test_bytes_grow_with_parameters(request: SizingRequest, factor: float) -> None:
    arch = request.architecture
    bigger = replace(request, architecture=replace(arch, params=arch.params * factor))
    small, large = size_model(request), size_model(bigger)
    assert large.weights_bytes >= small.weights_bytes
    assert large.total_bytes >= small.total_bytes
    assert large.tensor_parallel_size >= small.tensor_parallel_size


@FAST
@given(requests())
def test_chosen_tensor_parallel_size_is_valid(request: SizingRequest) -> None:
    result = size_model(request)
    tp = result.tensor_parallel_size
    arch = request.architecture
    assert tp & (tp - 1) == 0
    assert tp <= request.max_gpus
    assert arch.heads % tp == 0
    if arch.kv_heads >= tp:
        assert arch.kv_heads % tp == 0
    else:
        assert tp % arch.kv_heads == 0
    assert result.gpus_per_replica == tp
    assert result.fits == (result.per_gpu_bytes <= result.usable_bytes_per_gpu)
    assert result.fits == (result.reason == "")
    if result.fits:  # and it is the smallest valid size that does
        for smaller in valid_tensor_parallel_sizes(arch, tp // 2):
            assert not size_model(replace(request, gpus=smaller)).fits


@FAST
@given(requests(), st.integers(0, 128))
def test_more_gpu_memory_never_needs_more_gpus(request: SizingRequest, extra_gib: int) -> None:
    roomier = replace(request, gpu_memory_bytes=request.gpu_memory_bytes + extra_gib * GiB)
    small, large = size_model(request), size_model(roomier)
    assert large.gpus_per_replica <= small.gpus_per_replica
    assert large.fits or not small.fits


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

LLAMA_8B_ARGS = [
    "--params",
    "8.03e9",
    "--layers",
    "32",
    "--heads",
    "32",
    "--kv-heads",
    "8",
    "--head-dim",
    "128",
    "--dtype",
    "bf16",
    "--max-model-len",
    "8192",
    "--max-num-seqs",
    "16",
    "--gpu-memory",
    "80Gi",
    "--gpu-memory-utilization",
    "0.9",
]
LLAMA_70B_ARGS = [
    "--params",
    "70.6B",
    "--layers",
    "80",
    "--heads",
    "64",
    "--kv-heads",
    "8",
    "--head-dim",
    "128",
]


def test_cli_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(LLAMA_8B_ARGS) == 0
    out = capsys.readouterr().out
    assert "14.96 GiB" in out  # weights
    assert "128.00 KiB" in out  # KV cache per token
    assert "16.00 GiB" in out  # KV cache for 16 x 8192 tokens
    assert "72.00 GiB usable" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["Tensor parallel size"].split()[-1] == "1"
    assert lines["Fits"].split()[-1] == "yes"
    # The values form one aligned column.
    assert len({line.index("GiB") for line in out.splitlines() if "GiB" in line}) == 1


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*LLAMA_8B_ARGS, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_cache_bytes_per_token"] == 131072
    assert data["weights_bytes"] == 16_060_000_000
    assert data["kv_cache_bytes"] == 16 * GiB
    assert data["tensor_parallel_size"] == data["gpus_per_replica"] == 1
    assert data["fits"] is True
    assert data["reason"] == ""
    assert data["total_bytes"] > data["weights_bytes"] + data["kv_cache_bytes"]


def test_cli_70b_on_one_gpu_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*LLAMA_70B_ARGS, "--gpus", "1"]) == 1
    out = capsys.readouterr().out
    assert "Reason: Does not fit on gpus=1" in out
    assert main([*LLAMA_70B_ARGS, "--gpus", "1", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False
    assert "gpus=1" in data["reason"]


def test_cli_70b_chooses_four_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*LLAMA_70B_ARGS, "--max-model-len", "8192", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensor_parallel_size"] == 4


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--gpu-memory", "80X"),
        ("--gpu-memory-utilization", "1.5"),
        ("--max-model-len", "0"),
        ("--max-num-seqs", "many"),
        ("--params", "-8e9"),
        ("--dtype", "fp7"),
        ("--kv-heads", "5"),  # valid alone, but does not divide 32 heads
        ("--gpus", "3"),
    ],
)
def test_cli_bad_flag_value_exits_2_naming_it(capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    assert main([*LLAMA_8B_ARGS, flag, value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"argument {flag}:" in captured.err


def test_cli_missing_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--params", "8e9"]) == 2
    assert "--layers" in capsys.readouterr().err


def test_cli_runs_as_a_script() -> None:
    # `python -m components.sizing`, as the docs run it, from the repository root
    # (the components package loads its names lazily: no Pulumi SDK at start).
    completed = subprocess.run(
        [sys.executable, "-m", "components.sizing", *LLAMA_70B_ARGS, "--gpus", "1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Reason: Does not fit on gpus=1" in completed.stdout


# --------------------------------------------------------------------------
# More than one node: tensor parallel within a node, pipeline parallel across
# --------------------------------------------------------------------------

# Llama 3.1 405B with the unrounded 405.9e9 parameter count (LLAMA_31_405B
# above keeps 405e9 for the single-node tests).
LLAMA_31_405B_9 = replace(LLAMA_31_405B, params=405.9e9)

# Shared by the hand computations below: 80 GiB GPUs at utilisation 0.9 give
# floor(80 GiB x 0.9) = 72 GiB = 77_309_411_328 bytes usable per GPU; 16
# sequences of 8192 tokens (already a multiple of the 16-token KV block) are
# 131_072 tokens; overhead per GPU = 2 GiB (2_147_483_648) + ceil(5 % of the
# GPU's weight shard) + 512 MiB (536_870_912) when the replica has > 1 GPU.
USABLE_72_GIB = 77_309_411_328
TOKENS_16_X_8192 = 8192 * 16


def test_llama_31_70b_on_nodes_of_8_gpus_fits_one_node_at_tp4() -> None:
    request = SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus_per_node=8)
    # weights = 70.6e9 x 2 = 141_200_000_000 bytes (131.50 GiB).
    # TP1: 131.50 GiB of weights alone > 72 GiB.
    # TP2: shard 70_600_000_000 + overhead (2_147_483_648 + 3_530_000_000 +
    #   536_870_912 = 6_214_354_560) + KV (2 x 80 layers x 4 kv heads x 128 x 2
    #   bytes = 163_840 per token x 131_072 = 21_474_836_480)
    #   = 98_289_191_040 (91.54 GiB) > 72 GiB.
    # TP4: shard 35_300_000_000 + overhead (2_147_483_648 + 1_765_000_000 +
    #   536_870_912 = 4_449_354_560) + KV (2 x 80 x 2 x 128 x 2 = 81_920 per
    #   token x 131_072 = 10_737_418_240) = 50_486_772_800 (47.02 GiB) fits.
    result = size_model(request)
    assert result.fits
    assert result.reason == ""
    assert (result.tensor_parallel_size, result.pipeline_parallel_size) == (4, 1)
    assert (result.gpus_per_replica, result.nodes_per_replica) == (4, 1)
    assert result.usable_bytes_per_gpu == USABLE_72_GIB
    assert result.per_gpu_bytes == 35_300_000_000 + 4_449_354_560 + 10_737_418_240 == 50_486_772_800
    assert size_model(replace(request, gpus=2)).per_gpu_bytes == 98_289_191_040
    # The node size only caps the search: the same answer as without it.
    assert result == size_model(replace(request, gpus_per_node=None))


def _assert_split(result: SizingResult, *, tensor: int, pipeline: int, nodes: int) -> None:
    """It fits, split tensor x pipeline parallel over ``nodes`` nodes (a GPU per rank)."""
    assert result.fits
    assert (result.tensor_parallel_size, result.pipeline_parallel_size) == (tensor, pipeline)
    assert (result.gpus_per_replica, result.nodes_per_replica) == (tensor * pipeline, nodes)


def test_llama_31_70b_on_nodes_of_2_gpus_is_tp2_x_pp2_over_2_nodes() -> None:
    request = SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus_per_node=2)
    # One node: TP1 and TP2 do not fit (91.54 GiB per GPU at TP2, above).
    # TP2 x PP2: ceil(80 / 2) = 40 layers per stage.
    #   shard = 141_200_000_000 x 40 / 80 / 2 = 35_300_000_000
    #   overhead = 2_147_483_648 + 1_765_000_000 + 536_870_912 = 4_449_354_560
    #   KV = 2 x 40 layers x 4 kv heads x 128 x 2 bytes = 81_920 per token
    #        x 131_072 tokens = 10_737_418_240 (10 GiB)
    #   per GPU = 50_486_772_800 (47.02 GiB) <= 72 GiB: fits on 2 nodes.
    result = size_model(request)
    _assert_split(result, tensor=2, pipeline=2, nodes=2)
    assert result.per_gpu_bytes == 35_300_000_000 + 4_449_354_560 + 10_737_418_240 == 50_486_772_800
    # Summed over the 4 GPUs: KV 2 GPUs x 131_072 x (81_920 + 81_920) = 40 GiB,
    # overhead 4 x 4_449_354_560.
    assert result.kv_cache_bytes == 40 * GiB
    assert result.overhead_bytes == 4 * 4_449_354_560
    assert result.total_bytes == 141_200_000_000 + 40 * GiB + 4 * 4_449_354_560
    # Capacity: (72 GiB - 35_300_000_000 - 4_449_354_560) // 81_920 = 458_496
    # tokens, already a whole number of 16-token blocks.
    assert result.kv_cache_capacity_tokens == 458_496
    # Per pod (one per node, 2 GPUs): shm 2 GiB; host 4 + 2 x 2 GiB + 32.875
    # GiB of shard + 2 GiB shm = 42.875, rounded up to 43 GiB.
    assert result.shm_bytes == 2 * GiB
    assert result.host_memory_bytes == 43 * GiB
    assert result.reason == (
        "70.6B parameters in bf16 with 16 x 8192 tokens of KV cache need"
        " 91.54 GiB per GPU on one node of gpus_per_node=2 (at tensor parallel"
        " 2), more than the 72.00 GiB usable per GPU (80.00 GiB x 0.9), so the"
        " model is split as tensor parallel 2 x pipeline parallel 2 over 2 nodes"
        " (4 GPUs, 40 of 80 layers per stage) at 47.02 GiB per GPU."
    )
    # Checking the same layout explicitly: gpus=4 on nodes of 2 is TP2 x PP2.
    explicit = size_model(replace(request, gpus=4))
    assert explicit.fits
    assert (explicit.tensor_parallel_size, explicit.pipeline_parallel_size) == (2, 2)
    assert explicit.per_gpu_bytes == result.per_gpu_bytes
    assert "gpus=4 span 2 nodes" in explicit.reason


def test_llama_31_405b_on_nodes_of_8_gpus_is_tp8_x_pp2() -> None:
    request = SizingRequest(LLAMA_31_405B_9, max_model_len=8192, max_num_seqs=16, gpus_per_node=8)
    # weights = 405.9e9 x 2 = 811_800_000_000 bytes (756.05 GiB).
    # One node, TP8: shard 101_475_000_000 (94.51 GiB) > 72 GiB already.
    # TP8 x PP2: ceil(126 / 2) = 63 layers per stage.
    #   shard = 811_800_000_000 x 63 / 126 / 8 = 50_737_500_000
    #   overhead = 2_147_483_648 + 2_536_875_000 + 536_870_912 = 5_221_229_560
    #   KV = 2 x 63 layers x 1 kv head (8 / 8) x 128 x 2 bytes = 32_256 per
    #        token x 131_072 tokens = 4_227_858_432 (3.94 GiB)
    #   per GPU = 60_186_587_992 (56.05 GiB) <= 72 GiB: fits on 2 nodes.
    result = size_model(request)
    _assert_split(result, tensor=8, pipeline=2, nodes=2)
    assert result.per_gpu_bytes == 50_737_500_000 + 5_221_229_560 + 4_227_858_432 == 60_186_587_992
    assert result.shm_bytes == 8 * GiB  # per pod of 8 GPUs
    assert "tensor parallel 8 x pipeline parallel 2 over 2 nodes (16 GPUs" in result.reason
    assert size_model(replace(request, gpus=8)).per_gpu_bytes > USABLE_72_GIB
    assert min_gpus_for_weights(request) == 16
    explicit = size_model(replace(request, gpus=16))
    assert explicit.fits
    assert explicit.per_gpu_bytes == result.per_gpu_bytes


def test_uneven_stages_are_sized_by_the_busiest() -> None:
    # 80 layers over 3 stages: 27, 27 and 26 layers.
    result = size_model(SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus_per_node=2, gpus=6))
    assert (result.tensor_parallel_size, result.pipeline_parallel_size, result.nodes_per_replica) == (2, 3, 3)
    # Busiest GPU: shard ceil(141_200_000_000 x 27 / 80 / 2) = 23_827_500_000;
    # overhead 2_147_483_648 + 1_191_375_000 + 536_870_912 = 3_875_729_560;
    # KV 2 x 27 x 4 x 128 x 2 = 55_296 per token x 131_072.
    assert result.per_gpu_bytes == 23_827_500_000 + 3_875_729_560 + 55_296 * TOKENS_16_X_8192
    # The stages together hold every layer once: the same KV as one node at TP2.
    assert (
        result.kv_cache_bytes
        == size_model(SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus=2)).kv_cache_bytes
    )
    # The 26-layer stage: shard 141_200_000_000 x 26 / 160 = 22_945_000_000,
    # overhead 2_147_483_648 + 1_147_250_000 + 536_870_912 = 3_831_604_560.
    assert result.overhead_bytes == 2 * (2 * 3_875_729_560 + 3_831_604_560)


def test_llama_31_405b_refused_when_max_nodes_is_1() -> None:
    request = SizingRequest(LLAMA_31_405B_9, max_model_len=8192, max_num_seqs=16, gpus_per_node=8, max_nodes=1)
    result = size_model(request)
    assert not result.fits
    assert (result.tensor_parallel_size, result.pipeline_parallel_size, result.nodes_per_replica) == (8, 1, 1)
    assert result.reason.startswith("No split fits on nodes of gpus_per_node=8 GPUs within max_nodes=1")
    assert "the largest split tried is tensor parallel 8 on one node" in result.reason
    assert "94.51 GiB of bf16 weights" in result.reason
    assert "allow 2 nodes (max_nodes=2)" in result.reason
    assert "use GPUs with more memory" in result.reason
    assert "quantized dtype" in result.reason
    # Lowering the context cannot help when the weights alone do not fit.
    assert "max_model_len" not in result.reason


def test_refusal_over_several_nodes_names_the_largest_split() -> None:
    # 256 sequences of 32768 tokens need far more KV cache than 2 x 2 GPUs hold.
    request = SizingRequest(LLAMA_31_70B, max_model_len=32768, max_num_seqs=256, gpus_per_node=2, max_nodes=2)
    result = size_model(request)
    assert not result.fits
    assert (result.tensor_parallel_size, result.pipeline_parallel_size, result.gpus_per_replica) == (2, 2, 4)
    assert "largest split tried is tensor parallel 2 x pipeline parallel 2 over 2 nodes (4 GPUs)" in result.reason
    assert "the KV cache for 256 x 32768 tokens" in result.reason
    assert "lower max_model_len or max_num_seqs" in result.reason
    assert result.reason.endswith(".")


def test_max_gpus_caps_the_tensor_parallel_size_of_a_split() -> None:
    request = SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus_per_node=8, max_gpus=2)
    result = size_model(request)
    assert (result.tensor_parallel_size, result.pipeline_parallel_size) == (2, 2)
    assert result.per_gpu_bytes == 50_486_772_800


def test_pipeline_stages_are_limited_by_layers() -> None:
    tiny = ModelArchitecture(params=200e9, layers=2, heads=8, kv_heads=8, head_dim=128)
    result = size_model(SizingRequest(tiny, gpus_per_node=1, max_nodes=8))
    assert not result.fits
    assert result.pipeline_parallel_size == 2
    assert "max_nodes=8 (at most layers=2 pipeline stages)" in result.reason


def test_explicit_gpus_not_a_multiple_of_gpus_per_node() -> None:
    with pytest.raises(SizingError, match=r"^gpus must be at most gpus_per_node=8 .*multiple.*\(got 12\)") as info:
        size_model(SizingRequest(LLAMA_31_405B_9, gpus_per_node=8, gpus=12))
    assert info.value.field == "gpus"


def test_explicit_gpus_over_nodes_must_give_a_valid_split() -> None:
    # Qwen2.5-7B has 28 heads: 8 GPUs per node is not a tensor-parallel size.
    with pytest.raises(SizingError, match=r"^gpus spans nodes.*valid sizes: 1, 2, 4") as info:
        size_model(SizingRequest(QWEN_25_7B, gpus_per_node=8, gpus=16))
    assert info.value.field == "gpus"
    with pytest.raises(SizingError, match=r"^gpus spans more nodes than the model has layers=28") as info:
        size_model(SizingRequest(QWEN_25_7B, gpus_per_node=1, gpus=29))
    assert info.value.field == "gpus"
    # Up to gpus_per_node, gpus is one node, checked as without gpus_per_node.
    one_node = SizingRequest(LLAMA_31_8B, gpus=4, gpus_per_node=8)
    assert size_model(one_node) == size_model(replace(one_node, gpus_per_node=None))


@pytest.mark.parametrize(
    ("request_kwargs", "field", "message"),
    [
        ({"gpus_per_node": 0}, "gpus_per_node", "gpus_per_node must be positive"),
        ({"gpus_per_node": -8}, "gpus_per_node", "gpus_per_node must be positive"),
        ({"gpus_per_node": "8"}, "gpus_per_node", "gpus_per_node must be an integer"),
        ({"gpus_per_node": True}, "gpus_per_node", "gpus_per_node must be an integer"),
        ({"max_nodes": 0}, "max_nodes", "max_nodes must be positive"),
        ({"max_nodes": 2.0}, "max_nodes", "max_nodes must be an integer"),
    ],
)
def test_invalid_node_inputs_name_the_field(request_kwargs: dict[str, object], field: str, message: str) -> None:
    request = SizingRequest(LLAMA_31_8B, **request_kwargs)  # type: ignore[arg-type]
    with pytest.raises(SizingError, match=f"^{message}") as info:
        size_model(request)
    assert info.value.field == field


def test_multi_node_to_json_round_trips() -> None:
    result = size_model(SizingRequest(LLAMA_31_70B, max_model_len=8192, max_num_seqs=16, gpus_per_node=2))
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    assert (data["pipeline_parallel_size"], data["nodes_per_replica"]) == (2, 2)
    assert SizingResult(**data) == result  # type: ignore[arg-type]
    single = size_model(SizingRequest(LLAMA_31_8B)).to_json()
    assert (single["pipeline_parallel_size"], single["nodes_per_replica"]) == (1, 1)


@FAST
@given(requests(), st.sampled_from([1, 2, 4, 8, 16]), st.integers(1, 8))
def test_splits_are_valid_and_minimal(request: SizingRequest, per_node: int, max_nodes: int) -> None:
    nodes = replace(request, gpus_per_node=per_node, max_nodes=max_nodes)
    result = size_model(nodes)
    tp, pp = result.tensor_parallel_size, result.pipeline_parallel_size
    arch = request.architecture
    assert tp in valid_tensor_parallel_sizes(arch, min(request.max_gpus, per_node))
    assert 1 <= pp <= min(max_nodes, arch.layers)
    assert result.nodes_per_replica == pp
    assert result.gpus_per_replica == tp * pp
    assert result.fits == (result.per_gpu_bytes <= result.usable_bytes_per_gpu)
    if pp > 1:
        # Only when no size fits on one node, at the largest size, with the fewest nodes.
        assert tp == valid_tensor_parallel_sizes(arch, min(request.max_gpus, per_node))[-1]
        assert not size_model(replace(nodes, gpus=tp)).fits
        assert result.reason
        if result.fits and pp > 2:
            assert not size_model(replace(nodes, gpus=tp * (pp - 1), gpus_per_node=tp)).fits
    single = size_model(request)
    if single.fits and single.tensor_parallel_size <= per_node:
        # Whatever fits on one node without gpus_per_node is unchanged by it.
        assert result == single
    if not single.fits and per_node >= request.max_gpus:
        assert pp > 1 or not result.fits


def test_cli_splits_70b_over_nodes_of_2_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*LLAMA_70B_ARGS, "--max-model-len", "8192", "--max-num-seqs", "16", "--gpus-per-node", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["Tensor parallel size"].split()[-1] == "2"
    assert lines["Pipeline parallel size"].split()[-1] == "2"
    assert lines["GPUs per replica"].split()[-1] == "4"
    assert lines["Nodes per replica"].split()[-1] == "2"
    assert "over 4 GPU(s) on 2 nodes" in lines["Total"]
    assert "47.02 GiB" in lines["Per GPU"]
    assert lines["/dev/shm"].endswith("per pod (one per node)")
    assert "Reason: 70.6B parameters in bf16" in out
    assert len({line.index("GiB") for line in out.splitlines() if "GiB" in line and ":" not in line}) == 1
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tensor_parallel_size"] == data["pipeline_parallel_size"] == data["nodes_per_replica"] == 2
    assert data["gpus_per_replica"] == 4
    assert data["per_gpu_bytes"] == 50_486_772_800


def test_cli_single_node_json_has_pipeline_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*LLAMA_8B_ARGS, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pipeline_parallel_size"] == data["nodes_per_replica"] == 1
    assert main(LLAMA_8B_ARGS) == 0
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["Pipeline parallel size"].split()[-1] == "1"
    assert lines["Nodes per replica"].split()[-1] == "1"


def test_cli_max_nodes_too_small_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*LLAMA_70B_ARGS, "--max-model-len", "8192", "--max-num-seqs", "16", "--gpus-per-node", "2"]
    assert main([*args, "--max-nodes", "1"]) == 1
    out = capsys.readouterr().out
    assert "Reason: No split fits on nodes of gpus_per_node=2 GPUs within max_nodes=1" in out
    assert "allow 2 nodes (max_nodes=2)" in out


def test_cli_explicit_gpus_over_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*LLAMA_70B_ARGS, "--max-model-len", "8192", "--max-num-seqs", "16", "--gpus-per-node", "2"]
    assert main([*args, "--gpus", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["tensor_parallel_size"], data["pipeline_parallel_size"]) == (2, 2)
    assert main([*args, "--gpus", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "argument --gpus: gpus must be at most gpus_per_node=2" in captured.err


@pytest.mark.parametrize(("flag", "value"), [("--gpus-per-node", "0"), ("--max-nodes", "0"), ("--max-nodes", "two")])
def test_cli_bad_node_flags_exit_2_naming_them(capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    assert main([*LLAMA_8B_ARGS, flag, value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"argument {flag}:" in captured.err
