"""Agents through the compression proxy, counted in what the upstream received.

A fake LLM API (tests/servers.py's `FakeUpstream`) runs in this process, in a thread,
and keeps every request it receives; `crossprefill serve --upstream` runs in front of it
twice, in other processes: plainly and with `--expandable`, both at `--keep-rate`, the
default `--min-tokens` (2,000), a fresh cache folder, the bundled draft by default.
Everything binds loopback. Every token figure is counted in the target (o200k_base) in
the request bodies the fake upstream received, never taken from the proxy's headers:
"texts" are the messages' texts (what the proxy may compress and its headers count),
"all" adds the tool calls' names and arguments and the declared tools (JSON), which
`--expandable` adds to.

1. **A replayed agent session.** `SESSION`: 20 tool calls of a coding agent on a task
   in pallets/click at `CLICK_COMMIT` (the script is this bench's own; the tool
   results are real output, made at run time from a clone of click: `git ls-files`,
   `git grep -n`, `git log -p -n 3`, and file reads numbered like `cat -n`; click's
   text is not stored here). Each call resends the growing history (system prompt,
   task, every call and result so far), as an agent does, (a) straight to the fake
   upstream, (b) through the proxy, (c) through the `--expandable` proxy; tokens sent
   per call and in total.

2. **Expand calls to reach a fact compressed away.** A case is `--case-tokens` of
   Debian-handbook prose (split dev/test by page: `corpora.handbook_split`) with one
   fact line holding "NEEDLE" (`FACTS`) as its own paragraph at a uniform depth in
   [5%, 95%], sent as a tool result with a last user turn asking for the fact, in the
   fact's words or in other words, to the scripted model `seeker`
   (tests/servers.py `seeker_step`): it answers with the line holding NEEDLE once it
   sees one, else calls `crossprefill_expand` on the first gap marker it has not
   expanded yet, in the order they appear, never choosing by content: a pessimistic
   model. Each case goes once straight to the upstream and once through the
   `--expandable` proxy per keep rate (`--rates`), not streamed. Outcomes: kept (the
   whole fact survived compression: no call needed), reached (the seeker answered
   with the whole fact line after N expand calls: `X-Crossprefill-Expansions`, which
   must equal the upstream rounds less one), a fragment (the seeker answered a line
   holding only part of the fact), or not reached (not found within the proxy's 8
   expand rounds). For every case not kept, the gap that hid the fact and the count
   of gaps say what any order of expanding would need (1 call when the right gap is
   chosen first). The first `--streamed` cases of each cell are sent again streamed;
   their answer and upstream rounds must match the non-streamed ones.

    git clone --bare https://github.com/pallets/click /tmp/click.git
    python -m bench.agents --click /tmp/click.git

Any clone holding `CLICK_COMMIT` does. Needs the Debian handbook (`apt-get install
debian-handbook`). About 5 minutes on 2 cores with the defaults.
"""

import argparse
import datetime
import functools
import json
import os
import platform
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from crossprefill_cli.apps.http.chat_requests import OPENAI, chat_texts
from crossprefill_cli.models.draft import load_draft

from .corpora import handbook_run, handbook_split
from .proxy import TESTS, agent_body, proxying
from .targets import bench_target

CLICK = "https://github.com/pallets/click"
# click's main on 2026-08-20: "Add FAQ entry about `UnicodeEncodeError` on Windows (#3778)"
CLICK_COMMIT = "2c8cd3ac958a7eb316d67f2d316c27086c4c0369"
SYSTEM = ("You are a coding agent in a clone of the click repository. Read the code with "
          "your tools before you change it, and answer with a patch.")
TASK = ("With `show_default=True`, an option whose default is a `functools.partial` shows "
        "`functools.partial(<function ...>)` in `--help` instead of `(dynamic)`, as a plain "
        "function does. Find where the help text renders defaults, fix it, and add a test "
        "beside the existing show_default tests.")
# The agent's 20 calls, in order: ("bash", git command line) or ("read_file", path,
# first line, line count), no line range for a whole file.
SESSION = [
    ("bash", "git ls-files"),
    ("bash", "git grep -n show_default -- src"),
    ("read_file", "src/click/core.py", 3338, 140),
    ("bash", "git grep -n 'def get_default' -- src/click"),
    ("read_file", "src/click/core.py", 2380, 380),
    ("read_file", "src/click/core.py", 3180, 60),
    ("bash", "git log -p -n 3 -- src/click/core.py"),
    ("bash", "git grep -n dynamic -- src tests docs"),
    ("read_file", "tests/test_options.py", 560, 160),
    ("read_file", "tests/test_options.py", 1200, 170),
    ("bash", "git grep -n -e isfunction -e 'callable(' -- src"),
    ("read_file", "docs/options.md"),
    ("bash", "git log -p -n 3 -- tests/test_options.py"),
    ("read_file", "src/click/core.py", 2858, 200),
    ("bash", "git grep -n partial -- src tests"),
    ("read_file", "tests/test_defaults.py"),
    ("read_file", "CHANGES.md", 1, 120),
    ("bash", "git log -p -n 3 -- src/click/termui.py"),
    ("read_file", "src/click/termui.py", 1, 300),
    ("read_file", "tests/test_termui.py", 1440, 90),
]
# (fact, question in the fact's words, question in other words); {code} is 4 digits
FACTS = [
    ("The deploy token for the build servers is NEEDLE-{code}.",
     "What is the deploy token for the build servers?",
     "Which secret do the build machines use to push releases?"),
    ("After the migration, the staging database listens on port NEEDLE-{code}.",
     "Which port does the staging database listen on after the migration?",
     "Where do clients connect now to reach the pre-production data store?"),
    ("Ticket NEEDLE-{code} tracks the kernel panic on the mail relay.",
     "Which ticket tracks the kernel panic on the mail relay?",
     "Where is the crash of the outgoing e-mail gateway being followed up?"),
    ("The spare firewall's console password was reset to NEEDLE-{code} on Monday.",
     "What was the spare firewall's console password reset to?",
     "How do I log in to the backup packet filter now?"),
]
WORDINGS = ("fact's words", "other words")
MARKER_REF = re.compile(r"\bref [0-9a-f]+:(\d+)-(\d+)")
HEADERS = {"Authorization": "Bearer sk-bench"}
MIN_TOKENS = 2000  # `serve --upstream`'s default --min-tokens, which the proxies keep


# --- the replayed session ---------------------------------------------------------------

def git(click: Path, *args: str) -> str:
    done = subprocess.run(["git", f"--git-dir={click}", *args], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)} failed in {click}: {done.stderr.strip()}")
    return done.stdout


def tool_result(click: Path, step: tuple) -> tuple[str, dict, str]:
    """A step's tool name, arguments and output, from the clone at CLICK_COMMIT: a git
    command as in a checkout of it (the revision put in, `git grep`'s prefix of it
    taken off), a file read as lines numbered like `cat -n`."""
    if step[0] == "bash":
        argv = shlex.split(step[1])[1:]
        if argv == ["ls-files"]:
            output = git(click, "ls-tree", "-r", "--name-only", CLICK_COMMIT)
        else:
            paths = argv.index("--")
            output = git(click, *argv[:paths], CLICK_COMMIT, *argv[paths:])
            if argv[0] == "grep":
                output = output.replace(f"{CLICK_COMMIT}:", "")
        return "bash", {"command": step[1]}, output
    _, path, *lines = step
    text = git(click, "show", f"{CLICK_COMMIT}:{path}").splitlines()
    first, count = lines or (1, len(text))
    numbered = "".join(f"{number:6}\t{line}\n" for number, line in
                       enumerate(text[first - 1:first - 1 + count], start=first))
    arguments = {"path": path, **({"offset": first, "limit": count} if lines else {})}
    return "read_file", arguments, numbered


def session_steps(click: Path) -> list[tuple[str, dict, str]]:
    if not (click / "HEAD").exists() and not (click / ".git").exists():
        raise SystemExit(f"no git repository at {click}: clone click first, "
                         f"git clone --bare {CLICK} {click}")
    found = subprocess.run(["git", f"--git-dir={click}", "cat-file", "-e",
                            f"{CLICK_COMMIT}^{{commit}}"], capture_output=True, check=False)
    if found.returncode:
        raise SystemExit(f"{click} does not hold click's commit {CLICK_COMMIT}: "
                         f"clone it again from {CLICK}")
    return [tool_result(click, step) for step in SESSION]


def sent_tokens(body: dict, count) -> tuple[int, int]:
    """A request's target tokens as received: its messages' texts, and all (the texts,
    the tool calls' names and arguments, the declared tools as JSON)."""
    texts = sum(count(text.text) for text in chat_texts(body, OPENAI).texts)
    calls = sum(count(call["function"]["name"]) + count(call["function"]["arguments"])
                for message in body["messages"] for call in message.get("tool_calls") or [])
    tools = count(json.dumps(body["tools"])) if body.get("tools") else 0
    return texts, texts + calls + tools


def replay(client: httpx.Client, url: str, fake, steps: list, count) -> list[tuple[int, int]]:
    """Send the session's calls to `url`; each call's tokens the upstream received."""
    sent = []
    for turn in range(1, len(steps) + 1):
        before = len(fake.received)
        client.post(url + "/v1/chat/completions", json=agent_body(SYSTEM, TASK, steps[:turn]),
                    headers=HEADERS).raise_for_status()
        (received,) = fake.received[before:]
        sent.append(sent_tokens(received.json(), count))
    return sent


def report_session(steps: list, by_route: dict[str, list[tuple[int, int]]], count,
                   keep_rate: float) -> None:
    print(f"## A replayed agent session: {len(steps)} calls on {CLICK} at "
          f"{CLICK_COMMIT[:12]}\n")
    print(f"Target tokens the upstream received (messages' texts), keep rate {keep_rate:g}, "
          f"min-tokens {MIN_TOKENS:,}:\n")
    names = list(by_route)
    print("| call | tool result added | its tokens | " + " | ".join(names) + " |")
    print("|---:|---|---:|" + "---:|" * len(names))
    for turn, (tool, arguments, result) in enumerate(steps):
        shown = arguments.get("command") or arguments["path"] + (
            f" {arguments['offset']}+{arguments['limit']}" if "offset" in arguments else "")
        cells = " | ".join(f"{by_route[name][turn][0]:,}" for name in names)
        print(f"| {turn + 1} | {tool}: `{shown}` | {count(result):,} | {cells} |")
    for column, label in ((0, "texts"), (1, "all")):
        totals = {name: sum(call[column] for call in calls) for name, calls in by_route.items()}
        print(f"| total ({label}) | | | " + " | ".join(
            f"{totals[name]:,} ({totals[name] / totals[names[0]]:.2f})" for name in names)
            + " |")
    compressed = sum(count(result) > MIN_TOKENS for _, _, result in steps)
    print(f"\n{compressed} of the {len(steps)} tool results are over {MIN_TOKENS:,} tokens "
          "(those are compressed). In brackets: the share of what went straight. \"all\" "
          "adds the tool calls' names and arguments and the declared tools (`--expandable` "
          "declares `crossprefill_expand` in every compressed request).\n")


# --- expand calls to a fact compressed away ------------------------------------------

@dataclass
class Case:
    split: str
    index: int  # within its split
    text: str
    fact: str
    questions: tuple[str, str]  # in the fact's words, in other words

    def body(self, wording: int, stream: bool = False) -> dict:
        return {"model": "seeker", "stream": stream, "messages": [
            {"role": "system", "content": "Answer from the tools' output."},
            {"role": "user", "content": "Read the operations notes."},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_notes", "type": "function", "function": {
                    "name": "read_file", "arguments": '{"path": "notes/operations.txt"}'}}]},
            {"role": "tool", "tool_call_id": "call_notes", "content": self.text},
            {"role": "user", "content": self.questions[wording]}]}


def make_case(split: str, index: int, tokens: int, count) -> Case:
    rng = random.Random(f"agents-{split}-{index}")
    paragraphs = handbook_run(rng, tokens, count, handbook_split(split))
    fact, *questions = FACTS[index % len(FACTS)]
    fact = fact.format(code=rng.randrange(1000, 10000))
    at = max(1, min(len(paragraphs) - 1, round(rng.uniform(0.05, 0.95) * len(paragraphs))))
    paragraphs.insert(at, fact)
    return Case(split, index, "\n\n".join(paragraphs) + "\n", fact, tuple(questions))


@dataclass
class Outcome:
    outcome: str  # kept, reached, fragment, not reached
    calls: int  # expand calls the proxy answered
    rounds: list[int]  # "all" tokens of each upstream request
    gap: int | None  # the fact's gap among the first round's gaps, 1-based
    gaps: int


def outcome_of(case: Case, answer: str, rounds: list[dict], calls: int, count) -> Outcome:
    first = rounds[0]["messages"][3]["content"]
    spans = [(int(start), int(end)) for start, end in MARKER_REF.findall(first)]
    where = case.text.index(case.fact)
    gap = next((number for number, (start, end) in enumerate(spans, 1)
                if start <= where < end), None)
    kind = ("kept" if case.fact in first else "reached" if answer == case.fact
            else "fragment" if "NEEDLE" in answer else "not reached")
    return Outcome(kind, calls, [sent_tokens(body, count)[1] for body in rounds], gap,
                   len(spans))


def ask(client: httpx.Client, url: str, fake, body: dict,
        rate: float | None) -> tuple[str, list[dict], int | None]:
    """The seeker's answer through `url`, the request bodies the upstream received
    for it, and the proxy's count of expand calls (None when not told)."""
    headers = {**HEADERS, **({"X-Crossprefill-Keep-Rate": str(rate)} if rate else {})}
    before = len(fake.received)
    if body["stream"]:
        pieces = []
        with client.stream("POST", url + "/v1/chat/completions", json=body,
                           headers=headers) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    if choices:
                        pieces.append(choices[0]["delta"].get("content") or "")
        text, calls = "".join(pieces).strip(), None
    else:
        answer = client.post(url + "/v1/chat/completions", json=body, headers=headers)
        answer.raise_for_status()
        text = answer.json()["choices"][0]["message"]["content"]
        calls = int(answer.headers.get("x-crossprefill-expansions", 0))
        if answer.headers.get("x-crossprefill") == "compressed":
            assert calls == len(fake.received) - before - 1, "expansions != rounds - 1"
    return text, [received.json() for received in fake.received[before:]], calls


def seek(client, direct: str, expandable: str, fake, cases: list[Case], rates: list[float],
         streamed: int, count) -> tuple[dict, dict, list[bool]]:
    """Every case, wording and rate: the outcomes by (split, wording, rate), the tokens
    sent straight by (split, wording), and whether each streamed replay matched."""
    outcomes: dict[tuple, list[Outcome]] = {}
    straight: dict[tuple, list[int]] = {}
    matched, started = [], time.monotonic()
    for number, case in enumerate(cases):
        for wording in range(len(WORDINGS)):
            text, rounds, _ = ask(client, direct, fake, case.body(wording), None)
            assert text == case.fact and len(rounds) == 1, "the seeker missed a whole text"
            straight.setdefault((case.split, wording), []).append(sent_tokens(rounds[0], count)[1])
            for rate in rates:
                text, rounds, calls = ask(client, expandable, fake, case.body(wording), rate)
                outcomes.setdefault((case.split, wording, rate), []).append(
                    outcome_of(case, text, rounds, calls, count))
                if case.index < streamed:
                    again, again_rounds, _ = ask(client, expandable, fake,
                                                 case.body(wording, stream=True), rate)
                    matched.append(again == text and len(again_rounds) == len(rounds))
        print(f"  case {number + 1}/{len(cases)} done ({time.monotonic() - started:.0f} s)",
              file=sys.stderr, flush=True)
    return outcomes, straight, matched


def median(values) -> str:
    values = list(values)
    return f"{statistics.median(values):,.0f}" if values else "-"


def report_seeking(outcomes: dict, straight: dict, matched: list[bool], per_split: int,
                   case_tokens: int) -> None:
    print(f"## Expand calls to reach a fact compressed away\n\n{per_split} cases per split "
          f"(handbook prose, {case_tokens:,} tokens, the fact line at a random depth), not "
          "streamed. The scripted model `seeker` answers with the line holding NEEDLE once "
          "it sees one; otherwise it calls crossprefill_expand on the first gap marker it "
          "has not expanded yet, in the order the markers appear, never choosing by "
          "content: a pessimistic model. Calls: median / max over the cases reached by "
          "expansion. Gap holding the fact: its place among the gaps (the calls this "
          "seeker needs; 1 for a model that picks the right gap) / the gaps in the text, "
          "medians over the cases not kept.\n")
    print("| split | question | keep rate | kept outright | reached by expansion | "
          "calls | fragment | not reached | gap holding the fact |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (split, wording, rate), cell in outcomes.items():
        share = {kind: f"{sum(o.outcome == kind for o in cell)}/{len(cell)}"
                 for kind in ("kept", "reached", "fragment", "not reached")}
        calls = [o.calls for o in cell if o.outcome == "reached"]
        missed = [o for o in cell if o.outcome != "kept" and o.gap]
        print(f"| {split} | {WORDINGS[wording]} | {rate:g} | {share['kept']} | "
              f"{share['reached']} | {median(calls)} / {max(calls, default='-')} | "
              f"{share['fragment']} | {share['not reached']} | "
              f"{median(o.gap for o in missed)} / {median(o.gaps for o in missed)} |")
    print("\nTarget tokens the upstream received per case (all: texts, tool calls, "
          "declared tools), medians; straight: the whole text in one request.\n")
    print("| split | question | keep rate | straight | first round | all rounds, "
          "kept | all rounds, reached | extra rounds cost, reached | all rounds, not reached |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (split, wording, rate), cell in outcomes.items():
        by = {kind: [o for o in cell if o.outcome == kind] for kind in
              ("kept", "reached", "not reached")}
        print(f"| {split} | {WORDINGS[wording]} | {rate:g} | "
              f"{median(straight[split, wording])} | {median(o.rounds[0] for o in cell)} | "
              f"{median(sum(o.rounds) for o in by['kept'])} | "
              f"{median(sum(o.rounds) for o in by['reached'])} | "
              f"{median(sum(o.rounds[1:]) for o in by['reached'])} | "
              f"{median(sum(o.rounds) for o in by['not reached'])} |")
    print(f"\nStreamed again: {sum(matched)}/{len(matched)} gave the same answer after the "
          "same number of upstream rounds.")


# --- the run ---------------------------------------------------------------------------

def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in
             (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, " \
           f"{os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--click", type=Path, required=True,
                        help=f"a clone of {CLICK} (bare or not) holding {CLICK_COMMIT[:12]}")
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--keep-rate", type=float, default=0.3,
                        help="the proxies' keep rate (the session)")
    parser.add_argument("--rates", default="0.3,0.1",
                        type=lambda s: [float(x) for x in s.split(",")],
                        help="keep rates of the fact cases")
    parser.add_argument("--cases", type=int, default=20, help="fact cases per split")
    parser.add_argument("--case-tokens", type=int, default=4000)
    parser.add_argument("--streamed", type=int, default=3,
                        help="fact cases per split also sent streamed, at every rate")
    args = parser.parse_args()
    # a terminated run unwinds, so the proxies it started stop with it
    signal.signal(signal.SIGTERM, lambda number, _: sys.exit(128 + number))
    steps = session_steps(args.click.expanduser())
    target = bench_target(load_draft(args.draft, device="cpu"))
    count = functools.lru_cache(maxsize=None)(target.count)
    cases = [make_case(split, index, args.case_tokens, count)
             for split in ("dev", "test") for index in range(args.cases)]
    sys.path.insert(0, str(TESTS))
    from servers import FakeUpstream, in_thread

    started = time.monotonic()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    fake = FakeUpstream()
    with tempfile.TemporaryDirectory() as cache, in_thread(fake.app()) as direct, \
            proxying(args.draft, direct + "/v1", args.keep_rate, cache) as proxied, \
            proxying(args.draft, direct + "/v1", args.keep_rate, cache,
                     "--expandable") as expandable, httpx.Client(timeout=600) as client:
        print(f"# Agents through `crossprefill serve --upstream`, {stamp} UTC, {machine()}, "
              f"draft {args.draft}, target {target.name}\n\n`python -m bench.agents "
              + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) + "`\n")
        by_route = {name: replay(client, url, fake, steps, count) for name, url in (
            ("straight", direct), ("proxy", proxied), ("--expandable", expandable))}
        report_session(steps, by_route, count, args.keep_rate)
        outcomes, straight, matched = seek(client, direct, expandable, fake, cases,
                                           args.rates, args.streamed, count)
        report_seeking(outcomes, straight, matched, args.cases, args.case_tokens)
        fake.stop.set()
    print(f"\n{time.monotonic() - started:.0f} s in all.")


if __name__ == "__main__":
    main()
