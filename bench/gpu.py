"""A Qwen3-0.6B-shaped draft on a GPU: compress next to one plain forward, in one process.

    python -m bench.gpu --tokenizer QWEN_TOKENIZER_DIR --sizes 32000,128000

The draft has Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads, 8 KV heads,
head_dim 128, vocab 151,936, context 40,960) with random weights (`bench.random_draft`):
timings only, its rankings mean nothing. It is saved with the real Qwen tokenizer into
`--out` and loaded through crossprefill's normal `--draft DIR` code (custom attention
and all); the floor loads the same folder the way transformers does by default
(`bench.plain_forward`).

Both load once, so the numbers are steady-state seconds per input, the best of
`--repeats` after one warm-up: `compress` is the whole library call (tokenizing,
scoring window by window, counting target tokens, selection, rendering); the floors are
tokenizing plus one forward pass with last-position logits only, over the whole input
and over the windows compress uses. Whole-process times (CUDA start and model load
included) come from `python -m bench.speed --draft OUT --device cuda`.
"""

import argparse
import time
from pathlib import Path

import torch

from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.pipeline.job import compress

from .plain_forward import forward_passes, load_plain
from .random_draft import SHAPES, build_random_draft
from .speed import prose
from .targets import bench_target


def best_seconds(run, repeats: int) -> float:
    run()  # warm-up: kernel selection, allocator growth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True,
                        help="folder with a Qwen2/2.5/3 tokenizer.json and tokenizer_config.json")
    parser.add_argument("--out", type=Path, default=Path("/tmp/qwen3-0.6b-random"))
    parser.add_argument("--sizes", default="1000,4000,16000,32000,64000,128000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=SHAPES["qwen3-0.6b"]["num_hidden_layers"],
                        help="fewer layers for a quick check of the script itself")
    args = parser.parse_args()
    parameters = build_random_draft("qwen3-0.6b", args.out, args.tokenizer,
                                    num_hidden_layers=args.layers)
    draft = load_draft(str(args.out), device=args.device)
    tokenizer, plain_model = load_plain(str(args.out), draft.device)
    target = bench_target(draft)
    name = torch.cuda.get_device_name() if draft.device.type == "cuda" else "CPU"
    print(f"Qwen3-0.6B-shaped draft, random weights, {parameters / 1e6:.0f}M parameters, "
          f"{str(next(draft.model.parameters()).dtype).removeprefix('torch.')}, {name}; "
          f"target {target.name}; best of {args.repeats} after a warm-up\n")
    print("| input tokens | draft tokens | windows | compress | one-pass floor | ratio "
          "| windowed floor | ratio | peak GPU memory |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        text = prose(size, target.count)
        draft_tokens = len(draft.encode(text)[0])
        if draft.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = None

        def run_compress():
            nonlocal result
            result = compress(text, keep_rate=0.3, draft=draft, target=target)

        seconds = best_seconds(run_compress, args.repeats)
        memory = (torch.cuda.max_memory_allocated() / 1024 ** 3
                  if draft.device.type == "cuda" else float("nan"))
        one_pass = best_seconds(lambda: forward_passes(tokenizer, plain_model, text), args.repeats)
        window = -(-draft_tokens // result.windows)
        windowed = best_seconds(lambda: forward_passes(tokenizer, plain_model, text, window),
                                args.repeats)
        print(f"| {size:,} | {draft_tokens:,} | {result.windows} | {seconds:.2f} s | "
              f"{one_pass:.2f} s | {seconds / one_pass:.2f}x | {windowed:.2f} s | "
              f"{seconds / windowed:.2f}x | {memory:.1f} GiB |", flush=True)


if __name__ == "__main__":
    main()
