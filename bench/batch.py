"""`crossprefill batch` against one `crossprefill compress` process per record, and its
Ray engine against its local one, measured in one run.

`--records` records of about `--tokens` target tokens each (consecutive Debian-handbook
paragraphs from seeded random starts), the bundled draft by default, everything
`--no-cache` so every engine reads every record with the draft:

- **separate processes**: `crossprefill compress FILE --no-cache` once per record, one
  after another (the first `--process-records` records: a process's time does not
  depend on how many came before, so the rate is the rate);
- **batch, local**: one `crossprefill batch IN.jsonl -o OUT.jsonl --no-cache` process;
- **batch, Ray**: the same with `--engine ray` on a local Ray, with 1 actor (all the
  cores) and with 2 actors (a core each);
- **batch, local, `--backend torch`**: the local batch on the transformers engine (the
  only one before the torch-free engine became the default for the bundled draft).

Each engine's wall time is that of its whole process (start-up, model loads and Ray's
start included); its peak memory is the largest sum of the resident sets of its process
tree (Ray's raylet and actors are the driver's descendants), sampled every 0.1 s. The
run fails unless the three batch outputs of the default engine are the same bytes, and says which separate
processes, if any, printed another text than their record got from batch.

    python -m bench.batch --records 200

Run it with nothing else using the CPU.
"""

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from crossprefill_cli.models.draft import load_draft

from .corpora import handbook_run
from .targets import bench_target

SEED = 20261201
SAMPLE_SECONDS = 0.1
TORCH_ROW = "batch, local, `--backend torch`"


def tree_rss_mib(root: int) -> float:
    """The resident memory of `root` and all its descendants, MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while it was being read
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024 ** 2


def measured(command: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak tree memory (MiB) of one whole run of `command`."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0.0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mib(process.pid))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{stderr.decode()}")
    return seconds, peak[0], done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--process-records", type=int, default=200,
                        help="how many of the records also run as separate processes")
    args = parser.parse_args()
    target = bench_target(load_draft(args.draft, device="cpu"))
    rng = random.Random(SEED)
    texts = ["\n\n".join(handbook_run(rng, args.tokens, target.count)) + "\n"
             for _ in range(args.records)]
    env = {**os.environ, "CROSSPREFILL_SERVER": ""}
    cli = [sys.executable, "-m", "crossprefill_cli"]
    common = ["--draft", args.draft, "--no-cache"]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# crossprefill batch, {stamp} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, draft {args.draft}, target {target.name}, "
          f"{args.records} records of {args.tokens:,} tokens\n")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_text("".join(json.dumps({"id": n, "text": t}) + "\n"
                                  for n, t in enumerate(texts)), encoding="utf-8")
        rows, outputs = [], {}
        for name, extra in (("batch, local", []),
                            ("batch, Ray, 1 actor", ["--engine", "ray", "--cpus-per-actor",
                                                     str(os.cpu_count())]),
                            ("batch, Ray, 2 actors", ["--engine", "ray", "--actors", "2"]),
                            (TORCH_ROW, ["--backend", "torch"])):
            output = Path(folder) / f"out-{len(outputs)}.jsonl"
            seconds, peak, _ = measured([*cli, "batch", str(source), "-o", str(output),
                                         *common, *extra], env)
            outputs[name] = output.read_bytes()
            rows.append((name, args.records, seconds, peak))
        # the transformers engine reads in its own dtype (bfloat16 where the CPU has it)
        if len({output for name, output in outputs.items() if name != TORCH_ROW}) != 1:
            raise SystemExit("the batch engines wrote different outputs")
        batch_texts = [json.loads(line)["text"] for line in outputs["batch, local"].splitlines()]
        total, peak, differing = 0.0, 0.0, []
        count = min(args.process_records, args.records)
        for number in range(count):
            path = Path(folder) / "record.txt"
            path.write_text(texts[number], encoding="utf-8")
            seconds, memory, done = measured([*cli, "compress", str(path), *common], env)
            if done.stdout.decode("utf-8") != batch_texts[number]:
                differing.append(number)
            total, peak = total + seconds, max(peak, memory)
        rows.insert(0, ("separate `compress` processes", count, total, peak))
    base = count / total
    print("| engine | records | wall | records/s | vs processes | peak memory |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, records, seconds, memory in rows:
        rate = records / seconds
        print(f"| {name} | {records} | {seconds:.1f} s | {rate:.2f} | {rate / base:.1f}x | "
              f"{memory:,.0f} MiB |")
    print("\nThe three batch outputs of the default engine are byte for byte the same. "
          + (f"{len(differing)} of {count} separate processes printed another text than batch "
             f"wrote for their record (records {differing})." if differing else
             f"Each of the {count} separate processes printed its record's text."))


if __name__ == "__main__":
    main()
