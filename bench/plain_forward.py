"""The floor for any attention-based compressor: load the draft, tokenize, one forward.

    python -m bench.plain_forward INPUT DRAFT [--window N] [--device cpu] [--dtype auto]

Loads the draft as transformers does by default (SDPA attention), on the device and in
the dtype crossprefill would pick for `--device`/`--dtype` (same resolution, so both
sides compare the same arithmetic), tokenizes the whole input and runs the model once
with last-position logits only. With `--window N` it runs one such pass per window of
N tokens instead (the floor for a draft that can only attend over N positions).
Prints nothing; time it from outside.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from crossprefill_cli.models.draft import resolve_device, resolve_dtype
from crossprefill_cli.models.loading import draft_location, quiet_libraries


def load_plain(draft: str, device: torch.device, dtype: str = "auto"):
    """The draft's tokenizer and model, loaded the way transformers does by default."""
    location = draft_location(draft)
    with quiet_libraries():
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=resolve_dtype(dtype, device)).to(device).eval()
    tokenizer.model_max_length = int(1e30)  # as crossprefill: no length warning on long inputs
    return tokenizer, model


def forward_passes(tokenizer, model, text: str, window: int | None = None) -> None:
    """Tokenize `text` and run it through `model`, one pass per window (or one in all)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = window or len(ids)
    with torch.inference_mode():
        for start in range(0, len(ids), step):
            model(torch.tensor([ids[start:start + step]], device=model.device), logits_to_keep=1)
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("draft")
    parser.add_argument("--window", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    tokenizer, model = load_plain(args.draft, resolve_device(args.device), args.dtype)
    forward_passes(tokenizer, model, Path(args.input).read_text(encoding="utf-8"), args.window)


if __name__ == "__main__":
    main()
