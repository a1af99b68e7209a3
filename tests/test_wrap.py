"""`crossprefill wrap` for real: the command as a process, an agent (a small Python
script) as its COMMAND, and fake OpenAI and Anthropic upstreams on loopback ports.

Each test asserts what an upstream received and what wrap passed back: COMMAND's stdout
untouched, its exit status, the signals sent to wrap, one summary line on stderr. Every
wait is bounded: a process that hangs fails the test.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from conftest import long_text
from servers import FakeUpstream, in_thread

from crossprefill_cli.apps.cli.wrap_command import default_upstreams
from crossprefill_cli.pipeline.job import compress

DOCUMENT = long_text(160)
QUESTION = "What was noted on day 31?"
RUN_SECONDS = 120
# the agent: one chat call in the dialect asked for, then what it read, or a wait for a signal
AGENT = r'''
import json, os, signal, sys, time, urllib.request

mode, document, question = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]

def post(url, body, headers):
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer), answer.headers

if mode == "openai":
    body, headers = post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", {
        "model": "test-model", "messages": [
            {"role": "system", "content": "Answer from the tool's output."},
            {"role": "user", "content": "Read the survey notes."},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1",
             "type": "function", "function": {"name": "read_notes", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": document},
            {"role": "user", "content": question}]}, {"authorization": "Bearer sk-agent"})
    _, short = post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", {  # nothing long
        "model": "test-model", "messages": [{"role": "user", "content": question}]}, {})
    print(json.dumps({"answer": body["choices"][0]["message"]["content"],
                      "before": [headers["x-crossprefill-tokens-before"],
                                 short["x-crossprefill-tokens-before"]],
                      "after": [headers["x-crossprefill-tokens-after"],
                                short["x-crossprefill-tokens-after"]],
                      "env": {name: os.environ.get(name) for name in (
                          "OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL",
                          "ANTHROPIC_API_BASE", "NO_PROXY")}}))
elif mode == "anthropic":
    body, _ = post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", {
        "model": "test-model", "max_tokens": 64, "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                               "name": "read_notes", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": document}]}]},
        {"x-api-key": "sk-ant-agent", "anthropic-version": "2023-06-01"})
    print(body["content"][0]["text"])
elif mode == "broken":  # an answer that breaks off: the proxy warns
    try:
        post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", {
            "model": "broken", "messages": [{"role": "user", "content": question}]}, {})
    except Exception as error:
        print("broken off:", type(error).__name__)
elif mode == "exit":
    sys.exit(int(question))
else:  # "wait": say so, then wait for a signal; "handle" catches it and exits 5
    if mode == "handle":
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda n, f: (print("got", n, flush=True), sys.exit(5)))
    print("waiting", flush=True)
    time.sleep(60)
'''


@pytest.fixture(scope="module")
def upstreams():
    """A fake OpenAI-style API and a fake Anthropic one, each recording what it gets."""
    openai, anthropic = FakeUpstream(), FakeUpstream()
    with in_thread(openai.app()) as openai_url, in_thread(anthropic.app()) as anthropic_url:
        yield {"openai": (openai, openai_url + "/v1"), "anthropic": (anthropic, anthropic_url)}
        openai.stop.set()
        anthropic.stop.set()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agent")
    (folder / "agent.py").write_text(AGENT)
    (folder / "document.txt").write_text(DOCUMENT)
    return folder


def wrap_args(llama_dir, target_dir, agent, mode: str, *options: str,
              question: str = QUESTION) -> list[str]:
    return [sys.executable, "-m", "crossprefill_cli", "wrap", "-d", str(llama_dir), "-t",
            str(target_dir), "--min-tokens", "300", "--target-map", f"test-*={target_dir}",
            *options, "--", sys.executable, str(agent / "agent.py"), mode,
            str(agent / "document.txt"), question]


def environment(**variables: str) -> dict[str, str]:
    """This environment without the variables wrap reads, and with `variables`."""
    names = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE")
    return {**{k: v for k, v in os.environ.items() if k not in names}, **variables}


def library(text: str, llama_dir, target_dir) -> str:
    return compress(text, keep_rate=0.3, draft=str(llama_dir), target=str(target_dir),
                    query=QUESTION, detect_query=False).text


SUMMARY = re.compile(r"crossprefill: (\d+) requests?, ([\d,]+) → ([\d,]+) target tokens "
                     r"upstream \((\d+\.\d)% saved\)")


def test_an_agent_gets_its_tool_results_compressed_and_the_summary_says_how_much(
        upstreams, agent, llama_dir, target_dir):
    fake, url = upstreams["openai"]
    done = subprocess.run(wrap_args(llama_dir, target_dir, agent, "openai"), capture_output=True,
                          timeout=RUN_SECONDS, env=environment(OPENAI_BASE_URL=url))
    assert done.returncode == 0, done.stderr.decode()
    printed = json.loads(done.stdout)  # COMMAND's stdout alone: wrap printed nothing there
    received = fake.received[-2]
    assert printed["answer"] == f"received {len(received.body)} bytes"
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-agent"
    sent = received.json()["messages"]
    assert sent[3]["content"] == library(DOCUMENT, llama_dir, target_dir)
    assert sent[4]["content"] == QUESTION
    proxy = printed["env"]["OPENAI_BASE_URL"].removesuffix("/v1")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proxy) and not proxy.endswith(":0")
    assert printed["env"] == {"OPENAI_BASE_URL": proxy + "/v1", "OPENAI_API_BASE": proxy + "/v1",
                              "ANTHROPIC_BASE_URL": proxy, "ANTHROPIC_API_BASE": proxy,
                              "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"),
                                                                 "127.0.0.1"]))}
    said = done.stderr.decode().splitlines()
    summary = SUMMARY.fullmatch(said[-1])
    assert summary, said
    requests, before, after, saved = summary.groups()
    before, after = int(before.replace(",", "")), int(after.replace(",", ""))
    # both calls count, the one with nothing to compress too
    assert (requests, before, after) == ("2", sum(map(int, printed["before"])),
                                         sum(map(int, printed["after"])))
    assert printed["before"][1] == printed["after"][1] != "0"
    assert after < before and saved == f"{100 * (before - after) / before:.1f}"


def test_anthropic_calls_go_to_the_anthropic_upstream(upstreams, agent, llama_dir, target_dir):
    openai, openai_url = upstreams["openai"]
    anthropic, anthropic_url = upstreams["anthropic"]
    seen_by_openai = len(openai.received)
    done = subprocess.run(wrap_args(llama_dir, target_dir, agent, "anthropic"),
                          capture_output=True, timeout=RUN_SECONDS,
                          env=environment(OPENAI_BASE_URL=openai_url,
                                          ANTHROPIC_BASE_URL=anthropic_url))
    assert (done.returncode, done.stdout) == (0, b"ok\n"), done.stderr.decode()
    assert len(openai.received) == seen_by_openai
    received = anthropic.received[-1]
    assert received.path == "/v1/messages" and received.headers["x-api-key"] == "sk-ant-agent"
    result = received.json()["messages"][2]["content"][0]
    assert result["content"] == library(DOCUMENT, llama_dir, target_dir)
    assert SUMMARY.fullmatch(done.stderr.decode().splitlines()[-1])


WARNING_SUMMARY = re.compile(SUMMARY.pattern + r"; 1 warning in (.+)")


@pytest.mark.parametrize("given", [None, "chosen.log"])
def test_the_proxys_warnings_go_to_a_log_file_not_the_agents_screen(
        upstreams, agent, llama_dir, target_dir, tmp_path, given):
    """A full-screen agent draws on the terminal wrap shares: the proxy's warnings go to
    wrap.log in the cache folder (or --log-file), and the summary says where."""
    _, url = upstreams["openai"]
    options = [] if given is None else ["--log-file", str(tmp_path / given)]
    expected = tmp_path / ("cache/wrap.log" if given is None else given)
    done = subprocess.run(wrap_args(llama_dir, target_dir, agent, "broken", *options),
                          capture_output=True, timeout=RUN_SECONDS,
                          env=environment(OPENAI_BASE_URL=url,
                                          CROSSPREFILL_CACHE_DIR=str(tmp_path / "cache")))
    assert done.returncode == 0 and done.stdout.startswith(b"broken off:"), done.stderr.decode()
    said = done.stderr.decode().splitlines()
    assert len(said) == 1 and WARNING_SUMMARY.fullmatch(said[0]).group(5) == str(expected)
    logged = expected.read_text().splitlines()
    assert logged and logged[0].startswith("crossprefill: warning: the upstream's stream from ")
    assert "Traceback" not in expected.read_text()


def test_log_file_dash_keeps_the_warnings_on_stderr(upstreams, agent, llama_dir, target_dir,
                                                    tmp_path):
    _, url = upstreams["openai"]
    done = subprocess.run(wrap_args(llama_dir, target_dir, agent, "broken", "--log-file", "-"),
                          capture_output=True, timeout=RUN_SECONDS,
                          env=environment(OPENAI_BASE_URL=url,
                                          CROSSPREFILL_CACHE_DIR=str(tmp_path / "cache")))
    said = done.stderr.decode().splitlines()
    assert said[0].startswith("crossprefill: warning: the upstream's stream from ")
    assert SUMMARY.fullmatch(said[-1]) and not (tmp_path / "cache" / "wrap.log").exists()


def test_commands_exit_status_passes_through_and_quiet_says_nothing(
        upstreams, agent, llama_dir, target_dir):
    env = environment(OPENAI_BASE_URL=upstreams["openai"][1])
    for options, said in (((), "crossprefill: 0 requests, 0 → 0 target tokens upstream "
                                "(0.0% saved)\n"), (("--quiet",), "")):
        done = subprocess.run(wrap_args(llama_dir, target_dir, agent, "exit", *options,
                                        question="3"),
                              capture_output=True, timeout=RUN_SECONDS, env=env)
        assert (done.returncode, done.stdout, done.stderr.decode()) == (3, b"", said)


@pytest.mark.parametrize("number, mode, status, printed", [
    (signal.SIGTERM, "handle", 5, b"got 15\n"),
    (signal.SIGINT, "handle", 5, b"got 2\n"),
    (signal.SIGTERM, "wait", 128 + signal.SIGTERM, b""),
])
def test_signals_to_wrap_reach_the_command(upstreams, agent, llama_dir, target_dir,
                                           number, mode, status, printed):
    # a session of its own: no terminal, so a SIGINT can only have come from a kill
    process = subprocess.Popen(wrap_args(llama_dir, target_dir, agent, mode),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True,
                               env=environment(OPENAI_BASE_URL=upstreams["openai"][1]))
    try:
        assert select.select([process.stdout], [], [], RUN_SECONDS)[0], "COMMAND never started"
        assert process.stdout.readline() == b"waiting\n"
        process.send_signal(number)
        assert process.wait(timeout=30) == status
        assert process.stdout.read() == printed
        assert SUMMARY.fullmatch(process.stderr.read().decode().splitlines()[-1])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_a_command_not_found_is_127_before_anything_loads():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "crossprefill_cli", "wrap", "-d",
                           "no/such-draft", "--", "no-such-agent-here", "--flag"],
                          capture_output=True, timeout=RUN_SECONDS)
    assert (done.returncode, done.stdout) == (127, b"")
    assert done.stderr.decode() == "crossprefill: error: no-such-agent-here: command not found\n"
    assert time.monotonic() - started < 30


def test_no_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "crossprefill_cli", "wrap", "--quiet"],
                          capture_output=True, timeout=RUN_SECONDS)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode().startswith("crossprefill: error: Missing argument 'COMMAND...'")


def test_upstreams_default_to_what_the_environment_names():
    assert default_upstreams({}) == ("https://api.openai.com/v1", "https://api.anthropic.com/v1")
    assert default_upstreams({"OPENAI_API_BASE": "http://gateway/v1",
                              "ANTHROPIC_BASE_URL": "http://claude-gateway/"}) == (
        "http://gateway/v1", "http://claude-gateway/v1")
    assert default_upstreams({"OPENAI_BASE_URL": "http://first/v1",
                              "OPENAI_API_BASE": "http://second/v1",
                              "ANTHROPIC_BASE_URL": "", "ANTHROPIC_API_BASE": "http://a"}) == (
        "http://first/v1", "http://a/v1")
