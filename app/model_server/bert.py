"""A BERT encoder forward pass in numpy, plus sentence-embedding pooling.

This covers the sentence-transformers layout (``config.json`` with
``model_type: bert``, ``model.safetensors``, ``tokenizer.json``, optional
``modules.json`` / ``1_Pooling/config.json`` / ``sentence_bert_config.json``),
e.g. ``sentence-transformers/all-MiniLM-L6-v2``. Inference only, float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or of an unsupported kind."""


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).

    numpy has no erf; this is accurate to float32 precision, which is what
    the exact (non-tanh) GELU of BERT needs.
    """
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(np.float32)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(var + np.float32(eps)) * weight + bias


@dataclass
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden), already transposed for x @ w
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_ln_w: np.ndarray
    attn_ln_b: np.ndarray
    inter_w: np.ndarray
    inter_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    out_ln_w: np.ndarray
    out_ln_b: np.ndarray


class BertEncoder:
    """BERT encoder (embeddings + transformer layers), returns last hidden states."""

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        model_type = config.get("model_type")
        if model_type != "bert":
            raise ModelLoadError(f"unsupported model_type {model_type!r}: this server runs BERT encoders")
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ModelLoadError(f"unsupported hidden_act {act!r} (only 'gelu')")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelLoadError("only absolute position embeddings are supported")
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.num_layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_positions = int(config.get("max_position_embeddings", 512))
        if self.hidden % self.heads:
            raise ModelLoadError("hidden_size is not a multiple of num_attention_heads")
        self.head_dim = self.hidden // self.heads

        w = _strip_prefix(weights)

        def get(name: str) -> np.ndarray:
            try:
                return np.ascontiguousarray(w[name], dtype=np.float32)
            except KeyError:
                raise ModelLoadError(f"weight {name!r} missing from model.safetensors") from None

        self.word_emb = get("embeddings.word_embeddings.weight")
        self.pos_emb = get("embeddings.position_embeddings.weight")
        self.type_emb = get("embeddings.token_type_embeddings.weight")
        self.emb_ln_w = get("embeddings.LayerNorm.weight")
        self.emb_ln_b = get("embeddings.LayerNorm.bias")
        if self.word_emb.shape[1] != self.hidden:
            raise ModelLoadError("word embedding width does not match hidden_size")
        self.layers: list[_Layer] = []
        for i in range(self.num_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (get(p + f"attention.self.{n}.weight") for n in ("query", "key", "value"))
            qb, kb, vb = (get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value"))
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q, k, v], axis=0).T),
                    qkv_b=np.concatenate([qb, kb, vb]),
                    attn_out_w=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                    attn_out_b=get(p + "attention.output.dense.bias"),
                    attn_ln_w=get(p + "attention.output.LayerNorm.weight"),
                    attn_ln_b=get(p + "attention.output.LayerNorm.bias"),
                    inter_w=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                    inter_b=get(p + "intermediate.dense.bias"),
                    out_w=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    out_b=get(p + "output.dense.bias"),
                    out_ln_w=get(p + "output.LayerNorm.weight"),
                    out_ln_b=get(p + "output.LayerNorm.bias"),
                )
            )

    @property
    def vocab_size(self) -> int:
        return int(self.word_emb.shape[0])

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """input_ids, attention_mask: (batch, seq) -> hidden states (batch, seq, hidden)."""
        batch, seq = input_ids.shape
        if seq > self.max_positions:
            raise ValueError(f"sequence of {seq} tokens exceeds {self.max_positions} positions")
        x = self.word_emb[input_ids] + self.pos_emb[:seq][None, :, :] + self.type_emb[0]
        x = layer_norm(x, self.emb_ln_w, self.emb_ln_b, self.eps)
        # Additive mask: 0 for real tokens, a large negative number for padding.
        bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # (b, s, 3h)
            qkv = qkv.reshape(batch, seq, 3, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (b, heads, s, d)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, seq, self.hidden)
            attn = ctx @ layer.attn_out_w + layer.attn_out_b
            x = layer_norm(x + attn, layer.attn_ln_w, layer.attn_ln_b, self.eps)
            inter = gelu(x @ layer.inter_w + layer.inter_b)
            out = inter @ layer.out_w + layer.out_b
            x = layer_norm(x + out, layer.out_ln_w, layer.out_ln_b, self.eps)
        return x.astype(np.float32, copy=False)


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both ``embeddings.*`` and ``bert.embeddings.*`` style names."""
    if "embeddings.word_embeddings.weight" in weights:
        return weights
    for prefix in ("bert.", "model."):
        if prefix + "embeddings.word_embeddings.weight" in weights:
            return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    return weights


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path.name}: {exc}") from exc


class SentenceEmbedder:
    """Tokenizer + BERT encoder + pooling (+ optional L2 normalisation)."""

    def __init__(
        self,
        encoder: BertEncoder,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_seq_length: int = 512,
        token_budget: int = 4096,
    ) -> None:
        if pooling not in ("mean", "cls", "max"):
            raise ModelLoadError(f"unsupported pooling mode {pooling!r}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq_length = min(int(max_seq_length), encoder.max_positions)
        self.token_budget = max(int(token_budget), self.max_seq_length)
        self.dimension = encoder.hidden
        self.pad_id = 0
        padding = getattr(tokenizer, "padding", None)
        if padding:
            self.pad_id = int(padding.get("pad_id", 0))
        # tokenizer.json may carry its own padding/truncation (all-MiniLM's pads
        # to 128); the server checks lengths itself and pads per batch.
        tokenizer.no_padding()
        tokenizer.no_truncation()

    @classmethod
    def from_dir(cls, model_dir: str | Path, token_budget: int = 4096) -> SentenceEmbedder:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = Path(model_dir)
        config = _read_json(root / "config.json")
        if not isinstance(config, dict):
            raise ModelLoadError(f"{root}/config.json is missing or not a JSON object")
        weights_path = root / "model.safetensors"
        if not weights_path.is_file():
            raise ModelLoadError(f"{root}/model.safetensors not found (only safetensors weights are supported)")
        tokenizer_path = root / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"{root}/tokenizer.json not found")
        try:
            weights = load_file(str(weights_path))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelLoadError(f"cannot read model.safetensors: {exc}") from exc
        encoder = BertEncoder(config, weights)
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise ModelLoadError(f"cannot read tokenizer.json: {exc}") from exc

        pooling, normalize = "mean", False
        modules = _read_json(root / "modules.json")
        pooling_dir = "1_Pooling"
        if isinstance(modules, list):
            for module in modules:
                kind = str(module.get("type", ""))
                if kind.endswith("Pooling"):
                    pooling_dir = str(module.get("path") or pooling_dir)
                if kind.endswith("Normalize"):
                    normalize = True
        pool_cfg = _read_json(root / pooling_dir / "config.json")
        if isinstance(pool_cfg, dict):
            if pool_cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif pool_cfg.get("pooling_mode_max_tokens"):
                pooling = "max"
        st_cfg = _read_json(root / "sentence_bert_config.json")
        max_len = encoder.max_positions
        if isinstance(st_cfg, dict) and st_cfg.get("max_seq_length"):
            max_len = int(st_cfg["max_seq_length"])
        return cls(
            encoder,
            tokenizer,
            pooling=pooling,
            normalize=normalize,
            max_seq_length=max_len,
            token_budget=token_budget,
        )

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids (with [CLS]/[SEP]) for each text, untruncated."""
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def embed_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Embeddings (n, dimension) for already tokenized inputs."""
        out = np.zeros((len(token_ids), self.dimension), dtype=np.float32)
        # Sort by length so each batch pads little; cap batch size by tokens.
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        start = 0
        while start < len(order):
            shortest = len(token_ids[order[start]])
            end = start + 1
            while end < len(order):
                longest = len(token_ids[order[end]])  # sorted: the newest is the longest
                too_many = (end - start + 1) * longest > self.token_budget
                too_ragged = longest > 2 * shortest + 16  # keep padding waste bounded
                if too_many or too_ragged:
                    break
                end += 1
            idx = order[start:end]
            out[idx] = self._embed_batch([token_ids[i] for i in idx])
            start = end
        return out

    def _embed_batch(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        hidden = self.encoder.forward(ids, mask)
        if self.pooling == "cls":
            pooled = hidden[:, 0, :]
        elif self.pooling == "max":
            pooled = np.where(mask[:, :, None] > 0, hidden, -1e9).max(axis=1)
        else:
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, 1e-12)
        return pooled.astype(np.float32)
