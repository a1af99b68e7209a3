"""`crossprefill compress --server` against the cold command line, measured in one run.

One `crossprefill serve` (bundled draft by default, default target) runs on a free
loopback port for the whole benchmark. Then:

- **Whole client processes**: for each input size (target tokens of Debian-handbook
  prose), `crossprefill compress INPUT --server URL --no-cache` and the cold
  `crossprefill compress INPUT --no-cache`, each timed from outside with
  /usr/bin/time; every command runs once untimed, then `--rounds` rounds of both in
  turn; cells are medians, the ratio the median of the rounds' ratios. `--no-cache`
  makes both sides score the input afresh.
- **Throughput**: 1, 2 and 4 concurrent clients (threads posting to /v1/compress,
  `no_cache`), `--requests` requests each at the middle size; requests per second and
  p50/p95 latency per request.
- **Memory**: the server's resident set before and after `--memory-requests` more
  requests at the middle size (peak: VmHWM), which must stay flat.
- **The other engine**: the throughput table again from a server started with
  `--backend torch` (`--compare-backend`), the transformers engine.

    python -m bench.serve --sizes 1000,4000,32000 --rounds 3

Run it with nothing else using the CPU.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from crossprefill_cli.models.draft import load_draft

from .speed import prose, rounds
from .targets import bench_target

CLIENTS = (1, 2, 4)
START_SECONDS = 300


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server stopped while starting")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


def post(url: str, body: dict) -> float:
    """Seconds one /v1/compress request takes."""
    started = time.perf_counter()
    request = urllib.request.Request(url + "/v1/compress", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()
    return time.perf_counter() - started


def concurrent(url: str, body: dict, clients: int, each: int) -> tuple[float, list[float]]:
    """Wall seconds for `clients` threads posting `each` requests, and every latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client():
        for _ in range(each):
            seconds = post(url, body)
            with lock:
                latencies.append(seconds)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def resident_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def serving(draft: str, backend: str, env: dict,
            *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A `crossprefill serve` of `draft` on `backend` (with `options`), on a free loopback
    port, until the block ends: its URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "crossprefill_cli", "serve", "--port",
                               str(port), "--draft", draft, "--backend", backend,
                               "--max-queue", "16", *options], env=env)
    try:
        wait_ready(url, server)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=120)


def throughput(url: str, body: dict, each: int) -> None:
    print("| clients | requests/s | p50 latency | p95 latency |")
    print("|---:|---:|---:|---:|")
    for clients in CLIENTS:
        wall, latencies = concurrent(url, body, clients, each)
        print(f"| {clients} | {len(latencies) / wall:.2f} | "
              f"{percentile(latencies, 0.5):.2f} s | {percentile(latencies, 0.95):.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--sizes", default="1000,4000,32000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=8, help="requests per client")
    parser.add_argument("--memory-requests", type=int, default=200)
    parser.add_argument("--compare-backend", default="torch",
                        help="also measure throughput on a server with this --backend")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    target = bench_target(load_draft(args.draft, device="cpu"))
    env = {**os.environ, "CROSSPREFILL_SERVER": ""}
    with tempfile.TemporaryDirectory() as folder, serving(args.draft, "auto", env) as (url, server):
        paths = {}
        for size in sizes:
            paths[size] = Path(folder) / f"input-{size}.txt"
            paths[size].write_text(prose(size, target.count), encoding="utf-8")
        cli = [sys.executable, "-m", "crossprefill_cli", "compress", "--no-cache",
               "--draft", args.draft]
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        print(f"# crossprefill serve, {stamp} UTC, {platform.processor() or platform.machine()}"
              f", {os.cpu_count()} cores, draft {args.draft}, target {target.name}\n")
        print("| input tokens | client via server | cold CLI | ratio |")
        print("|---:|---:|---:|---:|")
        for size in sizes:
            runs = rounds({"server": [*cli, str(paths[size]), "--server", url],
                           "cold": [*cli, str(paths[size])]}, env, args.rounds)
            ratio = statistics.median(s / c for (s, _), (c, _) in zip(runs["server"],
                                                                      runs["cold"]))
            print(f"| {size:,} | {statistics.median(s for s, _ in runs['server']):.2f} s | "
                  f"{statistics.median(c for c, _ in runs['cold']):.2f} s | {ratio:.2f}x |")
        middle = sizes[len(sizes) // 2]
        body = {"text": paths[middle].read_text(encoding="utf-8"), "no_cache": True}
        print(f"\nThroughput at {middle:,} tokens ({args.requests} requests per client), "
              "default engine:\n")
        throughput(url, body, args.requests)
        before, _ = resident_mib(server.pid)
        concurrent(url, body, 1, args.memory_requests)
        after, peak = resident_mib(server.pid)
        print(f"\nServer memory: {before:.0f} MiB resident before {args.memory_requests} "
              f"more requests of {middle:,} tokens, {after:.0f} MiB after "
              f"({after - before:+.0f} MiB); peak {peak:.0f} MiB")
    if args.compare_backend:
        with serving(args.draft, args.compare_backend, env) as (url, _):
            print(f"\nThroughput at {middle:,} tokens, `serve --backend "
                  f"{args.compare_backend}`:\n")
            throughput(url, body, args.requests)


if __name__ == "__main__":
    main()
