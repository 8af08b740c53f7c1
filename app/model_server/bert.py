"""A BERT encoder forward pass in numpy, plus sentence-embedding pooling.

This covers the sentence-transformers layout (``config.json`` with
``model_type: bert``, ``model.safetensors``, ``tokenizer.json``, optional
``modules.json`` / ``1_Pooling/config.json`` / ``sentence_bert_config.json``),
e.g. ``sentence-transformers/all-MiniLM-L6-v2``. Inference only, float32.

Batches are packed, not padded: the token rows of all sequences of a batch
are stacked into one ``(tokens, hidden)`` matrix, so every dense layer (about
95% of the work) runs one matrix product over real tokens only. Attention is
the only step that mixes tokens; it runs per group of equally long sequences
(the caller sorts by length), which needs no mask and no padding. A token's
result therefore does not depend on what else is in its batch. The row-wise
part of each layer runs in chunks of rows so that the feed-forward block's
intermediate activations stay in the CPU cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Rows per matrix product of the row-wise part of a layer (large enough for BLAS to run near its peak) ...
ROW_CHUNK = 512
# ... and per elementwise pass of the GELU (small enough for its scratch buffers to stay in L2).
GELU_CHUNK = 32
# Attention scores held at once per group of equal-length sequences (float32 elements, 8 MB).
ATTENTION_ELEMENTS = 2 * 1024 * 1024

# Softmax numerators below this (a row's largest) would lose precision: shift that group row by row.
_TINY = np.float32(1e-30)

# erf(z) ~ 1 - (a1 t + a2 t^2 + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), z >= 0: Abramowitz & Stegun 7.1.26.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or of an unsupported kind."""


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).

    numpy has no erf; this is accurate to float32 precision, which is what
    the exact (non-tanh) GELU of BERT needs.
    """
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * a)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
    return sign * (1.0 - poly * np.exp(-a * a))


# gelu(x) = x Phi(x) = max(x, 0) - |x| Phi(-|x|), and Phi(-|x|) = erfc(|x| / sqrt 2) / 2
#         = max(x, 0) - |x| (a1' t + ... + a5' t^5) exp(-x^2 / 2), t = 1 / (1 + p |x| / sqrt 2), a_i' = a_i / 2.
_GELU_P = np.float32(_ERF_P / math.sqrt(2.0))
_GELU_A = tuple(np.float32(a / 2.0) for a in _ERF_A)
_MINUS_HALF = np.float32(-0.5)


def gelu_(x: np.ndarray, scratch: np.ndarray) -> None:
    """Exact (erf) GELU of a float32 matrix, in place; ``scratch`` is a (3, rows, cols) float32 buffer.

    Works through ``GELU_CHUNK`` rows at a time so that the 20 elementwise passes hit the cache.
    """
    a1, a2, a3, a4, a5 = _GELU_A
    rows = x.shape[0]
    for r0 in range(0, rows, GELU_CHUNK):
        xc = x[r0 : r0 + GELU_CHUNK]
        n = xc.shape[0]
        a, t, y = scratch[0, :n], scratch[1, :n], scratch[2, :n]
        np.abs(xc, out=a)
        np.multiply(a, _GELU_P, out=t)
        t += 1.0
        np.reciprocal(t, out=t)
        np.multiply(t, a5, out=y)
        y += a4
        y *= t
        y += a3
        y *= t
        y += a2
        y *= t
        y += a1
        y *= t
        np.multiply(a, _MINUS_HALF, out=t)  # t is free again: -x^2 / 2
        t *= a
        np.exp(t, out=t)
        y *= t
        y *= a
        np.maximum(xc, 0.0, out=xc)
        xc -= y


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, returning a new float32 array."""
    out = np.array(x, dtype=np.float32, copy=True)
    flat = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out.reshape(1, -1)
    gelu_(flat, np.empty((3, min(GELU_CHUNK, flat.shape[0]), flat.shape[1]), dtype=np.float32))
    return out


def layer_norm_(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: np.float32) -> None:
    """LayerNorm over the last axis of a (rows, hidden) float32 matrix, in place."""
    mean = x.mean(axis=-1, keepdims=True)
    x -= mean
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1.0 / x.shape[-1])
    var += eps
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    out = np.array(x, dtype=np.float32, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    layer_norm_(flat, weight, bias, np.float32(eps))
    return out


@dataclass
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden), already transposed for x @ w; the query part pre-scaled by 1/sqrt(d)
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


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges covering ``total`` rows in nearly equal parts of at most ``size`` rows."""
    if total <= 0:
        return []
    parts = -(-total // size)
    step = -(-total // parts)
    return [(start, min(start + step, total)) for start in range(0, total, step)]


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
        self.eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self.max_positions = int(config.get("max_position_embeddings", 512))
        if self.hidden % self.heads:
            raise ModelLoadError("hidden_size is not a multiple of num_attention_heads")
        self.head_dim = self.hidden // self.heads
        self.intermediate = int(config.get("intermediate_size", 4 * self.hidden))

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
        # Scaling the query projection once here instead of every score matrix on every call.
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        self.layers: list[_Layer] = []
        for i in range(self.num_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (get(p + f"attention.self.{n}.weight") for n in ("query", "key", "value"))
            qb, kb, vb = (get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value"))
            inter_w = get(p + "intermediate.dense.weight")
            if inter_w.shape != (self.intermediate, self.hidden):
                raise ModelLoadError(f"{p}intermediate.dense.weight has shape {inter_w.shape}")
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q * scale, k, v], axis=0).T),
                    qkv_b=np.concatenate([qb * scale, kb, vb]),
                    attn_out_w=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                    attn_out_b=get(p + "attention.output.dense.bias"),
                    attn_ln_w=get(p + "attention.output.LayerNorm.weight"),
                    attn_ln_b=get(p + "attention.output.LayerNorm.bias"),
                    inter_w=np.ascontiguousarray(inter_w.T),
                    inter_b=get(p + "intermediate.dense.bias"),
                    out_w=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    out_b=get(p + "output.dense.bias"),
                    out_ln_w=get(p + "output.LayerNorm.weight"),
                    out_ln_b=get(p + "output.LayerNorm.bias"),
                )
            )
        self._positions = np.arange(self.max_positions, dtype=np.intp)
        self._ones = np.ones((self.max_positions, 1), dtype=np.float32)

    @property
    def vocab_size(self) -> int:
        return int(self.word_emb.shape[0])

    def forward(self, input_ids: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """Hidden states of packed sequences.

        ``input_ids``: the token ids of several sequences one after the other, shape (sum(lengths),).
        Returns (sum(lengths), hidden). Sequences of equal length should be adjacent (sort by
        length): each run of them shares its attention matrix products.
        """
        total = int(input_ids.shape[0])
        if total != sum(lengths) or any(n <= 0 for n in lengths):
            raise ValueError("lengths must be positive and add up to the number of input ids")
        if max(lengths, default=0) > self.max_positions:
            raise ValueError(f"a sequence exceeds {self.max_positions} positions")
        positions = np.concatenate([self._positions[:n] for n in lengths])
        x: np.ndarray = self.word_emb[input_ids]
        x += self.pos_emb[positions]
        x += self.type_emb[0]
        layer_norm_(x, self.emb_ln_w, self.emb_ln_b, self.eps)

        h, heads, d = self.hidden, self.heads, self.head_dim
        groups = self._attention_groups(lengths)
        rows = _chunks(total, ROW_CHUNK)
        width = max(end - start for start, end in rows)
        qkv = np.empty((total, 3 * h), dtype=np.float32)
        ctx = np.empty((total, h), dtype=np.float32)
        dense = np.empty((width, h), dtype=np.float32)
        inter = np.empty((width, self.intermediate), dtype=np.float32)
        scratch = np.empty((3, min(GELU_CHUNK, width), self.intermediate), dtype=np.float32)
        for layer in self.layers:
            np.matmul(x, layer.qkv_w, out=qkv)
            qkv += layer.qkv_b
            for start, count, length in groups:
                end = start + count * length
                block = qkv[start:end].reshape(count, length, 3, heads, d)
                q = block[:, :, 0].transpose(0, 2, 1, 3)  # (count, heads, length, d), pre-scaled
                k = block[:, :, 1].transpose(0, 2, 3, 1)  # (count, heads, d, length)
                v = block[:, :, 2].transpose(0, 2, 1, 3)
                heads_ctx = self._attention(q, k, v)
                ctx[start:end].reshape(count, length, heads, d)[...] = heads_ctx.transpose(0, 2, 1, 3)
            for start, end in rows:
                n = end - start
                xc, out, mid = x[start:end], dense[:n], inter[:n]
                np.matmul(ctx[start:end], layer.attn_out_w, out=out)
                out += layer.attn_out_b
                xc += out
                layer_norm_(xc, layer.attn_ln_w, layer.attn_ln_b, self.eps)
                np.matmul(xc, layer.inter_w, out=mid)
                mid += layer.inter_b
                gelu_(mid, scratch)
                np.matmul(mid, layer.out_w, out=out)
                out += layer.out_b
                xc += out
                layer_norm_(xc, layer.out_ln_w, layer.out_ln_b, self.eps)
        return x

    def _attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """softmax(q k) v for (count, heads, length, d) queries, (count, heads, d, length) keys.

        The softmax is shifted by each sequence's largest score rather than each row's (one
        reduction instead of one per row; the result is the same), its row sums are a matrix
        product with ones (far faster than ``.sum(-1)`` over short rows), and the normalisation
        divides the (length, d) product rather than the (length, length) scores. A row whose scores
        all fall far below its sequence's peak would lose precision; such a group (never seen with
        BERT's scaled scores) gets the row-by-row shift instead.
        """
        length = q.shape[2]
        scores = q @ k
        peak = scores.reshape(scores.shape[0], -1).max(axis=1)
        scores -= peak[:, None, None, None]
        np.exp(scores, out=scores)
        sums = scores @ self._ones[:length]
        if sums.min() <= _TINY:
            scores = q @ k
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            sums = scores @ self._ones[:length]
        out: np.ndarray = scores @ v
        out /= sums
        return out

    def _attention_groups(self, lengths: Sequence[int]) -> list[tuple[int, int, int]]:
        """(first row, sequences, length) for each run of equally long sequences, capped in memory."""
        groups: list[tuple[int, int, int]] = []
        row = 0
        i = 0
        while i < len(lengths):
            length = lengths[i]
            cap = max(1, ATTENTION_ELEMENTS // (self.heads * length * length))
            j = i + 1
            while j < len(lengths) and lengths[j] == length and j - i < cap:
                j += 1
            groups.append((row, j - i, length))
            row += (j - i) * length
            i = j
        return groups


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
        """Embeddings (n, dimension) for already tokenized inputs.

        Sorted by length (equal lengths share attention products), split into forward passes of at
        most ``token_budget`` tokens. Packed, not padded: an input's embedding does not depend on the
        other inputs of the call.
        """
        out = np.empty((len(token_ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        start = 0
        while start < len(order):
            end, tokens = start, 0
            while end < len(order) and (end == start or tokens + len(token_ids[order[end]]) <= self.token_budget):
                tokens += len(token_ids[order[end]])
                end += 1
            idx = order[start:end]
            out[idx] = self.embed_packed([token_ids[i] for i in idx])
            start = end
        return out

    def embed_packed(self, batch: list[list[int]]) -> np.ndarray:
        """One forward pass over ``batch`` (best sorted by length); returns (len(batch), dimension)."""
        lengths = [len(ids) for ids in batch]
        flat = np.fromiter((t for ids in batch for t in ids), dtype=np.intp, count=sum(lengths))
        hidden = self.encoder.forward(flat, lengths)
        starts = np.zeros(len(lengths), dtype=np.intp)
        np.cumsum(lengths[:-1], out=starts[1:])
        if self.pooling == "cls":
            pooled = hidden[starts]
        elif self.pooling == "max":
            pooled = np.maximum.reduceat(hidden, starts, axis=0)
        else:
            pooled = np.add.reduceat(hidden, starts, axis=0)
            pooled /= np.asarray(lengths, dtype=np.float32)[:, None]
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled /= np.maximum(norms, np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)
