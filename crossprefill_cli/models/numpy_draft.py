"""The draft without torch: a Llama draft folder read window by window in numpy.

The bundled draft is a 5M-parameter Llama; importing torch and transformers costs
several times more than reading a few thousand tokens with it. This engine needs only
numpy, `tokenizers` (the draft's `tokenizer.json`) and `safetensors` (its weights), and
computes what the transformers engine (`draft.Draft`) computes, within float32 rounding:
the forward pass and probe of `numpy_llama`, the same greedy lookahead with a KV cache.
`reader.DraftReader` cuts the windows, as for the transformers engine; this engine
schedules them (`NumpyDraft._windows`): one window per core, the other windows' prompts
read beside the last one's while it generates the lookahead, a lone window's blocks on
every core.

`unsupported(folder)` says why a folder cannot run here (not a Llama, a rotary scaling
this engine does not implement, sharded weights, a tokenizer that is more than its
`tokenizer.json`); `backends` then uses transformers.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.loading import draft_fingerprint, draft_location, plain_tokenizer_file
from crossprefill_cli.models.numpy_llama import (KeyValueCache, Llama, LlamaShape, Probe, Runner,
                                                 block_edge, in_turn, load_tensors,
                                                 side_by_side, tensor_header)
from crossprefill_cli.models.reader import DraftReader, token_importance
from crossprefill_cli.models.threads import one_blas_thread, usable_cores
from crossprefill_cli.models.tokens import encode_plain, plain_tokenizer

WEIGHTS_FILE = "model.safetensors"
# Output-head positions per block when measuring surprise (as `draft.SURPRISE_BLOCK`).
SURPRISE_BLOCK = 1024
SUPPORTED_ROPE = (None, "default")


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
    header, _ = tensor_header(folder / WEIGHTS_FILE)
    return sum(int(np.prod(entry["shape"])) for entry in header.values())


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
        self._side_by_side = side_by_side(ThreadPoolExecutor(max_workers=self.cores,
                                                             thread_name_prefix="draft-blocks"))
        # the windows of every read run on the same threads: threads made afresh for each
        # read each took memory from a glibc arena of their own, and a long-running
        # server's resident memory kept rising (docs/reliability.md)
        self._window_pool = ThreadPoolExecutor(max_workers=self.cores,
                                               thread_name_prefix="draft-windows")

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
        while the last window is read. Reads at once from several threads share the
        pool without a deadlock: a window waits only for its own read's last window,
        which was queued before it and so has a thread already."""
        schedule = _Schedule(len(windows), self.cores, self._side_by_side)
        pool, submitted = self._window_pool, []
        try:
            generating = pool.submit(schedule.task(self._score_generating), windows[-1],
                                     query_ids, lookahead, pool_kernel, query_rows, surprise,
                                     schedule.run)
            submitted.append(generating)
            forced = [pool.submit(schedule.task(self._score_forced), window_ids, query_ids,
                                  lambda: generating.result()[1], max(lookahead - 1, 0),
                                  pool_kernel, query_rows, surprise, schedule.run)
                      for window_ids in windows[:-1]]
            submitted.extend(forced)
            importance, _, losses = generating.result()
            yield importance, losses
            for window in forced:
                yield window.result()
        finally:  # a read given up: its windows not begun are dropped, the begun end here
            for future in submitted:
                future.cancel()
            wait(submitted)

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
        edge = block_edge(len(prompt))
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
