"""A Llama's arithmetic in numpy, float32: weights, the forward pass, the KV cache and
the attention probe (`numpy_draft` reads windows with it).

The same forward as transformers' Llama (RMSNorm, rotary positions, grouped-query
attention, SwiGLU, optional biases, tied or separate output head), and the same probe,
softmax(q K^T / sqrt(d)) of the recorded rows over the prompt keys, pooled, maxed over
heads and layers (`scoring`'s formulas), within float32 rounding.

Attention runs in blocks of query rows, each against the keys it may see, so memory is
O(heads x block x S) and the causal half of the work is skipped. Matrix products go to
numpy's BLAS, held to one thread by the caller: OpenBLAS's result for a product depends
on how many threads share it (measured here: some shapes, such as 256 x 1040 by 1040 x
32, differ in the last bits between 1 and 2 threads), and a tie in the last bit can flip
a chunk. The cores are used instead by running a forward pass's blocks of `BLOCK` rows
side by side (a `Runner`), or several forward passes at once: the blocks are the same
whatever runs them, and however a sequence is split into calls at a block's edge, so the
results are the same bytes in every process and with any number of cores.
"""

import json
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.loading import context_length_in

# Rows (tokens) per block of a forward pass: bounds the attention scores, lets a block
# of queries skip the keys after its last row, and is the unit that runs on a core.
BLOCK = 256


def block_edge(rows: int) -> int:
    """The last block edge at or before `rows`: a forward pass split there into two
    calls runs the very blocks of one call."""
    return rows // BLOCK * BLOCK


SAFETENSORS_NUMPY = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


@dataclass(frozen=True)
class LlamaShape:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    context_length: int
    rms_eps: float
    rope_theta: float
    tied: bool
    bos_token_id: int | None

    @classmethod
    def of(cls, config: dict) -> "LlamaShape":
        heads = config["num_attention_heads"]
        rope = config.get("rope_parameters") or {}
        return cls(layers=config["num_hidden_layers"], heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   intermediate=config["intermediate_size"],
                   context_length=context_length_in(config),
                   rms_eps=config.get("rms_norm_eps", 1e-6),
                   rope_theta=rope.get("rope_theta", config.get("rope_theta", 10000.0)),
                   tied=config.get("tie_word_embeddings", True),
                   bos_token_id=config.get("bos_token_id"))


def tensor_header(path: Path) -> tuple[dict, int]:
    """The tensors a safetensors file describes, and where their data begins."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def load_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as float32 numpy arrays.

    numpy has no bfloat16, which most published checkpoints use: those are widened here
    from their 16 bits (a bfloat16 is the top half of a float32); other types go
    through `safetensors.numpy`.
    """
    header, data_start = tensor_header(path)
    if all(entry["dtype"] in SAFETENSORS_NUMPY for entry in header.values()):
        from safetensors.numpy import load_file

        return {name: array.astype(np.float32, copy=False) for name, array in load_file(path).items()}
    raw = np.fromfile(path, dtype=np.uint8)
    tensors = {}
    for name, entry in header.items():
        begin, end = (data_start + offset for offset in entry["data_offsets"])
        if entry["dtype"] == "BF16":
            widened = raw[begin:end].view(np.uint16).astype(np.uint32) << 16
            tensors[name] = widened.view(np.float32).reshape(entry["shape"])
        elif entry["dtype"] in SAFETENSORS_NUMPY:
            tensors[name] = raw[begin:end].view(SAFETENSORS_NUMPY[entry["dtype"]]).astype(
                np.float32).reshape(entry["shape"])
        else:
            raise ModelLoadError(f"{path}: tensor {name} has type {entry['dtype']}, not a float")
    return tensors


@dataclass(frozen=True)
class Layer:
    """One decoder layer, its projections fused and laid out for `x @ weight`."""

    input_norm: np.ndarray
    qkv: np.ndarray
    qkv_bias: np.ndarray | None
    output: np.ndarray
    output_bias: np.ndarray | None
    post_norm: np.ndarray
    gate_up: np.ndarray
    gate_up_bias: np.ndarray | None
    down: np.ndarray
    down_bias: np.ndarray | None


class Llama:
    """The model's arithmetic: weights, rotary tables and the forward pass."""

    def __init__(self, shape: LlamaShape, tensors: dict[str, np.ndarray]):
        self.shape = shape
        self.embedding = tensors["model.embed_tokens.weight"]
        head = self.embedding if shape.tied or "lm_head.weight" not in tensors \
            else tensors["lm_head.weight"]
        self.head = np.ascontiguousarray(head.T)
        self.norm = tensors["model.norm.weight"]
        self.layers = [self._layer(tensors, f"model.layers.{i}.") for i in range(shape.layers)]
        exponents = np.arange(0, shape.head_dim, 2, dtype=np.float32) / np.float32(shape.head_dim)
        self.inverse_frequencies = (1.0 / (shape.rope_theta ** exponents)).astype(np.float32)

    @staticmethod
    def _layer(tensors: dict[str, np.ndarray], prefix: str) -> Layer:
        def fused(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
            weights = [tensors[f"{prefix}{name}.weight"] for name in names]
            biases = [tensors.get(f"{prefix}{name}.bias") for name in names]
            bias = None if biases[0] is None else np.concatenate(biases)
            return np.ascontiguousarray(np.concatenate(weights).T), bias

        qkv, qkv_bias = fused(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"))
        output, output_bias = fused(("self_attn.o_proj",))
        gate_up, gate_up_bias = fused(("mlp.gate_proj", "mlp.up_proj"))
        down, down_bias = fused(("mlp.down_proj",))
        return Layer(tensors[f"{prefix}input_layernorm.weight"], qkv, qkv_bias, output,
                     output_bias, tensors[f"{prefix}post_attention_layernorm.weight"], gate_up,
                     gate_up_bias, down, down_bias)

    def forward(self, ids: list[int], cache: "KeyValueCache", probe: "Probe | None" = None,
                run: "Runner | None" = None, outputs: slice = slice(None)) -> np.ndarray:
        """The final hidden states of the rows `outputs` of `ids` (all by default), which
        follow the `cache.length` tokens the cache holds (and are appended to it); the
        probe watches every layer. Each layer works in blocks of `BLOCK` rows (the same
        blocks however they run, and however a sequence is split into calls at a block's
        edge), which `run` may run side by side. The last layer's keys and values are all
        a probe and later calls read of it: its attention and feed-forward run only on
        the blocks that hold `outputs` (a quarter of the bundled draft's work, when the
        caller wants no hidden state or the last one)."""
        shape = self.shape
        run = run or in_turn
        count, start = len(ids), cache.length
        cos, sin = self._rotary(np.arange(start, start + count))
        x = self.embedding[np.asarray(ids)]
        blocks = [slice(first, min(first + BLOCK, count)) for first in range(0, count, BLOCK)]
        wanted = range(count)[outputs]
        last_blocks = [rows for rows in blocks
                       if wanted and rows.start <= wanted[-1] and wanted[0] < rows.stop]
        query = np.empty((shape.heads, count, shape.head_dim), dtype=np.float32)
        key = np.empty((shape.kv_heads, count, shape.head_dim), dtype=np.float32)
        value = np.empty_like(key)
        q_width, kv_width = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
        for index, layer in enumerate(self.layers):
            def project(rows: slice) -> None:
                projected = _linear(self._rms(x[rows], layer.input_norm), layer.qkv,
                                    layer.qkv_bias)
                query[:, rows] = _rotate(_heads(projected[:, :q_width], shape.heads),
                                         cos[rows], sin[rows])
                key[:, rows] = _rotate(_heads(projected[:, q_width:q_width + kv_width],
                                              shape.kv_heads), cos[rows], sin[rows])
                value[:, rows] = _heads(projected[:, q_width + kv_width:], shape.kv_heads)

            def attend(rows: slice) -> None:
                attended = self._attention(query[:, rows], keys, values, start + rows.start)
                x[rows] += _linear(attended, layer.output, layer.output_bias)

            def feed_forward(rows: slice) -> None:
                gate_up = _linear(self._rms(x[rows], layer.post_norm), layer.gate_up,
                                  layer.gate_up_bias)
                gate, up = gate_up[:, :shape.intermediate], gate_up[:, shape.intermediate:]
                x[rows] += _linear(gate / (1 + np.exp(-gate)) * up, layer.down, layer.down_bias)

            run(project, blocks)
            keys, values = cache.append(index, key, value)
            if probe is not None:
                probe.observe(index, self._grouped(query))
            working = blocks if index < len(self.layers) - 1 else last_blocks
            run(attend, working)
            run(feed_forward, working)
        cache.length += count
        return self._rms(x[outputs], self.norm)

    def _grouped(self, query: np.ndarray) -> np.ndarray:
        """(heads, n, d) -> (kv_heads, group, n, d): the query heads that share a key head
        side by side, so that one product per key head serves them all."""
        shape = self.shape
        return query.reshape(shape.kv_heads, shape.heads // shape.kv_heads, query.shape[1],
                             shape.head_dim)

    def _attention(self, query: np.ndarray, keys: np.ndarray, values: np.ndarray,
                   first: int) -> np.ndarray:
        """Causal attention of one block of queries at positions first.. over the keys
        (kv_heads, d, T) and values (kv_heads, T, d) up to them: (heads, n, d) -> (n,
        heads * d). One key head at a time: its scores stay in the core's cache through
        the softmax's passes."""
        shape = self.shape
        count = query.shape[1]
        seen = first + count
        grouped = self._grouped(query * np.float32(shape.head_dim ** -0.5))
        mask = _causal_mask(np.arange(first, seen), np.arange(first, seen))
        out = np.empty((count,) + grouped.shape[:2] + (shape.head_dim,), dtype=np.float32)
        for head in range(shape.kv_heads):
            scores = (grouped[head].reshape(-1, shape.head_dim) @ keys[head, :, :seen]
                      ).reshape(-1, count, seen)
            scores[..., first:] += mask
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            weights = scores.sum(axis=-1, keepdims=True)
            mixed = scores.reshape(-1, seen) @ values[head, :seen]
            out[:, head] = (mixed.reshape(-1, count, shape.head_dim) / weights).transpose(1, 0, 2)
        return out.reshape(count, -1)

    def _rms(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        variance = np.mean(x * x, axis=-1, keepdims=True)
        return weight * (x / np.sqrt(variance + np.float32(self.shape.rms_eps)))

    def _rotary(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        angles = positions.astype(np.float32)[:, None] * self.inverse_frequencies[None, :]
        return np.cos(angles), np.sin(angles)

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        return hidden @ self.head


Runner = Callable[[Callable[[slice], None], list[slice]], None]


def in_turn(work: Callable[[slice], None], blocks: list[slice]) -> None:
    for rows in blocks:
        work(rows)


def side_by_side(pool: ThreadPoolExecutor) -> Runner:
    """Blocks on the pool's threads (numpy lets go of the GIL in its products)."""
    def run(work: Callable[[slice], None], blocks: list[slice]) -> None:
        if len(blocks) == 1:
            work(blocks[0])
        else:
            for _ in pool.map(work, blocks):
                pass
    return run


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = x @ weight
    return out if bias is None else out + bias


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(n, heads * d) -> (heads, n, d)."""
    return np.ascontiguousarray(x.reshape(x.shape[0], heads, -1).transpose(1, 0, 2))


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary position embedding, in transformers' rotate-half layout."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def _causal_mask(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """0 where the query at position `rows[i]` may see the key at `columns[j]`, else -inf."""
    return np.where(columns[None, :] > rows[:, None], np.float32(-np.inf), np.float32(0))


class KeyValueCache:
    """Each layer's rotated keys and values of the tokens read so far. Keys are stored
    transposed, (kv_heads, d, positions), so that q K^T is a plain BLAS product over
    any prefix of them."""

    def __init__(self, shape: LlamaShape, capacity: int):
        self.keys = np.empty((shape.layers, shape.kv_heads, shape.head_dim, capacity),
                             dtype=np.float32)
        self.values = np.empty((shape.layers, shape.kv_heads, capacity, shape.head_dim),
                               dtype=np.float32)
        self.length = 0

    def append(self, layer: int, key: np.ndarray, value: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Store the new tokens' keys and values (kv_heads, n, d); every key (transposed)
        and value up to them."""
        stop = self.length + key.shape[1]
        self.keys[layer, :, :, self.length:stop] = key.transpose(0, 2, 1)
        self.values[layer, :, self.length:stop] = value
        return self.keys[layer, :, :, :stop], self.values[layer, :, :stop]


class Probe:
    """The layer-maxed, pooled attention of the last `rows` queries of a sequence over
    its first `prompt_length` keys, kept for context keys [start, stop)
    (`draft.AttentionProbe`'s arithmetic, in numpy). The sequence may come in several
    forward calls: the probe keeps each layer's last queries as they pass and reads
    them against the cache's keys once the rows are all there (`importance`)."""

    def __init__(self, *, rows: int, prompt_length: int, context_start: int, context_stop: int,
                 pool_kernel: int, scaling: float):
        self.rows, self.prompt_length = rows, prompt_length
        self.context = slice(context_start, context_stop)
        self.pool_kernel, self.scaling = pool_kernel, np.float32(scaling)
        self._queries: dict[int, np.ndarray] = {}

    def observe(self, layer: int, query: np.ndarray) -> None:
        """A forward call's queries of one layer, (kv_heads, group, n, d) grouped as
        `Llama._grouped` (copied: the forward pass reuses its array)."""
        earlier = self._queries.get(layer)
        joined = query if earlier is None else np.concatenate([earlier, query], axis=2)
        self._queries[layer] = joined[:, :, -self.rows:].copy()

    def importance(self, cache: "KeyValueCache") -> np.ndarray:
        """(rows, context) once the cache holds the probe's last row."""
        first_position = cache.length - self.rows
        positions = first_position + np.arange(self.rows)
        mask = _causal_mask(positions, np.arange(self.prompt_length))
        importance = None
        for layer, query in sorted(self._queries.items()):
            kv_heads, group = query.shape[:2]
            rows = query.reshape(kv_heads, group * self.rows, -1)
            logits = (rows @ cache.keys[layer, :, :, :self.prompt_length]).reshape(
                kv_heads * group, self.rows, self.prompt_length) * self.scaling
            logits += mask
            logits -= logits.max(axis=-1, keepdims=True)
            probabilities = np.exp(logits)
            probabilities /= probabilities.sum(axis=-1, keepdims=True)
            pooled = avg_pool(probabilities[..., self.context], self.pool_kernel).max(axis=0)
            importance = pooled if importance is None else np.maximum(importance, pooled)
        return importance


def avg_pool(values: np.ndarray, kernel: int) -> np.ndarray:
    """`scoring.avg_pool` in numpy: the mean of each position's window along the last
    axis, over the positions that exist."""
    if kernel <= 1:
        return values
    length = values.shape[-1]
    sums = np.zeros(values.shape[:-1] + (length + 1,), dtype=np.float64)
    np.cumsum(values, axis=-1, out=sums[..., 1:])
    positions = np.arange(length)
    low = np.maximum(positions - kernel // 2, 0)
    high = np.minimum(positions + (kernel - 1) // 2 + 1, length)
    return ((sums[..., high] - sums[..., low]) / (high - low)).astype(np.float32)
