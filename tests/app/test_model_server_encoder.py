"""The numpy BERT encoder against reference outputs of PyTorch + transformers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from model_server.bert import BertEncoder, ModelLoadError, SentenceEmbedder, _erf, gelu

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> SentenceEmbedder:
    return SentenceEmbedder.from_dir(model_dir)


def embed(model: SentenceEmbedder, texts: list[str]) -> np.ndarray:
    return model.embed_ids(model.tokenize(texts))


def test_config_of_all_minilm(embedder: SentenceEmbedder) -> None:
    assert embedder.dimension == 384
    assert embedder.max_seq_length == 256
    assert embedder.pooling == "mean"
    assert embedder.normalize is True
    assert embedder.encoder.num_layers == 6
    assert embedder.encoder.heads == 12


def test_matches_reference_embeddings(embedder: SentenceEmbedder) -> None:
    got = embed(embedder, REFERENCE["sentences"])
    want = np.asarray(REFERENCE["embeddings"], dtype=np.float32)
    assert got.shape == want.shape == (len(REFERENCE["sentences"]), 384)
    assert np.abs(got - want).max() < 1e-5
    assert (got * want).sum(axis=1).min() > 0.99999


def test_unit_norm_and_deterministic(embedder: SentenceEmbedder) -> None:
    texts = ["The quick brown fox.", "Ünïcödé façade", "x"]
    first = embed(embedder, texts)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, embed(embedder, texts))


def test_padding_does_not_change_results(embedder: SentenceEmbedder) -> None:
    short, long = "A short sentence.", " ".join(["padding makes this one much longer"] * 8)
    alone = embed(embedder, [short])[0]
    batched = embed(embedder, [long, short, long])
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    np.testing.assert_allclose(batched[0], batched[2], atol=1e-6)


def test_paraphrases_rank_above_unrelated(embedder: SentenceEmbedder) -> None:
    query, para, other = embed(
        embedder, ["How do I reset my password?", "Steps to change a forgotten password", "The cat sat on the mat."]
    )
    assert float(query @ para) > float(query @ other) + 0.3


def test_tokenizer_does_not_truncate_or_pad(embedder: SentenceEmbedder) -> None:
    # tokenizer.json of all-MiniLM carries padding/truncation to 128; the server turns both off
    ids = embedder.tokenize(["hello", " ".join(["word"] * 200)])
    assert len(ids[0]) == 3
    assert len(ids[1]) == 202


def test_batches_respect_token_budget(model_dir: Path) -> None:
    small = SentenceEmbedder.from_dir(model_dir, token_budget=64)
    texts = [f"sentence number {i} about something" for i in range(20)]
    reference = SentenceEmbedder.from_dir(model_dir)
    np.testing.assert_allclose(embed(small, texts), embed(reference, texts), atol=1e-5)


def test_erf_and_gelu_accuracy() -> None:
    xs = np.linspace(-6, 6, 2001)
    exact = np.array([math.erf(x) for x in xs])
    assert np.abs(_erf(xs) - exact).max() < 2e-7
    x = np.float32([-3.0, -1.0, 0.0, 0.5, 2.0])
    want = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(gelu(x), want, atol=1e-6)


def test_rejects_unsupported_architecture() -> None:
    with pytest.raises(ModelLoadError, match="model_type"):
        BertEncoder({"model_type": "gpt2"}, {})


def test_missing_weights_are_reported(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        SentenceEmbedder.from_dir(tmp_path)
