"""The draft's threads on an idle machine and on a busy one, measured side by side.

A shared machine is the normal case (a build, a browser, another job): the issue that
made this benchmark saw the default take 2-5x as long as one thread when another
process held one of two cores. For one input, each configuration below runs as a whole
`crossprefill compress --no-cache` process, first with the machine idle, then with a
competing process that spins on one core for the whole run (`while True: pass`); the
default target counts (o200k_base from ../shared/fixtures when present):

- `default`: what a user gets (the passive OpenMP wait policy, one thread per usable core);
- `spinning`: the previous default, libgomp's own (idle threads spin up to 300,000
  times before they sleep: `GOMP_SPINCOUNT=300000`);
- `one thread`: `OMP_NUM_THREADS=1`.

Each configuration runs once untimed, then `--rounds` timed rounds of all of them in
turn; a cell is the median wall time (and user CPU time) over the rounds, and each
ratio is to `one thread` in the same state (idle or busy), median of the rounds' ratios.

    python -m bench.threads --tokens 8000 --rounds 3

Run it with nothing else using the CPU: the competing process is the only load wanted.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from crossprefill_cli.models.draft import load_draft

from .speed import prose
from .targets import bench_target

CONFIGURATIONS = {
    "default": {},
    "spinning": {"GOMP_SPINCOUNT": "300000"},
    "one thread": {"OMP_NUM_THREADS": "1"},
}
SPINNER = "while True: pass"


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall and user CPU seconds of one whole run of `command`."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%e %U", *command],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        wall, user = report.read().split()[-2:]
    return float(wall), float(user)


@contextmanager
def competing_process(busy: bool):
    """A process spinning on one core while the block runs (nothing when not `busy`)."""
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER]) if busy else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def environment(extra: dict[str, str]) -> dict[str, str]:
    base = {name: value for name, value in os.environ.items()
            if name not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**base, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--tokens", type=int, default=8000, help="target tokens of the input")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    target = bench_target(load_draft(args.draft, device="cpu"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.txt"
        path.write_text(prose(args.tokens, target.count), encoding="utf-8")
        command = [sys.executable, "-m", "crossprefill_cli", "compress", str(path), "--no-cache",
                   "--draft", args.draft, "--keep-rate", "0.3"]
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for state in ("idle", "busy"):
            with competing_process(state == "busy"):
                for extra in CONFIGURATIONS.values():
                    subprocess.run(command, check=True, env=environment(extra),
                                   stdout=subprocess.DEVNULL)
                for _ in range(args.rounds):
                    for name, extra in CONFIGURATIONS.items():
                        runs.setdefault((state, name), []).append(
                            timed(command, environment(extra)))
    print(f"{args.tokens:,} target tokens ({target.name}) of Debian-handbook prose, draft "
          f"{args.draft}, {os.cpu_count()} cores, median of {args.rounds} rounds\n")
    print("| machine | threads | wall s | user CPU s | wall vs one thread |")
    print("|---|---|---:|---:|---:|")
    for state in ("idle", "busy"):
        single = runs[(state, "one thread")]
        for name in CONFIGURATIONS:
            cells = runs[(state, name)]
            ratio = statistics.median(wall / one for (wall, _), (one, _) in zip(cells, single))
            print(f"| {state} | {name} | {statistics.median(w for w, _ in cells):.1f} | "
                  f"{statistics.median(u for _, u in cells):.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
