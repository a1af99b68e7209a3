"""The floor for any attention-based compressor: load the draft, tokenize, one forward.

    python -m bench.plain_forward INPUT DRAFT [--window N] [--dtype auto]

Loads the draft as transformers does by default (SDPA attention), in the dtype
crossprefill would pick for `--dtype` (same resolution, so both sides compare the
same arithmetic), tokenizes
the whole input and runs the model once with last-position logits only. With
`--window N` it runs one such pass per window of N tokens instead (the floor for a
draft that can only attend over N positions). Prints nothing; time it from outside.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from crossprefill_cli.draft import resolve_dtype
from crossprefill_cli.loading import draft_location, quiet_transformers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("draft")
    parser.add_argument("--window", type=int)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    location = draft_location(args.draft)
    dtype = resolve_dtype(args.dtype, torch.device("cpu"))
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype).eval()
    tokenizer.model_max_length = int(1e30)  # as crossprefill: no length warning on long inputs
    ids = tokenizer(Path(args.input).read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
    step = args.window or len(ids)
    with torch.inference_mode():
        for start in range(0, len(ids), step):
            model(torch.tensor([ids[start:start + step]]), logits_to_keep=1)


if __name__ == "__main__":
    main()
