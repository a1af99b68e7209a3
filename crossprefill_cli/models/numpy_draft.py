"""The draft without torch: a Llama forward pass in numpy, float32, on the CPU.

The bundled draft is a 5M-parameter Llama; importing torch and transformers costs
several times more than reading a few thousand tokens with it. This engine needs only
numpy, `tokenizers` (the draft's `tokenizer.json`) and `safetensors` (its weights), and
computes what the transformers engine (`draft.Draft`) computes, within float32
rounding: the same forward (RMSNorm, rotary positions, grouped-query attention, SwiGLU,
optional biases, tied or separate output head), the same lookahead with a KV cache, and
the same probe, softmax(q K^T / sqrt(d)) of the recorded rows over the prompt keys,
pooled, maxed over heads and layers (`scoring`'s formulas). `reader.DraftReader` cuts
the windows, as for the transformers engine.

Attention runs in blocks of query rows, each against the keys it may see, so memory is
O(heads x block x S) and the causal half of the work is skipped. Matrix products go to
numpy's BLAS, held to one thread: OpenBLAS's result for a product depends on how many
threads share it (measured here: some shapes, such as 256 x 1040 by 1040 x 32, differ in
the last bits between 1 and 2 threads), and a tie in the last bit can flip a chunk.
The cores are used instead by running several windows side by side, or one window's
blocks of `BLOCK` rows side by side (`Llama.forward`): the blocks are the same whatever
runs them, so the scores are the same bytes in every process and with any number of
cores.

`unsupported(folder)` says why a folder cannot run here (not a Llama, a rotary scaling
this engine does not implement, sharded weights, a tokenizer that is more than its
`tokenizer.json`); `backends` then uses transformers.
"""

import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.loading import (context_length_in, draft_fingerprint, draft_location,
                                             plain_tokenizer_file)
from crossprefill_cli.models.reader import DraftReader, token_importance
from crossprefill_cli.models.threads import one_blas_thread, usable_cores
from crossprefill_cli.models.tokens import encode_plain, plain_tokenizer

WEIGHTS_FILE = "model.safetensors"
# Rows (tokens) per block of a forward pass: bounds the attention scores, lets a block
# of queries skip the keys after its last row, and is the unit that runs on a core.
BLOCK = 256
# Output-head positions per block when measuring surprise (as `draft.SURPRISE_BLOCK`).
SURPRISE_BLOCK = 1024
SUPPORTED_ROPE = (None, "default")
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


def unsupported(folder: Path) -> str | None:
    """Why the draft in `folder` cannot run on this engine, or None when it can."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "its config.json cannot be read"
    if config.get("model_type") != "llama":
        return f"it is a {config.get('model_type')!r} model, not a Llama"
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type")) not in SUPPORTED_ROPE:
        return f"its rotary scaling {rope.get('rope_type', rope.get('type'))!r} is not implemented here"
    if config.get("hidden_act", "silu") != "silu":
        return f"its activation {config.get('hidden_act')!r} is not SiLU"
    if not (folder / WEIGHTS_FILE).is_file():
        return f"its weights are not one {WEIGHTS_FILE}"
    if plain_tokenizer_file(str(folder)) is None:
        return "its tokenizer is more than a tokenizer.json"
    return None


def parameter_count(folder: Path) -> int:
    """The draft's parameters, from its weights file's header (nothing else is read)."""
    return sum(int(np.prod(entry["shape"])) for entry in _header(folder / WEIGHTS_FILE)[0].values())


def _header(path: Path) -> tuple[dict, int]:
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
    header, data_start = _header(path)
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


class _Schedule:
    """How one read's forward passes run their blocks: in turn while at least as many
    windows as cores are left to read (each window keeps a core busy), side by side on
    the draft's block threads once fewer are (the last windows, or a lone one, use every
    core)."""

    def __init__(self, windows: int, cores: int, side_by_side: Runner):
        self.left, self.cores, self._side_by_side = windows, cores, side_by_side
        self._lock = threading.Lock()

    def run(self, work: Callable[[slice], None], blocks: list[slice]) -> None:
        (self._side_by_side if self.left < self.cores else in_turn)(work, blocks)

    def task(self, read: Callable) -> Callable:
        """`read`, counted off the windows left when it ends."""
        def counted(*args):
            try:
                return read(*args)
            finally:
                with self._lock:
                    self.left -= 1
        return counted


class NumpyDraft(DraftReader):
    """A Llama draft read by `Llama` (see the module docstring)."""

    backend = "numpy"

    def __init__(self, name: str, folder: Path):
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        shape = LlamaShape.of(config)
        tokenizer_file = plain_tokenizer_file(str(folder))
        self.tokenizer_file = tokenizer_file
        tokenizer = plain_tokenizer(tokenizer_file)
        super().__init__(name, tokenizer, shape.context_length, draft_fingerprint(name),
                         _bos_id(folder, tokenizer))
        self.model = Llama(shape, load_tensors(folder / WEIGHTS_FILE))
        # a window's blocks run side by side on these threads when a core is free (`_Schedule`)
        self.cores = usable_cores()
        self._side_by_side = side_by_side(ThreadPoolExecutor(max_workers=self.cores))

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return encode_plain(self.tokenizer_file, text)

    def _reading(self):
        return one_blas_thread()

    def _windows(self, windows, query_ids, lookahead, pool_kernel, query_rows, surprise):
        """The windows side by side, one per core, the last one (which generates the
        lookahead) first; the others read their prompts at once and their lookahead rows
        when it is generated. The rows of a prompt up to its last block edge do not
        depend on the lookahead, and a forward pass split there runs the very blocks of
        one call over prompt and lookahead, so the scores are the bytes of reading each
        window in one call after the last: only now no core waits for the lookahead
        while the last window is read."""
        schedule = _Schedule(len(windows), self.cores, self._side_by_side)
        pool = ThreadPoolExecutor(max_workers=self.cores)
        try:
            generating = pool.submit(schedule.task(self._score_generating), windows[-1],
                                     query_ids, lookahead, pool_kernel, query_rows, surprise,
                                     schedule.run)
            forced = [pool.submit(schedule.task(self._score_forced), window_ids, query_ids,
                                  lambda: generating.result()[1], max(lookahead - 1, 0),
                                  pool_kernel, query_rows, surprise, schedule.run)
                      for window_ids in windows[:-1]]
            importance, _, losses = generating.result()
            yield importance, losses
            for window in forced:
                yield window.result()
        finally:
            pool.shutdown(cancel_futures=True)

    def _score_generating(self, window_ids, query_ids, lookahead, pool_kernel, query_rows,
                          surprise, run):
        prompt = self.bos_ids + window_ids.tolist() + query_ids
        cache = KeyValueCache(self.model.shape, len(prompt) + lookahead)
        probe = self._probe(query_rows + 1, len(prompt), len(window_ids), pool_kernel)
        hidden = self.model.forward(prompt, cache, probe, run,
                                    slice(None) if surprise else slice(-1, None))
        losses = self._surprise(hidden, prompt, len(window_ids)) if surprise else None
        rows, generated = [probe.importance(cache)], []
        last = hidden[-1:]
        while len(rows) < lookahead:
            generated.append(int(self.model.logits(last)[0].argmax()))
            probe = self._probe(1, len(prompt), len(window_ids), pool_kernel)
            last = self.model.forward(generated[-1:], cache, probe, run)
            rows.append(probe.importance(cache))
        return token_importance(np.concatenate(rows), query_rows), generated, losses

    def _score_forced(self, window_ids, query_ids, lookahead_ids: Callable[[], list[int]],
                      lookahead_count: int, pool_kernel, query_rows, surprise, run):
        """Another window: its prompt up to the last block edge, then (once
        `lookahead_ids()` has them) the rest and the lookahead, its rows recorded."""
        prompt = self.bos_ids + window_ids.tolist() + query_ids
        cache = KeyValueCache(self.model.shape, len(prompt) + lookahead_count)
        probe = self._probe(query_rows + 1 + lookahead_count, len(prompt), len(window_ids),
                            pool_kernel)
        outputs = slice(None) if surprise else slice(0, 0)
        edge = len(prompt) // BLOCK * BLOCK
        hidden = [self.model.forward(prompt[:edge], cache, probe, run, outputs)] if edge else []
        rest = prompt[edge:] + lookahead_ids()
        if rest:
            hidden.append(self.model.forward(rest, cache, probe, run, outputs))
        losses = self._surprise(np.concatenate(hidden), prompt, len(window_ids)) \
            if surprise else None
        return token_importance(probe.importance(cache), query_rows), losses

    def _surprise(self, hidden: np.ndarray, prompt: list[int], count: int) -> np.ndarray:
        """-log p of each of the `count` context tokens after the BOS, given those before
        it (as `draft.Draft._prefill`; without a BOS the first token's stays 0)."""
        offset = len(self.bos_ids)
        targets = np.asarray(prompt[offset:offset + count])
        losses = np.zeros(count)
        for block in range(1 - offset, count, SURPRISE_BLOCK):
            stop = min(block + SURPRISE_BLOCK, count)
            logits = self.model.logits(hidden[offset + block - 1:offset + stop - 1])
            peak = logits.max(axis=-1, keepdims=True)
            total = np.log(np.exp(logits - peak).sum(axis=-1)) + peak[:, 0]
            losses[block:stop] = total - logits[np.arange(stop - block), targets[block:stop]]
        return losses

    def _probe(self, rows: int, prompt_length: int, window_length: int, pool_kernel: int) -> Probe:
        return Probe(rows=rows, prompt_length=prompt_length, context_start=len(self.bos_ids),
                     context_stop=len(self.bos_ids) + window_length, pool_kernel=pool_kernel,
                     scaling=self.model.shape.head_dim ** -0.5)


def _bos_id(folder: Path, tokenizer) -> int | None:
    """The BOS token as transformers reads it: the `bos_token` the tokenizer's config
    names (a string or an added-token object), None when it names none."""
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    bos = config.get("bos_token")
    if isinstance(bos, dict):
        bos = bos.get("content")
    return None if bos is None else tokenizer.token_to_id(bos)


def load_numpy_draft(spec: str) -> NumpyDraft:
    """Load a Llama draft folder (or `builtin`) for this engine; `ModelLoadError` when it
    cannot run here (see `unsupported`)."""
    folder = Path(draft_location(spec))
    reason = unsupported(folder) if folder.is_dir() else "it is not a local folder"
    if reason is not None:
        raise ModelLoadError(f"draft {spec} cannot run without torch: {reason}")
    try:
        return NumpyDraft(spec, folder)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"cannot load draft {spec}: {type(error).__name__}: {error}") from None
