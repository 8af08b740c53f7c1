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

SIZING_PY = Path(__file__).resolve().parents[2] / "components" / "sizing.py"

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
    # `python -m components.sizing` also imports the components package (and
    # Pulumi, slowly); -I runs the file alone, as only the standard library.
    completed = subprocess.run(
        [sys.executable, "-I", str(SIZING_PY), *LLAMA_70B_ARGS, "--gpus", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Reason: Does not fit on gpus=1" in completed.stdout
