"""Speed and memory of `crossprefill compress` next to the floor, measured in one run.

For each input size (target tokens of Debian-handbook prose), three whole processes,
each timed from outside with /usr/bin/time (wall seconds, peak RSS: host memory, not
a GPU's), best of `--repeats` runs:

- `crossprefill compress` with the draft, `--no-cache` (the real cost);
- the floor, `bench.plain_forward`: load the same draft, tokenize, one forward pass
  with last-position logits only; and, for drafts whose context is shorter than the
  input, one such pass per window (the floor for a draft that cannot attend further);
- `crossprefill compress` again at another keep rate, with the score cache warm.

    python -m bench.speed --draft builtin --sizes 1000,4000,16000,32000,64000

Pause anything else that uses the CPU first: contention distorts timings severalfold.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from crossprefill_cli.draft import load_draft

from .corpora import handbook_paragraphs
from .targets import bench_target


def timed(command: list[str], env: dict, repeats: int = 1) -> tuple[float, float]:
    """Best wall seconds and largest peak resident memory (GiB) of `repeats` whole runs.

    The best of several runs, because a single run on a shared 2-core machine varies by
    a fifth or more (seen here: 9.4 s and 11.6 s for the same command). With repeats,
    one untimed run goes first: the first process after a while reads its libraries
    from disk, and whichever command ran first looked up to 1.5x slower (seen here).
    """
    if repeats > 1:
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    runs = []
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%e %M", *command],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            seconds, kilobytes = report.read().split()[-2:]
        runs.append((float(seconds), int(kilobytes) / 1024 ** 2))
    return min(seconds for seconds, _ in runs), max(memory for _, memory in runs)


def prose(tokens: int, count) -> str:
    paragraphs, chosen, total = handbook_paragraphs(), [], 0
    while total < tokens:
        paragraph = paragraphs[len(chosen) % len(paragraphs)]
        chosen.append(paragraph)
        total += count(paragraph + "\n\n")
    return "\n\n".join(chosen) + "\n"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _ratio(seconds: float, floor: float | None) -> str:
    return "—" if floor is None else f"{seconds / floor:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--sizes", default="1000,4000,16000,32000,64000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--device", default="cpu", help="as compress's --device (cpu, cuda, ...)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; the best counts")
    parser.add_argument("--one-pass-limit", type=int, default=32000,
                        help="largest input to time the one-pass floor on (it is quadratic)")
    args = parser.parse_args()
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    env = {**os.environ, "CROSSPREFILL_CACHE_DIR": tempfile.mkdtemp(prefix="crossprefill-bench-")}
    python = sys.executable
    print(f"draft {args.draft} (context {draft.context_length}, "
          f"{str(next(draft.model.parameters()).dtype).removeprefix('torch.')} on both sides), "
          f"target {target.name}, "
          f"{draft.device}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}\n")
    print("| input tokens | draft tokens | compress | one-pass floor | ratio | windowed floor "
          "| ratio | peak memory | cached re-run |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"input-{size}.txt"
            text = prose(size, target.count)
            path.write_text(text, encoding="utf-8")
            draft_tokens = len(draft.encode(text)[0])
            compress = [python, "-m", "crossprefill_cli", "compress", str(path), "-d", args.draft,
                        "-t", "o200k_base", "--device", args.device, "--quiet", "-r", "0.3"]
            seconds, memory = timed([*compress, "--no-cache"], env, args.repeats)
            timed(compress, env)  # fill the cache
            rerun, _ = timed([*compress[:-1], "0.2"], env, args.repeats)
            floor = [python, "-m", "bench.plain_forward", str(path), args.draft,
                     "--device", args.device]
            one_pass = (timed(floor, env, args.repeats)[0] if draft_tokens <= args.one_pass_limit
                        else None)
            window = draft.context_length - len(draft.bos_ids) - 8  # as compress, no query
            windowed = timed([*floor, "--window", str(window)], env, args.repeats)[0] \
                if draft_tokens > window else one_pass
            print(f"| {size:,} | {draft_tokens:,} | {seconds:.2f} s | {_seconds(one_pass)} | "
                  f"{_ratio(seconds, one_pass)} | {_seconds(windowed)} | "
                  f"{_ratio(seconds, windowed)} | {memory:.2f} GiB | "
                  f"{rerun:.2f} s ({100 * rerun / seconds:.0f}%) |", flush=True)


if __name__ == "__main__":
    main()
