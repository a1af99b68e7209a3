"""Faults, measured in one run: `batch` killed and resumed, `serve` stopped under load,
the proxy in front of an upstream that misbehaves.

- **batch, SIGKILL and --resume**: `--records` records of about `--tokens` target
  tokens each (consecutive Debian-handbook paragraphs from seeded random starts) are
  compressed once without interruption (the reference), every run `--no-cache` so each
  reads its records with the draft. Then the same input again, into
  a new file: `--kills` times a `batch --resume` is started and killed with SIGKILL
  once it has written a random number of records (the numbers sorted, so the kills fall
  all along the work), a random moment into the next record; a last `--resume` runs to
  the end. The final file must equal the reference byte for
  byte: no record missing, none doubled, none changed. `--retry-failed` is not needed
  here (no record fails); tests/test_batch.py checks it.
- **serve, SIGTERM under load**: `crossprefill serve` with `--max-queue 8`, 4 clients
  each sending distinct texts in a loop; SIGTERM after `--load-seconds`. Counted: the
  answers by status (running requests must finish with 200, waiting ones get 503, no
  other status, no dropped connection), the exit status, the seconds from SIGTERM to
  exit.
- **the proxy and a misbehaving upstream**: `serve --upstream` (upstream timeout
  `--upstream-timeout`) in front of tests/servers.py's fake API, whose models misbehave
  on request: `hang` (never answers), `broken` (half an answer, then the connection
  breaks), `trickle` (half, then the rest only once released: released at once here),
  `limited` (a 429), and an upstream that resets every connection. For each: what the
  client got and how long it took, never more than the timeout and a margin.

    python -m bench.faults --records 40 --kills 20

Everything binds loopback and stops by itself; every wait is bounded.
"""

import argparse
import datetime
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from crossprefill_cli.models.draft import load_draft

from .corpora import handbook_run
from .serve import free_port, wait_ready
from .targets import bench_target

SEED = 20261202
POLL_SECONDS = 0.02
TESTS = Path(__file__).resolve().parents[1] / "tests"
CLI = [sys.executable, "-m", "crossprefill_cli"]


def records(count: int, tokens: int, counter) -> list[dict]:
    rng = random.Random(SEED)
    return [{"id": f"r{number}", "text": "\n\n".join(handbook_run(rng, tokens, counter))}
            for number in range(count)]


def written(output: Path) -> int:
    """Complete records in `output` so far."""
    return output.read_bytes().count(b"\n") if output.exists() else 0


def batch_kills(args, source: Path, folder: Path, env: dict) -> None:
    reference = folder / "reference.jsonl"
    started = time.monotonic()
    subprocess.run([*CLI, "batch", str(source), "-o", str(reference), "--quiet", "--no-cache"],
                   env=env, check=True, timeout=3600)
    whole_seconds = time.monotonic() - started
    output, rng = folder / "killed.jsonl", random.Random(SEED)
    per_record = whole_seconds / args.records
    # the kills fall all along the work: at sorted random progress points, each a random
    # moment into the record after that point (or into the start-up, for the first)
    points = sorted(rng.randrange(args.records) for _ in range(args.kills))
    lines_at_kill = []
    for point in points:
        process = subprocess.Popen([*CLI, "batch", str(source), "-o", str(output), "--resume",
                                    "--quiet", "--no-cache"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while written(output) < point and process.poll() is None:
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(POLL_SECONDS)
        time.sleep(rng.uniform(0, per_record))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        lines_at_kill.append(written(output))
    subprocess.run([*CLI, "batch", str(source), "-o", str(output), "--resume", "--quiet",
                    "--no-cache"], env=env, check=True, timeout=3600)
    final, expected = output.read_bytes(), reference.read_bytes()
    ids = [json.loads(line)["id"] for line in final.splitlines()]
    print(f"## batch: {args.kills} SIGKILLs, each followed by --resume\n")
    print(f"{args.records} records of about {args.tokens:,} tokens; an uninterrupted run took "
          f"{whole_seconds:.1f} s. Each kill comes once its run has written a random number "
          "of records (sorted: the kills fall all along the work), a random moment into the "
          "next record.\n")
    print(f"- records written when each kill came: {lines_at_kill}")
    print(f"- final file equals the uninterrupted run byte for byte: "
          f"{'yes' if final == expected else 'NO'}")
    print(f"- ids missing: {len(set(ids) ^ {f'r{n}' for n in range(args.records)})}, "
          f"doubled: {len(ids) - len(set(ids))}\n")


def serve_sigterm(args, counter, env: dict) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([*CLI, "serve", "--port", str(port), "--max-queue", "8"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(url, process)
    statuses: Counter = Counter()
    stop = threading.Event()
    rng = random.Random(SEED + 1)
    texts = ["\n\n".join(handbook_run(rng, 2000, counter)) for _ in range(64)]

    def client(number: int) -> None:
        with httpx.Client(timeout=120) as http:
            for index in range(number, len(texts), 4):
                if stop.is_set():
                    return
                try:
                    statuses[http.post(url + "/v1/compress",
                                       json={"text": texts[index]}).status_code] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                    return

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(args.load_seconds)
    before = sum(statuses.values())
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=120)
    exit_seconds = time.monotonic() - signalled
    stop.set()
    for thread in clients:
        thread.join(timeout=120)
    print("## serve: SIGTERM under load\n")
    print(f"4 clients sending distinct 2,000-token texts; SIGTERM after {args.load_seconds} s "
          f"({before} answered by then).\n")
    print(f"- answers by status: {dict(sorted(statuses.items(), key=str))} (after SIGTERM "
          "a client stops at its first refused connection)")
    print(f"- exit status {status}, {exit_seconds:.1f} s after SIGTERM\n")


def proxy_faults(args, env: dict) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    fake = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); import uvicorn; "
        "from servers import FakeUpstream; fake = FakeUpstream(); fake.release.set(); "
        "uvicorn.run(fake.app(), host='127.0.0.1', port=int(sys.argv[2]), "
        "log_level='critical')"), str(TESTS), str(upstream_port)])
    resetter = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from servers import "
        "resetting_upstream; import contextlib\n"
        "with resetting_upstream() as url:\n    print(url, flush=True); time.sleep(3600)"),
        str(TESTS)], stdout=subprocess.PIPE, text=True)
    reset_url = resetter.stdout.readline().strip()
    proxies = {}
    try:
        for name, upstream in (("fake", f"http://127.0.0.1:{upstream_port}/v1"),
                               ("resetting", reset_url)):
            port = proxy_port if name == "fake" else free_port()
            proxies[name] = (f"http://127.0.0.1:{port}", subprocess.Popen(
                [*CLI, "serve", "--port", str(port), "--upstream", upstream,
                 "--upstream-timeout", str(args.upstream_timeout)], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for url, process in proxies.values():
            wait_ready(url, process)
        print("## the proxy in front of a misbehaving upstream\n")
        print(f"`--upstream-timeout {args.upstream_timeout}`; each a plain chat request.\n")
        print("| upstream | what the client got | seconds |\n|---|---|---:|")
        for label, proxy, model in (("answers (control)", "fake", "gpt-4o"),
                                    ("never answers", "fake", "hang"),
                                    ("breaks off mid-answer", "fake", "broken"),
                                    ("trickles an answer", "fake", "trickle"),
                                    ("answers 429", "fake", "limited"),
                                    ("resets every connection", "resetting", "gpt-4o")):
            body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
            started = time.monotonic()
            try:
                answer = httpx.post(proxies[proxy][0] + "/v1/chat/completions", json=body,
                                    timeout=args.upstream_timeout + 30)
                got = f"{answer.status_code} {answer.text[:70]!r}"
            except httpx.HTTPError as error:
                got = f"{type(error).__name__} (the connection broke)"
            print(f"| {label} | {got} | {time.monotonic() - started:.1f} |")
        print()
    finally:
        for _, process in proxies.values():
            process.terminate()
            process.wait(timeout=60)
        for process in (fake, resetter):
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--upstream-timeout", type=float, default=5.0)
    args = parser.parse_args()
    target = bench_target(load_draft("builtin", device="cpu"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# faults, {stamp} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, bundled draft, target {target.name}\n")
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "CROSSPREFILL_CACHE_DIR": str(Path(folder) / "cache")}
        source = Path(folder) / "records.jsonl"
        source.write_text("".join(json.dumps(record) + "\n" for record in
                                  records(args.records, args.tokens, target.count)))
        batch_kills(args, source, Path(folder), env)
        serve_sigterm(args, target.count, env)
        proxy_faults(args, env)


if __name__ == "__main__":
    main()
