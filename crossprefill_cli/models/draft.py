"""The draft on transformers: loading it and reading its lookahead attention.

This engine runs any Hugging Face causal LM whose attention goes through transformers'
`AttentionInterface` (Llama, Qwen2/3, Mistral, Gemma, Phi, GPT-2, ...): the model is loaded with a registered attention
implementation, "crossprefill", that runs plain SDPA and, only when a forward call is
given an `AttentionProbe`, also computes the probe's queries against the prompt keys
(`scoring.lookahead_probabilities`). The prefill therefore never materialises S x S
attention; the probe adds O(heads x N x S) per layer, reduced on the spot.

How windows are cut and the lookahead is run is `reader.DraftReader`'s (shared with the
torch-free `numpy_draft`); this module runs one window's forward calls with the probe.

Surprise (`read(..., surprise=True)`) comes from the same forward calls: the draft's
loss on each context token given the tokens before it in its window, -log p(token).
The model's body runs once and its output head is applied to the context positions in
blocks, so a large vocabulary never holds S x V logits at once.
"""

import contextlib
import inspect
import os
from pathlib import Path

import numpy as np

from crossprefill_cli.models.threads import prefer_passive_waiting, usable_cores

prefer_passive_waiting()  # before torch loads OpenMP, which reads the policy then
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AttentionInterface  # noqa: E402
from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask  # noqa: E402

from crossprefill_cli.errors import ModelLoadError, UsageError
from crossprefill_cli.models import scoring
from crossprefill_cli.models.loading import (context_length_in, draft_fingerprint, draft_location,
                                             load_pretrained, quiet_libraries)
from crossprefill_cli.models.reader import DraftReader, token_importance
from crossprefill_cli.settings import check_device_and_dtype

ATTENTION_NAME = "crossprefill"
# Output-head positions per block when measuring surprise: bounds the logits' memory.
SURPRISE_BLOCK = 1024
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Forward calls on the CPU are padded at the end up to a multiple of this many positions,
# so that a long run of inputs meets a few sequence lengths instead of a new one each time:
# oneDNN keeps compiled kernels for every shape it meets (bfloat16), and a server or a
# batch grew by about 4 MiB per distinct input without it (docs/reliability.md).
# Causal attention keeps the padding out of every real position.
SHAPE_BUCKET = 64


class AttentionProbe:
    """Collects the layer-maxed, pooled attention of the last `rows` queries.

    Keys [context_start, context_stop) are the context tokens whose importance we
    want; the softmax runs over the first `prompt_length` keys (the whole prompt,
    never the lookahead tokens themselves).
    """

    def __init__(self, *, rows: int, prompt_length: int, context_start: int,
                 context_stop: int, pool_kernel: int, padding: int = 0):
        self.rows = rows
        self.padding = padding  # positions after the recorded rows, appended to fill a bucket
        self.prompt_length = prompt_length
        self.context = slice(context_start, context_stop)
        self.pool_kernel = pool_kernel
        self.importance: torch.Tensor | None = None

    def observe(self, query: torch.Tensor, key: torch.Tensor, scaling: float,
                sliding_window: int | None) -> None:
        if (sliding_window is not None and self.prompt_length > sliding_window) \
                or key.shape[2] < self.prompt_length:
            return  # a sliding-window layer cannot see the whole prompt: it has no say
        end = query.shape[2] - self.padding
        probs = scoring.lookahead_probabilities(
            query[0, :, end - self.rows:end, :], key[0, :, :self.prompt_length, :], scaling,
            first_position=key.shape[2] - self.padding - self.rows)
        layer = scoring.layer_importance(probs[..., self.context], self.pool_kernel)
        self.importance = layer if self.importance is None else torch.maximum(self.importance, layer)


def _attention_with_probe(module, query, key, value, attention_mask, **kwargs):
    probe = kwargs.pop("crossprefill_probe", None)
    if probe is not None:
        scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
        probe.observe(query, key, scaling, kwargs.get("sliding_window"))
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(ATTENTION_NAME, _attention_with_probe)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


class Draft(DraftReader):
    """A transformers causal LM read through its attention probe (see the module
    docstring); `DraftReader` runs its windows."""

    backend = "torch"

    def __init__(self, name: str, model: torch.nn.Module, tokenizer, device: torch.device,
                 context_length: int, fingerprint: str,
                 cache_argument: str = "past_key_values"):
        super().__init__(name, tokenizer, context_length, fingerprint, tokenizer.bos_token_id)
        self.model = model
        self.device = device
        self.bucket = SHAPE_BUCKET if device.type == "cpu" and full_attention_only(model) else 1
        # transformers 5.24 renamed the KV cache argument and output field
        # `past_key_values` to `cache` (the old name warns); older releases know only the old one
        self.cache_argument = cache_argument

    def _reading(self):
        return _inference_quietly()

    def _score_generating(self, window_ids, query_ids, lookahead, pool_kernel, query_rows=0,
                          surprise=False):
        """The last window: importance, the greedy lookahead tokens, surprise (or None)."""
        prompt = self.bos_ids + window_ids.tolist() + query_ids
        rows, generated = [], []
        probe = self._probe(query_rows + 1, len(prompt), len(window_ids), pool_kernel)
        output, logits, losses = self._prefill(prompt, probe, use_cache=True,
                                               surprise_tokens=len(window_ids) if surprise else 0)
        while True:
            rows.append(self._recorded(probe))
            token = int(logits[0, -1].argmax())
            if len(rows) == lookahead:
                break
            generated.append(token)
            probe = self._probe(1, len(prompt), len(window_ids), pool_kernel)
            cache = {self.cache_argument: output[self.cache_argument]}
            output = self.model(self._tensor([token]), use_cache=True, logits_to_keep=1,
                                crossprefill_probe=probe, **cache)
            logits = output.logits
        return token_importance(_numpy(torch.cat(rows)), query_rows), generated, losses

    def _score_teacher_forced(self, window_ids, query_ids, lookahead_ids, pool_kernel,
                              query_rows=0, surprise=False):
        """Another window, the lookahead given: importance, surprise (or None)."""
        prompt = self.bos_ids + window_ids.tolist() + query_ids
        # The lookahead rides along with the prompt: the causal mask gives each lookahead
        # query the same keys as a cached step would, in one forward call.
        probe = self._probe(query_rows + 1 + len(lookahead_ids), len(prompt), len(window_ids),
                            pool_kernel)
        _, _, losses = self._prefill(prompt + lookahead_ids, probe, use_cache=False,
                                     surprise_tokens=len(window_ids) if surprise else 0)
        return token_importance(_numpy(self._recorded(probe)), query_rows), losses

    def _prefill(self, ids: list[int], probe: AttentionProbe, *, use_cache: bool,
                 surprise_tokens: int = 0):
        """Run `ids` through the model in one call, the probe watching: the model's output,
        the logits at the last of `ids`, and the surprise of the first `surprise_tokens` tokens
        after the BOS (None when 0).

        The call's length is padded up to a multiple of `self.bucket` (SHAPE_BUCKET on the
        CPU): the padding comes after `ids`, so causal attention keeps it out of every real
        position; the probe skips its rows, the logits are the output head's on the last
        real position (the greedy lookahead's argmax is what it was; a model's final logit
        soft-capping, which this skips, keeps the order), and the KV cache is cut back
        before any lookahead step reads it.

        One call per window, not blocks through the KV cache: a block with a cache ahead
        of it needs an explicit attention mask, which SDPA runs without its fused kernel.
        Measured (README): blocks of 4,096 were slower on the CPU (61.7 s against 52.2 s
        for a 31k-token window of a 25M-parameter draft, peak memory 1.26 against 1.63
        GiB) and on an H100 (4.1 s against 2.9 s for 128k tokens); blocks of 16,384 were
        slower still and took more memory (74 s, 2.47 GiB).
        """
        padding = -len(ids) % self.bucket
        probe.padding = padding
        padded = self._tensor(ids + [ids[-1]] * padding)
        if not surprise_tokens:
            kept = {}  # padded: the body's last hidden states, for the last real position
            hook = self.model.base_model.register_forward_hook(
                lambda module, inputs, body: kept.update(hidden=body[0])) if padding else None
            try:
                output = self.model(padded, use_cache=use_cache, logits_to_keep=1,
                                    crossprefill_probe=probe)
            finally:
                if hook is not None:
                    hook.remove()
            if not padding:
                return output, output.logits, None
            self._unpad(output, padding)
            head = self.model.get_output_embeddings()
            return output, head(kept["hidden"][:, len(ids) - 1:len(ids)]), None
        # the body once, the head on the positions that predict context tokens (and the last)
        output = self.model.base_model(padded, use_cache=use_cache, crossprefill_probe=probe)
        self._unpad(output, padding)
        hidden = output.last_hidden_state[0, :len(ids)]
        head = self.model.get_output_embeddings()
        offset = len(self.bos_ids)
        targets = self._tensor(ids[offset:offset + surprise_tokens])[0]
        losses = np.zeros(surprise_tokens)
        # without a BOS the first token has nothing before it: its surprise stays 0
        for block in range(1 - offset, surprise_tokens, SURPRISE_BLOCK):
            stop = min(block + SURPRISE_BLOCK, surprise_tokens)
            logits = head(hidden[offset + block - 1:offset + stop - 1]).float()
            losses[block:stop] = F.cross_entropy(logits, targets[block:stop],
                                                 reduction="none").cpu().numpy()
        return output, head(hidden[-1:])[None], losses

    def _unpad(self, output, padding: int) -> None:
        """Cut the padding's positions out of the KV cache the forward call left."""
        cache = output.get(self.cache_argument)
        if padding and cache is not None:
            cache.crop(-padding)

    def _probe(self, rows: int, prompt_length: int, window_length: int,
               pool_kernel: int) -> AttentionProbe:
        return AttentionProbe(rows=rows, prompt_length=prompt_length,
                              context_start=len(self.bos_ids),
                              context_stop=len(self.bos_ids) + window_length,
                              pool_kernel=pool_kernel)

    @staticmethod
    def _recorded(probe: AttentionProbe) -> torch.Tensor:
        if probe.importance is None:
            raise UsageError("every attention layer of this draft has a sliding window shorter "
                             "than the prompt; pass a smaller --window")
        return probe.importance

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], dtype=torch.long, device=self.device)


@contextlib.contextmanager
def _inference_quietly():
    with torch.inference_mode(), quiet_libraries():
        yield


def _numpy(rows: torch.Tensor) -> np.ndarray:
    return rows.float().cpu().numpy()


def full_attention_only(model: torch.nn.Module) -> bool:
    """Whether every attention layer of `model` sees the whole sequence (no sliding window,
    no linear attention), so that positions padded at the end change nothing before them
    and its KV cache can be cut back."""
    config = model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return not getattr(config, "sliding_window", None)


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: no MPS device is available")
    return torch.device(spec)


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on CUDA and on CPUs with native bf16 arithmetic, fp32 elsewhere.

    Measured here (bench/dtype.py, AVX-512 BF16 CPU): bf16 scores 1.5x faster than
    fp32 with the same chunk ranking (rank correlation 0.9998). Without native
    support bf16 is emulated on the CPU and slower than fp32.
    """
    if spec == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return torch.bfloat16 if native else torch.float32
    return TORCH_DTYPES[spec]


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to know, stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_draft(spec: str, *, device: str = "auto", dtype: str = "auto") -> Draft:
    """Load a draft by hub id, local directory or `builtin`; raise `ModelLoadError`."""
    check_device_and_dtype(device, dtype)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    location = draft_location(spec)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, location, what=f"draft {spec}",
                                trust_remote_code=False)
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, location, what=f"draft {spec}",
                            trust_remote_code=False, dtype=torch_dtype,
                            attn_implementation=ATTENTION_NAME)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"draft {spec}: its tokenizer has no fast (Rust) version, "
                             "which is needed for character offsets")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(usable_cores())  # the cores we may use, not all
    model.to(torch_device).eval()
    # Long inputs are scored window by window, so the tokenizer's length warning
    # ("longer than the specified maximum sequence length") does not apply.
    tokenizer.model_max_length = int(1e30)
    context_length = context_length_in(model.config.to_dict())
    cache_argument = ("cache" if "cache" in inspect.signature(model.forward).parameters
                      else "past_key_values")
    return Draft(spec, model, tokenizer, torch_device, int(context_length),
                 draft_fingerprint(spec), cache_argument)
