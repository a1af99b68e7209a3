"""Freed memory given back after each draft read, or kept: one server's work, twice, side by side.

`crossprefill_cli.pipeline.heap.give_back` (glibc's `malloc_trim`) runs after every
draft read. This measures what it is worth: two processes started together, each a
server's engine in-process (`apps.http.warm.ServerModels.run`, what one `/v1/compress`
request runs, without HTTP) over the same distinct inputs in the same order (bench.soak's
prose, repository dumps and chat messages, seeded), one as shipped (*give back*) and one
with `give_back` replaced by a no-op (*keep*). Each process has one core's worth of
threads (`OMP_NUM_THREADS=1`), so the two share the machine evenly, and reads its own
resident memory (VmRSS) before the first input and after every `--sample-every`.

Printed per process: the resident memory after `--warmup` inputs, at the end and at
its highest, the growth after the warm-up and the least-squares slope after it (MiB per
100 inputs), the time its give-backs took (mean and largest), and for *keep*, the
resident memory after one give-back at the very end: what of its growth was free memory
held in the heaps. The ratio *give back* / *keep* of the growths is the figure, and
the difference of the two levels after the warm-up (the means of their samples).

    python -m bench.heap                          # 150 inputs of 1k-16k tokens, ~10 min
    python -m bench.heap --inputs 300 --max-tokens 32000
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from crossprefill_cli.errors import CrossprefillError
from crossprefill_cli.models.numpy_draft import load_numpy_draft

from .soak import SEED, Material, compress_body, slope_per_100, soak_inputs
from .targets import bench_target

VARIANTS = ("give back", "keep")


def level(row: dict, warmup: int) -> float:
    """The mean resident memory of a variant's samples after the warm-up, MiB."""
    return statistics.fmean(mib for done, mib in row["samples"] if done >= warmup)


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(args) -> dict:
    """One variant's run, in this process: its samples and timings, as a dict."""
    import crossprefill_cli.pipeline.heap as heap_module
    from crossprefill_cli.apps.http.warm import ServerModels, ServerOptions

    trims: list[float] = []
    real = heap_module.give_back

    def timed_give_back():
        started = time.perf_counter()
        real()
        trims.append(time.perf_counter() - started)

    heap_module.give_back = timed_give_back if args.variant == "give back" else (lambda: None)
    inputs = soak_inputs(Material(bench_target(load_numpy_draft("builtin")).count),
                         args.inputs, random.Random(SEED), args.min_tokens, args.max_tokens)
    engine = ServerModels(ServerOptions())
    engine.load()
    samples, failed, started = [(0, resident_mib())], 0, time.monotonic()
    for done, item in enumerate(inputs, 1):
        try:
            engine.run(compress_body(item), None)
        except CrossprefillError:  # a documented refusal (a budget below what must be kept)
            failed += 1
        if done % args.sample_every == 0 or done == len(inputs):
            samples.append((done, resident_mib()))
    result = {"variant": args.variant, "samples": samples, "failed": failed,
              "wall_s": time.monotonic() - started, "tokens": sum(i.tokens for i in inputs),
              "give_back_ms": [1000 * sum(trims) / max(1, len(trims)),
                               1000 * max(trims, default=0.0)]}
    real()
    result["after_one_give_back_mib"] = resident_mib()
    return result


def summary(result: dict, warmup: int) -> dict:
    after = [(x, y) for x, y in result["samples"] if x >= warmup]
    base, end = after[0][1], result["samples"][-1][1]
    return {**result, "after_warmup_mib": base, "end_mib": end, "growth_mib": end - base,
            "max_mib": max(y for _, y in result["samples"]), "slope": slope_per_100(after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=150)
    parser.add_argument("--min-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=16000)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(child(args)))
        return
    options = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in
               ("inputs", "min_tokens", "max_tokens", "sample_every", "warmup")]
    with tempfile.TemporaryDirectory(prefix="crossprefill-heap-") as folder:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "CROSSPREFILL_CACHE_DIR": folder}
        processes = [subprocess.Popen([sys.executable, "-m", "bench.heap", *options,
                                       "--variant", variant], env=env, text=True,
                                      stdout=subprocess.PIPE) for variant in VARIANTS]
        results = [summary(json.loads(process.communicate()[0]), args.warmup)
                   for process in processes]
    print(f"# bench.heap: {args.inputs} distinct inputs of {args.min_tokens:,}-"
          f"{args.max_tokens:,} tokens ({results[0]['tokens']:,} in all), warm-up "
          f"{args.warmup}, {os.cpu_count()} cores, both variants at once, one thread each\n")
    print("| variant | RSS after warm-up | at the end (max) | growth after warm-up | slope "
          "| give-backs (mean, max) | after one give-back at the end | refused | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        slope = "-" if row["slope"] is None else f"{row['slope']:+.1f} MiB/100"
        ms = row["give_back_ms"]
        trims = f"{ms[0]:.1f} ms, {ms[1]:.1f} ms" if row["variant"] == "give back" else "-"
        print(f"| {row['variant']} | {row['after_warmup_mib']:.0f} MiB | {row['end_mib']:.0f} "
              f"({row['max_mib']:.0f}) MiB | {row['growth_mib']:+.0f} MiB | {slope} | {trims} | "
              f"{row['after_one_give_back_mib']:.0f} MiB | {row['failed']} | "
              f"{row['wall_s']:.0f} s |")
    shipped, kept = results
    if kept["growth_mib"] > 0:
        print(f"\ngrowth, give back / keep: {shipped['growth_mib'] / kept['growth_mib']:.2f}x")
    print(f"\nlevel after the warm-up, keep - give back (mean of the samples): "
          f"{level(kept, args.warmup) - level(shipped, args.warmup):+.0f} MiB")
    for row in results:
        print(f"\n{row['variant']} samples (inputs done: MiB): "
              + ", ".join(f"{x}: {y:.0f}" for x, y in row["samples"]))


if __name__ == "__main__":
    main()
