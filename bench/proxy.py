"""The compression proxy (`crossprefill serve --upstream`), measured in one run.

A fake LLM API (tests/servers.py's `FakeUpstream`, in its own process) answers at once;
`crossprefill serve --upstream` (bundled draft by default, target o200k_base, a fresh
score cache) runs in front of it in another process, both on free loopback ports. Then:

- **Added latency**: `--requests` small chat requests (nothing long enough to compress),
  sent in pairs, one straight to the fake upstream and one through the proxy, over
  kept-alive connections; p50 and p95 of each, and of the per-pair difference.
- **A long tool result**: an agent call whose tool result is `--long-tokens` target
  tokens of Debian-handbook prose, compressed at `--keep-rate`: the first call (the
  draft reads it), then the same call again (from the proxy's memo), with the tokens
  before and after from the answer's headers.
- **An agent conversation replayed**: `--turns` calls, each resending the growing
  history plus one new tool result of `--turn-tokens` tokens (other handbook prose),
  as an agent does; each call's time and tokens. Only the new result is read by the
  draft: the earlier ones come back from the memo, byte for byte the same.

    python -m bench.proxy --requests 300 --turns 20

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
import time
from pathlib import Path
from typing import Iterator

import httpx

from crossprefill_cli.models.draft import load_draft

from .serve import free_port, percentile, wait_ready
from .speed import prose
from .targets import bench_target

TESTS = Path(__file__).resolve().parents[1] / "tests"
QUESTION = "Which settings does the chapter recommend, and why?"
FAKE_UPSTREAM = ("import sys; sys.path.insert(0, sys.argv[1]); import uvicorn; "
                 "from servers import FakeUpstream; uvicorn.run(FakeUpstream().app(), "
                 "host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')")


def agent_body(system: str, task: str, steps: list[tuple[str, dict, str]],
               model: str = "gpt-4o") -> dict:
    """A chat completion request as an agent sends it: its system prompt and task, then
    for each step (tool name, arguments, result) the call and the tool's result."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    for number, (tool, arguments, result) in enumerate(steps):
        messages += [{"role": "assistant", "content": None, "tool_calls": [{
                          "id": f"call_{number}", "type": "function",
                          "function": {"name": tool, "arguments": json.dumps(arguments)}}]},
                     {"role": "tool", "tool_call_id": f"call_{number}", "content": result}]
    return {"model": model, "messages": messages, "temperature": 0}


def agent_call(tool_results: list[str]) -> dict:
    return agent_body("You are a careful system administrator.", QUESTION,
                      [("read_page", {"page": number}, result)
                       for number, result in enumerate(tool_results)])


def timed_post(client: httpx.Client, url: str, body: dict) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    answer = client.post(url + "/v1/chat/completions", json=body,
                         headers={"Authorization": "Bearer sk-bench"})
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed, answer


def tokens(answer: httpx.Response) -> str:
    return (f"{int(answer.headers['x-crossprefill-tokens-before']):,} -> "
            f"{int(answer.headers['x-crossprefill-tokens-after']):,}")


def handbook_pieces(count, total_tokens: int, piece_tokens: int) -> list[str]:
    """Consecutive pieces of about `piece_tokens` each, cut at paragraphs."""
    paragraphs = prose(total_tokens, count).split("\n\n")
    pieces, current, size = [], [], 0
    for paragraph in paragraphs:
        current.append(paragraph)
        size += count(paragraph)
        if size >= piece_tokens:
            pieces.append("\n\n".join(current) + "\n")
            current, size = [], 0
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--long-tokens", type=int, default=30000)
    parser.add_argument("--keep-rate", type=float, default=0.3)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--turn-tokens", type=int, default=3000)
    args = parser.parse_args()
    target = bench_target(load_draft(args.draft, device="cpu"))
    fake_port = free_port()
    direct = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-c", FAKE_UPSTREAM, str(TESTS), str(fake_port)])
    try:
        with tempfile.TemporaryDirectory() as cache, \
                proxying(args.draft, direct + "/v1", args.keep_rate, cache) as proxied:
            run(args, direct, proxied, target)
    finally:
        fake.terminate()
        fake.wait(timeout=120)


@contextlib.contextmanager
def proxying(draft: str, upstream: str, keep_rate: float, cache: str,
             *options: str) -> Iterator[str]:
    """`crossprefill serve --upstream` (with `options`) on a free loopback port, its
    score cache and reference store in `cache`, until the block ends: its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proxy = subprocess.Popen([sys.executable, "-m", "crossprefill_cli", "serve", "--port",
                              str(port), "--draft", draft, "--upstream", upstream,
                              "--keep-rate", str(keep_rate), *options],
                             env={**os.environ, "CROSSPREFILL_CACHE_DIR": cache})
    try:
        wait_ready(url, proxy)
        yield url
    finally:
        proxy.terminate()
        proxy.wait(timeout=120)


def run(args: argparse.Namespace, direct: str, proxied: str, target) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# crossprefill serve --upstream, {stamp} UTC, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"draft {args.draft}, target {target.name}, keep rate {args.keep_rate}\n")
    small = agent_call(["total 12\n-rw-r--r-- 1 root root 2048 notes.txt\n"])
    with httpx.Client(timeout=600) as client:
        for url in (direct, proxied):  # connections open, first-call costs paid
            timed_post(client, url, small)
        pairs = [(timed_post(client, direct, small)[0], timed_post(client, proxied, small)[0])
                 for _ in range(args.requests)]
        print(f"Added latency, {args.requests} requests with nothing to compress:\n")
        print("| | p50 | p95 |\n|---|---:|---:|")
        for name, values in (("straight to the upstream", [d for d, _ in pairs]),
                             ("through the proxy", [p for _, p in pairs]),
                             ("added by the proxy (per pair)", [p - d for d, p in pairs])):
            print(f"| {name} | {percentile(values, 0.5) * 1000:.1f} ms | "
                  f"{percentile(values, 0.95) * 1000:.1f} ms |")

        long_result = prose(args.long_tokens, target.count)
        body = agent_call([long_result])
        print(f"\nA tool result of {target.count(long_result):,} tokens:\n")
        print("| call | time | tokens (all texts) |\n|---|---:|---:|")
        for name in ("first (the draft reads it)", "again (from the memo)"):
            seconds, answer = timed_post(client, proxied, body)
            print(f"| {name} | {seconds:.2f} s | {tokens(answer)} |")

        results = handbook_pieces(target.count, (args.turns + 1) * args.turn_tokens,
                                  args.turn_tokens)[:args.turns]
        print(f"\nAn agent conversation of {len(results)} calls, each adding a tool result of "
              f"about {args.turn_tokens:,} tokens and resending the history:\n")
        print("| call | time | tokens (all texts) |\n|---:|---:|---:|")
        times = []
        for turn in range(1, len(results) + 1):
            seconds, answer = timed_post(client, proxied, agent_call(results[:turn]))
            times.append(seconds)
            print(f"| {turn} | {seconds:.2f} s | {tokens(answer)} |")
        print(f"\nPer call: median {statistics.median(times):.2f} s, first {times[0]:.2f} s, "
              f"last {times[-1]:.2f} s")


if __name__ == "__main__":
    main()
