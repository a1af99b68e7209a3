"""Drafts of a given shape with random weights, for timing and memory benchmarks only.

    python -m bench.random_draft qwen3-0.6b OUT --tokenizer QWEN_TOKENIZER_DIR
    python -m bench.random_draft llama-25m OUT

Speed and memory depend on a draft's shape, not on what it learned, so a folder with
random weights and a real tokenizer stands in for a trained model of that shape and
loads through the normal `--draft DIR` code. Its rankings mean nothing.

- `qwen3-0.6b`: Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads, 8 KV heads,
  head_dim 128, vocab 151,936, context 40,960); pass a Qwen2/2.5/3 tokenizer folder.
- `llama-25m`: a 25M-parameter Llama (hidden 512, 6 layers, 8 heads, FFN 1536) with the
  bundled draft's tokenizer (vocab 8,192) and a 32,768-token context, so an input of
  up to 32k draft tokens is one window: the case where the draft's memory would grow
  with the input.
"""

import argparse
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from crossprefill_cli.models.loading import builtin_path

SHAPES = {
    "qwen3-0.6b": dict(model_type="qwen3", hidden_size=1024, intermediate_size=3072,
                       num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                       head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                       rope_theta=1_000_000, tie_word_embeddings=True),
    "llama-25m": dict(model_type="llama", hidden_size=512, intermediate_size=1536,
                      num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8,
                      vocab_size=8192, max_position_embeddings=32768, bos_token_id=0,
                      eos_token_id=1, tie_word_embeddings=True),
}


def build_random_draft(shape: str, out: Path, tokenizer_dir: Path | None = None,
                       **overrides) -> int:
    """Save a random draft of `shape` (with `overrides`) and its tokenizer; its parameters."""
    settings = {**SHAPES[shape], **overrides}
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy((tokenizer_dir or builtin_path()) / name, out / name)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--tokenizer", type=Path,
                        help="tokenizer folder (default: the bundled draft's)")
    args = parser.parse_args()
    if args.shape == "qwen3-0.6b" and args.tokenizer is None:
        parser.error("qwen3-0.6b needs --tokenizer: a Qwen tokenizer folder (vocab 151,936)")
    parameters = build_random_draft(args.shape, args.out, args.tokenizer)
    print(f"{args.shape}: {parameters / 1e6:.1f}M parameters, random weights, in {args.out}")


if __name__ == "__main__":
    main()
