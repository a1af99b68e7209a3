"""Memory and latency over many distinct inputs: `crossprefill serve`, the proxy and
`crossprefill batch`, soaked (issue 29).

Every input is distinct (its own first line, its own stretch of material) and sized
log-uniformly between `--min-tokens` and `--max-tokens` target tokens (o200k_base), in
three shapes taken in turn:

- **prose**: consecutive paragraphs of the Debian Administrator's Handbook
  (/usr/share/doc/debian-handbook) or of Python's own documentation (the language
  reference's topics in the stdlib's `pydoc_data`), from a random start;
- **dump**: consecutive files of this Python's standard library sources, packed as
  repomix's XML (`<file path="...">`), compressed with the `code` profile;
- **chat**: chat messages JSON, an agent's session: a system prompt, a task, then tool
  calls whose results are pieces of prose and source, and a last question.

Keep rates are drawn between 0.1 and 0.3. The score cache lives in a fresh folder, so
no input is read from it. The phases (`--phases`, each with its own fresh server or
process):

- **serve**: one `crossprefill serve` on a free loopback port; `--clients` threads post
  the inputs to `/v1/compress` (`text`, or `messages` for chats);
- **proxy**: `crossprefill serve --upstream --fail-closed` in front of tests/servers.py's
  `FakeUpstream` (its own process); the same clients send each input as an OpenAI chat
  completion whose tool results (or an earlier user paste) are the input, or, for a
  third of them, as an Anthropic `/v1/messages` call with `tool_result` blocks; the keep
  rate goes in `X-Crossprefill-Keep-Rate`. `--fail-closed` makes a compression that
  cannot happen a 5xx instead of a silent pass-through;
- **batch**: one `crossprefill batch IN.jsonl -o OUT.jsonl` process over `--batch-records`
  records (texts and messages, each with its keep rate and profile).

The resident memory of the server's (or batch's) whole process tree, from /proc, is
sampled before the first input and after every `--sample-every` completed inputs (for
batch: when the output file reaches that many lines, polled every 50 ms). Reported per
phase: the resident memory at the end of the warm-up (`--warmup` inputs), at the end
and at its highest; the growth after the warm-up and the least-squares slope of the
samples after it, in MiB per 100 inputs; the 5xx (and other non-200) answers or failed
records; p50/p95/p99 latency (for batch, the time between consecutive records written,
which is each record's service time); the CPU seconds the measured process used per
wall second, and the load average, since on a shared machine latency means little.

    python -m bench.soak                              # small: 5 minutes a phase at most
    python -m bench.soak --full --phase-minutes 120   # the issue's 2,000 / 2,000 / 1,000
    python -m bench.soak --backend torch --dtype float32 --phases serve

Loopback only; each phase stops sending after `--phase-minutes` and says so.
"""

import argparse
import datetime
import json
import math
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from pydoc_data.topics import topics

import httpx

from crossprefill_cli.models.numpy_draft import load_numpy_draft

from .batch import tree_rss_mib
from .corpora import handbook_paragraphs
from .proxy import FAKE_UPSTREAM, TESTS, agent_body, proxying
from .serve import free_port, percentile, serving
from .targets import bench_target

SEED = 20261229
SHAPES = ("prose", "dump", "chat")
KEEP_RATES = (0.1, 0.3)
SMALL = {"serve": 100, "proxy": 100, "batch": 60}
FULL = {"serve": 2000, "proxy": 2000, "batch": 1000}
POLL_SECONDS = 0.05
SYSTEM = "You are a careful engineer. Answer from the tool results."
QUESTIONS = ("Which options does this describe, and what do they change?",
             "Where is the error handled, and what happens to the caller?",
             "What does the text recommend, and why?",
             "Which function reads the configuration, and what does it return?")


# --- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoakInput:
    """One distinct input: its shape, its text (prose and dumps) or chat messages, the
    keep rate and profile to compress it with, and its size in target tokens."""

    number: int
    shape: str
    keep_rate: float
    tokens: int
    text: str | None = None
    messages: list | None = None

    @property
    def profile(self) -> str:
        return "code" if self.shape == "dump" else "text"


class Material:
    """Real text on this machine, cut into runs of a given number of target tokens."""

    def __init__(self, count):
        self.count = count
        python_docs = [paragraph.strip() for topic in sorted(topics)
                       for paragraph in topics[topic].split("\n\n") if len(paragraph.strip()) > 80]
        self.prose_sources = (handbook_paragraphs(), tuple(python_docs))
        self.stdlib = Path(sysconfig.get_paths()["stdlib"])
        self.sources = sorted(path for path in self.stdlib.rglob("*.py")
                              if "site-packages" not in path.parts and path.stat().st_size > 2000)

    def prose(self, rng: random.Random, tokens: int) -> str:
        paragraphs = rng.choice(self.prose_sources)
        start, chosen, total = rng.randrange(len(paragraphs)), [], 0
        while total < tokens:
            chosen.append(paragraphs[(start + len(chosen)) % len(paragraphs)])
            total += self.count(chosen[-1]) + 1
        return "\n\n".join(chosen) + "\n"

    def source_files(self, rng: random.Random, tokens: int) -> list[tuple[str, str]]:
        """(relative path, text) of consecutive stdlib files holding about `tokens`; the
        last one cut at a line to fit."""
        start, files, total = rng.randrange(len(self.sources)), [], 0
        while total < tokens:
            path = self.sources[(start + len(files)) % len(self.sources)]
            text = path.read_text(encoding="utf-8", errors="replace")
            size = self.count(text)
            if total + size > tokens:
                lines = text.splitlines(keepends=True)
                text = "".join(lines[:max(1, len(lines) * (tokens - total) // size)])
                size = self.count(text)
            files.append((str(path.relative_to(self.stdlib)), text))
            total += size
        return files

    def dump(self, rng: random.Random, tokens: int) -> str:
        files = self.source_files(rng, tokens)
        listing = "".join(f"{name}\n" for name, _ in files)
        bodies = "".join(f'<file path="{name}">\n{text}</file>\n\n' for name, text in files)
        return (f"<directory_structure>\n{listing}</directory_structure>\n\n"
                f"<files>\n{bodies}</files>\n")

    def tool_results(self, rng: random.Random, tokens: int) -> list[tuple[str, dict, str]]:
        """An agent's steps (tool, arguments, result) whose results hold about `tokens`."""
        steps, left = [], tokens
        while left > 0:
            size = min(left, max(500, int(tokens * rng.uniform(0.2, 0.6))))
            if rng.random() < 0.5:
                steps.append(("read_docs", {"page": len(steps)}, self.prose(rng, size)))
            else:
                files = self.source_files(rng, size)
                steps.append(("read_file", {"path": files[0][0]},
                              "".join(text for _, text in files)))
            left -= size
        return steps


def soak_inputs(material: Material, count: int, rng: random.Random, low: int,
                high: int) -> list[SoakInput]:
    inputs = []
    for number in range(count):
        tokens = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        shape = SHAPES[number % len(SHAPES)]
        keep_rate = round(rng.uniform(*KEEP_RATES), 3)
        heading = f"Soak input {number} ({shape}, {tokens} tokens)\n"
        if shape == "chat":
            messages = agent_body(SYSTEM, heading + rng.choice(QUESTIONS),
                                  material.tool_results(rng, tokens))["messages"]
            messages.append({"role": "user", "content": rng.choice(QUESTIONS)})
            size = sum(material.count(m["content"] or "") for m in messages)
            inputs.append(SoakInput(number, shape, keep_rate, size, messages=messages))
        else:
            text = heading + (material.prose(rng, tokens) if shape == "prose"
                              else material.dump(rng, tokens))
            inputs.append(SoakInput(number, shape, keep_rate, material.count(text), text=text))
    return inputs


# --- what a phase records ----------------------------------------------------------------

@dataclass
class Soak:
    """What one phase saw: memory samples (inputs done, MiB), latencies, status counts."""

    name: str
    root: int
    sample_every: int
    samples: list[tuple[int, float]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    cpu_started: float = 0.0
    cpu_last: float = 0.0
    load_started: float = field(default_factory=lambda: os.getloadavg()[0])
    stopped_early: bool = False
    startup_s: float | None = None  # batch: until its first record was written
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.cpu_started = self.cpu_last = cpu_seconds(self.root)
        self.samples.append((0, tree_rss_mib(self.root)))

    def finished(self, seconds: float | None, status: str, label: str | None = None) -> None:
        with self.lock:
            self.done += 1
            if seconds is not None:
                self.latencies.append(seconds)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if label:
                self.labels[label] = self.labels.get(label, 0) + 1
            if self.done % self.sample_every == 0:
                self.sample()

    def sample(self) -> None:
        """Memory and CPU now, unless the process has ended (batch, at its last records)."""
        rss, cpu = tree_rss_mib(self.root), cpu_seconds(self.root)
        if rss and cpu is not None:
            self.samples.append((self.done, rss))
            self.cpu_last = cpu

    def close(self) -> None:
        self.wall = time.monotonic() - self.started
        if self.samples[-1][0] != self.done:
            self.sample()
        self.cpu = self.cpu_last - self.cpu_started
        self.load_ended = os.getloadavg()[0]


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of one process so far (its children's not counted),
    None once it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slope_per_100(samples: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of memory against inputs done, MiB per 100 inputs."""
    if len(samples) < 3:
        return None
    xs, ys = [x for x, _ in samples], [y for _, y in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if not spread:
        return None
    return 100 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


def report(soak: Soak, warmup: int, tokens: list[int]) -> dict:
    after_warmup = [(x, y) for x, y in soak.samples if x >= warmup]
    base = after_warmup[0][1] if after_warmup else None
    slope = slope_per_100(after_warmup)
    errors = sum(n for status, n in soak.statuses.items() if status.startswith("5"))
    summary = {
        "phase": soak.name, "inputs": soak.done, "stopped_early": soak.stopped_early,
        "tokens_total": sum(tokens[:soak.done]), "wall_s": round(soak.wall, 1),
        "cpu_per_wall": round(soak.cpu / soak.wall, 2),
        "startup_s": None if soak.startup_s is None else round(soak.startup_s, 1),
        "load_average": [round(soak.load_started, 2), round(soak.load_ended, 2)],
        "rss_start_mib": round(soak.samples[0][1], 1),
        "rss_after_warmup_mib": None if base is None else round(base, 1),
        "warmup_inputs": after_warmup[0][0] if after_warmup else None,
        "rss_end_mib": round(soak.samples[-1][1], 1),
        "rss_max_mib": round(max(y for _, y in soak.samples), 1),
        "growth_after_warmup_mib": None if base is None else round(soak.samples[-1][1] - base, 1),
        "slope_mib_per_100": None if slope is None else round(slope, 1),
        "status_5xx": errors, "statuses": soak.statuses, "labels": soak.labels,
        "latency_s": {name: round(percentile(soak.latencies, share), 2) for name, share in
                      (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))} if soak.latencies else {},
        "samples": [(x, round(y, 1)) for x, y in soak.samples],
    }
    return summary


# --- the phases ---------------------------------------------------------------------------

def drive(soak: Soak, inputs: list[SoakInput], clients: int, deadline: float, send) -> None:
    """`clients` threads, each with its own kept-alive connection, taking inputs in order
    and calling `send(client, input) -> (status, label)` until none are left or the
    deadline passes."""
    pending: queue.Queue = queue.Queue()
    for item in inputs:
        pending.put(item)

    def client():
        with httpx.Client(timeout=900) as connection:
            while time.monotonic() < deadline:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    status, label = send(connection, item)
                except httpx.HTTPError as error:
                    status, label = f"transport ({type(error).__name__})", None
                soak.finished(time.perf_counter() - started, str(status), label)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    soak.stopped_early = soak.done < len(inputs)


def refusal(answer: httpx.Response, item: SoakInput) -> str | None:
    """Why an input was not compressed (its number and the error's message), for the
    phase's labels; None for a 200."""
    if answer.status_code == 200:
        return None
    try:
        message = answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = answer.text[:200]
    return f"input {item.number}: {answer.status_code} {message}"


def compress_body(item: SoakInput) -> dict:
    body = {"keep_rate": item.keep_rate, "profile": item.profile}
    if item.messages is not None:
        return {**body, "messages": item.messages}
    return {**body, "text": item.text}


def serve_phase(args, inputs: list[SoakInput], env: dict, options: list[str]) -> Soak:
    with serving(args.draft, args.backend, env, *options) as (url, server):
        soak = Soak("serve", server.pid, args.sample_every)

        def send(connection: httpx.Client, item: SoakInput):
            answer = connection.post(url + "/v1/compress", json=compress_body(item))
            return answer.status_code, refusal(answer, item)

        drive(soak, inputs, args.clients, time.monotonic() + args.phase_minutes * 60, send)
        soak.close()
    return soak


def proxy_request(item: SoakInput, rng: random.Random) -> tuple[str, dict, dict]:
    """The path, body and headers that carry `item` through the proxy: an OpenAI chat
    completion (tool results, or an earlier user paste), or an Anthropic messages call."""
    headers = {"Authorization": "Bearer sk-soak", "X-Crossprefill-Keep-Rate": str(item.keep_rate)}
    if item.messages is not None:
        messages = item.messages
    else:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": item.text},
                    {"role": "assistant", "content": "Read. What do you want to know?"},
                    {"role": "user", "content": rng.choice(QUESTIONS)}]
    if item.number % 3 != 2:
        return "/v1/chat/completions", {"model": "gpt-4o", "messages": messages}, headers
    return "/v1/messages", {"model": "claude-soak", "max_tokens": 256, "system": SYSTEM,
                            "messages": anthropic_messages(messages)}, \
        {**headers, "anthropic-version": "2023-06-01", "x-api-key": "sk-soak"}


def anthropic_messages(messages: list[dict]) -> list[dict]:
    """OpenAI-shaped chat messages in Anthropic's shape: tool calls as `tool_use` blocks,
    tool results as `tool_result` blocks in a user turn; the system message left out."""
    converted = []
    for message in messages:
        if message["role"] == "system":
            continue
        if message["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": message["tool_call_id"],
                     "content": message["content"]}
            converted.append({"role": "user", "content": [block]})
        elif message.get("tool_calls"):
            converted.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                 "input": json.loads(call["function"]["arguments"])}
                for call in message["tool_calls"]]})
        else:
            converted.append({"role": message["role"], "content": message["content"]})
    return converted


def proxy_phase(args, inputs: list[SoakInput], env: dict, options: list[str]) -> Soak:
    fake_port = free_port()
    upstream = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-c", FAKE_UPSTREAM, str(TESTS), str(fake_port)],
                            env=env)
    rng = random.Random(SEED + 1)
    requests = {item.number: proxy_request(item, rng) for item in inputs}
    try:
        wait_ready_upstream(upstream, fake)
        cache = env["CROSSPREFILL_CACHE_DIR"]
        with proxying(args.draft, upstream + "/v1", KEEP_RATES[1], cache, "--fail-closed",
                      "--backend", args.backend, *options) as url:
            soak = Soak("proxy", proxy_pid(url), args.sample_every)

            def send(connection: httpx.Client, item: SoakInput):
                path, body, headers = requests[item.number]
                answer = connection.post(url + path, json=body, headers=headers)
                return answer.status_code, answer.headers.get("x-crossprefill")

            drive(soak, inputs, args.clients, time.monotonic() + args.phase_minutes * 60, send)
            soak.close()
    finally:
        fake.terminate()
        fake.wait(timeout=120)
    return soak


def wait_ready_upstream(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the fake upstream stopped while starting")
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the fake upstream did not start")


def proxy_pid(url: str) -> int:
    """The pid of the process listening on `url`'s port (the proxy `proxying` started),
    found among this process's children."""
    port = int(url.rsplit(":", 1)[1])
    for child in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split():
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"serve" in command and str(port).encode() in command:
            return int(child)
    raise SystemExit("cannot find the proxy's process")


def batch_phase(args, inputs: list[SoakInput], env: dict, options: list[str],
                folder: Path) -> Soak:
    source, output = folder / "in.jsonl", folder / "out.jsonl"
    with source.open("w", encoding="utf-8") as records:
        for item in inputs:
            record = {"id": item.number, "keep_rate": item.keep_rate, "profile": item.profile}
            record.update({"messages": item.messages} if item.messages is not None
                          else {"text": item.text})
            records.write(json.dumps(record) + "\n")
    log = folder / "batch.stderr"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "crossprefill_cli", "batch",
                                    str(source), "-o", str(output), "--draft", args.draft,
                                    "--backend", args.backend, *options, "--quiet"],
                                   env=env, stderr=stderr)
    soak = Soak("batch", process.pid, args.sample_every)
    deadline = soak.started + args.phase_minutes * 60
    seen, last = 0, time.perf_counter()

    def read_new_records() -> None:
        nonlocal seen, last
        lines = output.read_bytes().split(b"\n")[:-1] if output.exists() else []
        for line in lines[seen:]:  # one line per record, flushed as each finishes
            now = time.perf_counter()
            # the first record's wait includes the process's start-up: not a latency
            soak.startup_s = soak.startup_s or now - last
            record = json.loads(line)
            error = record.get("error") if isinstance(record, dict) else None
            # a failed record says why in the summary's labels
            soak.finished(now - last if seen else None, "error" if error else "ok",
                          f"record {record.get('id')}: {error.get('message')}"
                          if isinstance(error, dict) else None)
            seen, last = seen + 1, now

    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        read_new_records()
        soak.cpu_last = cpu_seconds(process.pid) or soak.cpu_last
    read_new_records()
    soak.stopped_early = process.poll() is None
    soak.close()
    process.terminate()
    process.wait(timeout=120)
    if process.returncode not in (0, 1, -15) or soak.done == 0:
        raise SystemExit(f"batch failed ({process.returncode}):\n{log.read_text()[-2000:]}")
    return soak


# --- the run ------------------------------------------------------------------------------

def signed(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:+} {unit}"


def print_table(summaries: list[dict]) -> None:
    print("| phase | inputs | RSS after warm-up | RSS end (max) | growth after warm-up "
          "| slope | 5xx / errors | p50 / p95 / p99 | CPU per wall s | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in summaries:
        errors = s["status_5xx"] if s["phase"] != "batch" else s["statuses"].get("error", 0)
        lat = s["latency_s"]
        print(f"| {s['phase']} | {s['inputs']}{' (stopped at the time limit)' * s['stopped_early']}"
              f" | {s['rss_after_warmup_mib']} MiB (at {s['warmup_inputs']})"
              f" | {s['rss_end_mib']} ({s['rss_max_mib']}) MiB"
              f" | {signed(s['growth_after_warmup_mib'], 'MiB')}"
              f" | {signed(s['slope_mib_per_100'], 'MiB/100')} | {errors}"
              f" | {lat['p50']} / {lat['p95']} / {lat['p99']} s | {s['cpu_per_wall']}"
              f" | {s['load_average'][0]} -> {s['load_average'][1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--backend", default="auto", choices=("auto", "numpy", "torch"))
    parser.add_argument("--dtype", default="auto", help="passed on (the torch engine)")
    parser.add_argument("--phases", default="serve,proxy,batch")
    parser.add_argument("--requests", type=int, help=f"inputs per phase (default: "
                        f"{SMALL['serve']} serve, {SMALL['proxy']} proxy, {SMALL['batch']} batch)")
    parser.add_argument("--batch-records", type=int)
    parser.add_argument("--full", action="store_true",
                        help="the issue's soak: 2,000 requests each to serve and the proxy, "
                             "1,000 batch records")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--min-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=32000)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20, help="inputs before the baseline")
    parser.add_argument("--phase-minutes", type=float, default=5.0,
                        help="stop sending to a phase after this long")
    parser.add_argument("--json", type=Path, help="also write every figure and sample here")
    args = parser.parse_args()
    counts = dict(FULL if args.full else SMALL)
    if args.requests:
        counts.update(serve=args.requests, proxy=args.requests)
    if args.batch_records:
        counts["batch"] = args.batch_records
    phases = args.phases.split(",")
    options = [] if args.dtype == "auto" else ["--dtype", args.dtype]

    target = bench_target(load_numpy_draft(args.draft))
    material = Material(target.count)
    rng = random.Random(SEED)
    made = time.monotonic()
    inputs = soak_inputs(material, max(counts[p] for p in phases), rng, args.min_tokens,
                         args.max_tokens)
    tokens = [item.tokens for item in inputs]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# crossprefill soak, {stamp} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start; "
          f"draft {args.draft}, --backend {args.backend}, --dtype {args.dtype}, target "
          f"{target.name}; {len(inputs)} distinct inputs of {min(tokens):,}-{max(tokens):,} "
          f"tokens (median {int(statistics.median(tokens)):,}), made in "
          f"{time.monotonic() - made:.0f} s; {args.clients} clients; RSS sampled every "
          f"{args.sample_every} inputs, warm-up {args.warmup}\n", flush=True)
    summaries = []
    for phase in phases:
        with tempfile.TemporaryDirectory(prefix="crossprefill-soak-") as folder:
            env = {**os.environ, "CROSSPREFILL_SERVER": "",
                   "CROSSPREFILL_CACHE_DIR": str(Path(folder) / "cache")}
            chosen = inputs[:counts[phase]]
            if phase == "serve":
                soak = serve_phase(args, chosen, env, options)
            elif phase == "proxy":
                soak = proxy_phase(args, chosen, env, options)
            elif phase == "batch":
                soak = batch_phase(args, chosen, env, options, Path(folder))
            else:
                raise SystemExit(f"unknown phase {phase!r}")
        summaries.append(report(soak, args.warmup, tokens))
        print(json.dumps({k: v for k, v in summaries[-1].items() if k != "samples"}), flush=True)
    print()
    print_table(summaries)
    for summary in summaries:
        print(f"\n{summary['phase']} samples (inputs done, MiB): "
              + ", ".join(f"{x}: {y:.0f}" for x, y in summary["samples"]))
    if args.json:
        args.json.write_text(json.dumps({"command": sys.argv, "stamp": stamp,
                                         "summaries": summaries}, indent=1))


if __name__ == "__main__":
    main()
