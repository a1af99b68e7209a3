"""Speed and memory of `crossprefill compress` on its two engines, measured in one run.

For each input size (target tokens of Debian-handbook prose), these whole processes,
each timed from outside with /usr/bin/time (wall seconds, peak RSS: host memory, not
a GPU's):

- `crossprefill compress --no-cache` as a user runs it (the default engine: numpy for
  the bundled draft, `models.backends`), asked a `--query`, default scorer;
- the same with `--backend torch` (the transformers engine, in the dtype `--dtype auto`
  picks: bfloat16 on CPUs with native bf16), the only engine before there were two;
- `python -c "import torch, transformers; from transformers import LlamaForCausalLM"`:
  what importing the transformers engine's libraries alone costs;
- `crossprefill compress` again at another keep rate, with the score cache warm.

Each command runs once untimed, then `--rounds` times in turn with the others (round 1:
compress, torch compress, torch import, cached re-run; round 2: the same; ...), so a
slow minute of the machine slows both sides of a ratio alike. A cell is the median over
the rounds, and a ratio the median of the rounds' ratios.

With `--warm-tokens N` it then times each engine in a warm process of its own reading
the same N-token input as `compress` does (window, lookahead, question rows), once
untimed and `--rounds` times: the throughput `serve` and `batch` get.

    python -m bench.speed --draft builtin --sizes 1000,4000,16000,32000,64000 --warm-tokens 32000

Pause anything else that uses the CPU first: contention distorts timings severalfold.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crossprefill_cli.models.backends import choose_backend, load_with
from crossprefill_cli.pipeline.analysis import _query_prompt, _window_size
from crossprefill_cli.pipeline.draft_source import DraftSource
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


def timed_reads(draft_name: str, engine: str, device: str, path: str, query: str,
                rounds: int) -> None:
    """In this process: load the draft on `engine`, read the text at `path` as `compress`
    would (window, lookahead, question rows) once untimed and `rounds` times timed, and
    print the draft tokens and the seconds of each as JSON."""
    settings = DraftSource(draft_name, device=device, dtype="auto").settle(load_profile("text"))
    draft = load_with(choose_backend(draft_name, engine, device=device, dtype="auto"),
                      draft_name, device=device, dtype="auto")
    ids, _ = draft.encode(Path(path).read_text(encoding="utf-8"))
    query_ids, query_rows = _query_prompt(draft, settings, query)
    window = _window_size(draft, None, len(query_ids), settings.lookahead)
    seconds = []
    for turn in range(rounds + 1):
        started = time.perf_counter()
        draft.read(ids, query_ids, lookahead=settings.lookahead,
                   pool_kernel=settings.pool_kernel, window=window, query_rows=query_rows)
        if turn:
            seconds.append(time.perf_counter() - started)
    print(json.dumps({"tokens": len(ids), "seconds": seconds}))


def warm_throughput(draft_name: str, device: str, text: str, query: str, rounds: int,
                    env: dict) -> None:
    """Each engine in a process of its own (one process holding both slowed numpy by
    half: torch's threads and libraries stay), reading the same text in turn."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as source:
        source.write(text)
        source.flush()
        runs = {}
        for engine in ("numpy", "torch"):
            done = subprocess.run([sys.executable, "-m", "bench.speed", "--draft", draft_name,
                                   "--device", device, "--query", query, "--rounds",
                                   str(rounds), "--read-only", engine, source.name],
                                  check=True, env=env, capture_output=True, text=True)
            runs[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    tokens = runs["numpy"]["tokens"]
    print(f"\nwarm process, {tokens:,} draft tokens, median of {rounds} reads after one "
          "untimed:")
    for engine, run in runs.items():
        seconds = statistics.median(run["seconds"])
        print(f"- {engine}: {seconds:.2f} s, {tokens / seconds:,.0f} draft tokens/s")
    ratio = statistics.median(runs["numpy"]["seconds"]) / statistics.median(runs["torch"]["seconds"])
    print(f"- numpy / torch time: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--sizes", default="1000,4000,16000,32000,64000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--device", default="cpu", help="as compress's --device (cpu, cuda, ...)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per size")
    parser.add_argument("--query", default="How does the package manager verify what it "
                        "installs?", help="the question both compress runs are asked")
    parser.add_argument("--warm-tokens", type=int, default=0,
                        help="also time both engines in warm processes on this many target tokens")
    parser.add_argument("--read-only", nargs=2, metavar=("ENGINE", "PATH"),
                        help="(internal) time one engine reading PATH, see `timed_reads`")
    args = parser.parse_args()
    if args.read_only:
        timed_reads(args.draft, args.read_only[0], args.device, args.read_only[1], args.query,
                    args.rounds)
        return
    from crossprefill_cli.models.draft import load_draft  # here: `--read-only numpy` is torch-free

    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    env = {**os.environ, "CROSSPREFILL_CACHE_DIR": tempfile.mkdtemp(prefix="crossprefill-bench-")}
    python = sys.executable
    chosen = choose_backend(args.draft, "auto", device=args.device, dtype="auto")
    print(f"draft {args.draft} (context {draft.context_length}; default engine "
          f"{chosen.name}{'' if chosen.reason is None else f' ({chosen.reason})'}; torch "
          f"engine in {str(next(draft.model.parameters()).dtype).removeprefix('torch.')}), "
          f"target {target.name}, {args.device}, {os.cpu_count()} CPUs, "
          f"median of {args.rounds} rounds\n")
    print("| input tokens | draft tokens | compress | peak memory | compress --backend torch "
          "| peak memory | time ratio | memory ratio | import torch, transformers | ratio "
          "| cached re-run |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    imports = [python, "-c", "import torch, transformers; from transformers import LlamaForCausalLM"]
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"input-{size}.txt"
            text = prose(size, target.count)
            path.write_text(text, encoding="utf-8")
            draft_tokens = len(draft.encode(text)[0])
            compress = [python, "-m", "crossprefill_cli", "compress", str(path), "-d", args.draft,
                        "-t", "o200k_base", "--device", args.device, "--quiet", "-q", args.query,
                        "-r", "0.3"]
            commands = {"compress": [*compress, "--no-cache"],
                        "torch": [*compress, "--no-cache", "--backend", "torch"],
                        "imports": imports,
                        # its untimed first run stores the scores it then reads
                        "cached": [*compress[:-1], "0.2"]}
            runs = rounds(commands, env, args.rounds)
            seconds, rerun = _median_seconds(runs["compress"]), _median_seconds(runs["cached"])
            memory, torch_memory = (max(m for _, m in runs[name]) for name in ("compress", "torch"))
            print(f"| {size:,} | {draft_tokens:,} | {seconds:.2f} s | {memory:.2f} GiB | "
                  f"{_seconds(runs['torch'])} | {torch_memory:.2f} GiB | "
                  f"{_ratio(runs['compress'], runs['torch'])} | {memory / torch_memory:.2f}x | "
                  f"{_seconds(runs['imports'])} | {_ratio(runs['compress'], runs['imports'])} | "
                  f"{rerun:.2f} s ({100 * rerun / seconds:.0f}%) |", flush=True)
    if args.warm_tokens:
        warm_throughput(args.draft, args.device, prose(args.warm_tokens, target.count),
                        args.query, args.rounds, env)


if __name__ == "__main__":
    main()
