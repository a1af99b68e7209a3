"""Speed and memory of `crossprefill compress` next to the floor, measured in one run.

For each input size (target tokens of Debian-handbook prose), these whole processes,
each timed from outside with /usr/bin/time (wall seconds, peak RSS: host memory, not
a GPU's):

- `crossprefill compress` with the draft, `--no-cache` (the real cost), with the default
  scorer (`evidence`: attention, surprise and the question's words) and with
  `--scorer attention` (the paper's scorer: no output head over the context), both
  asked the same `--query`;
- the floor, `bench.plain_forward`: load the same draft, tokenize, one forward pass
  with last-position logits only; and, for drafts whose context is shorter than the
  input, one such pass per window (the floor for a draft that cannot attend further);
- `crossprefill compress` again at another keep rate, with the score cache warm.

Each command runs once untimed, then `--rounds` times in turn with the others (round 1:
compress, floors, cached re-run; round 2: the same; ...), so a slow minute of the
machine slows both sides of a ratio alike. A cell is the median over the rounds, and a
ratio the median of the rounds' ratios.

    python -m bench.speed --draft builtin --sizes 1000,4000,16000,32000,64000

Pause anything else that uses the CPU first: contention distorts timings severalfold.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.pipeline.profiles import load_profile

from .corpora import handbook_paragraphs
from .targets import bench_target


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GiB) of one whole run of `command`."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%e %M", *command],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        seconds, kilobytes = report.read().split()[-2:]
    return float(seconds), int(kilobytes) / 1024 ** 2


def rounds(commands: dict[str, list[str]], env: dict, count: int) -> dict[str, list[tuple[float, float]]]:
    """Every command once untimed (the first process after a while reads its libraries
    from disk: whichever ran first looked up to 1.5x slower here), then `count` timed
    rounds of all of them in turn. On a shared 2-core machine one command's time moves
    by a fifth between runs (seen here: 9.4 s and 11.6 s); taking the sides of a ratio
    from the same round keeps such drifts out of it."""
    for command in commands.values():
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(count):
        for name, command in commands.items():
            runs[name].append(timed(command, env))
    return runs


def prose(tokens: int, count) -> str:
    paragraphs, chosen, total = handbook_paragraphs(), [], 0
    while total < tokens:
        paragraph = paragraphs[len(chosen) % len(paragraphs)]
        chosen.append(paragraph)
        total += count(paragraph + "\n\n")
    return "\n\n".join(chosen) + "\n"


def _median_seconds(runs: list[tuple[float, float]]) -> float:
    return statistics.median(seconds for seconds, _ in runs)


def _seconds(runs: list[tuple[float, float]] | None) -> str:
    return "—" if runs is None else f"{_median_seconds(runs):.2f} s"


def _ratio(runs: list[tuple[float, float]], floor: list[tuple[float, float]] | None) -> str:
    if floor is None:
        return "—"
    return f"{statistics.median(a / b for (a, _), (b, _) in zip(runs, floor)):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--sizes", default="1000,4000,16000,32000,64000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--device", default="cpu", help="as compress's --device (cpu, cuda, ...)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per size")
    parser.add_argument("--query", default="How does the package manager verify what it "
                        "installs?", help="the question both compress runs are asked")
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
          f"{draft.device}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"median of {args.rounds} rounds\n")
    print("| input tokens | draft tokens | compress | attention scorer | default / attention "
          "| one-pass floor | ratio | windowed floor | ratio | peak memory | cached re-run |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"input-{size}.txt"
            text = prose(size, target.count)
            path.write_text(text, encoding="utf-8")
            draft_tokens = len(draft.encode(text)[0])
            compress = [python, "-m", "crossprefill_cli", "compress", str(path), "-d", args.draft,
                        "-t", "o200k_base", "--device", args.device, "--quiet", "-q", args.query,
                        "-r", "0.3"]
            floor = [python, "-m", "bench.plain_forward", str(path), args.draft,
                     "--device", args.device]
            # as compress: the draft's context less the BOS, the query prompt and the lookahead
            prompt = load_profile("text").query_template.replace("{query}", args.query)
            window = (draft.context_length - len(draft.bos_ids) - len(draft.encode(prompt)[0])
                      - 8)
            commands = {"compress": [*compress, "--no-cache"],
                        "attention": [*compress, "--no-cache", "--scorer", "attention"]}
            if draft_tokens <= args.one_pass_limit:
                commands["one pass"] = floor
            if draft_tokens > window:
                commands["windowed"] = [*floor, "--window", str(window)]
            # the untimed first run of the cached re-run stores the scores it then reads
            commands["cached"] = [*compress[:-1], "0.2"]
            runs = rounds(commands, env, args.rounds)
            one_pass = runs.get("one pass")
            windowed = runs.get("windowed", one_pass)
            seconds, rerun = _median_seconds(runs["compress"]), _median_seconds(runs["cached"])
            memory = max(m for _, m in runs["compress"])
            print(f"| {size:,} | {draft_tokens:,} | {seconds:.2f} s | "
                  f"{_seconds(runs['attention'])} | {_ratio(runs['compress'], runs['attention'])} | "
                  f"{_seconds(one_pass)} | "
                  f"{_ratio(runs['compress'], one_pass)} | {_seconds(windowed)} | "
                  f"{_ratio(runs['compress'], windowed)} | {memory:.2f} GiB | "
                  f"{rerun:.2f} s ({100 * rerun / seconds:.0f}%) |", flush=True)


if __name__ == "__main__":
    main()
