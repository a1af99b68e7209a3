"""`crossprefill serve` for real: a server process on a free loopback port, real HTTP.

Each server starts inside the test module and is stopped (SIGTERM) at its end. The
client side is the real command line with `--server`, compared byte for byte with
local mode.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import has_tiktoken_fixture, long_text
from servers import START_SECONDS, call, free_port, server
from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app

TEXT = long_text(60)
SLOW_TEXT = long_text(1200)  # several seconds for the tiny draft


@pytest.fixture(scope="module")
def served(llama_dir, target_dir):
    with server("-d", str(llama_dir), "-t", str(target_dir), "--max-queue", "0",
                "--max-bytes", "400000") as running:
        yield running[0]


def client(url: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossprefill_cli", *args, "--server", url],
                          input=stdin, capture_output=True, timeout=120)


@pytest.mark.parametrize("args", [["compress", "-r", "0.3"], ["compress", "-n", "300", "--json"],
                                  ["compress", "-q", "falcon?", "-r", "0.2"],
                                  ["compress", "-q", "falcon?", "--scorer", "attention", "--json"],
                                  ["estimate", "--must-keep", "Entry 4"], ["inspect", "--json"]])
def test_the_client_prints_what_local_mode_prints(served, llama_dir, target_dir, tmp_path, args):
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    common = [str(path), "--no-cache", "-d", str(llama_dir), "-t", str(target_dir)]
    local = CliRunner().invoke(app, [*args, *common])
    remote = client(served, *args, *common)
    assert remote.returncode == local.exit_code == 0, remote.stderr
    assert remote.stdout.decode() == local.stdout


def test_the_client_prints_a_servers_error_as_local_mode_does(served, llama_dir, target_dir,
                                                              tmp_path):
    """An error only the draft can find names the option by its flag through --server
    too (the client asks for flags; other clients get field names)."""
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    args = ["compress", str(path), "--no-cache", "-d", str(llama_dir), "-t", str(target_dir),
            "--window", "100000"]
    local = CliRunner().invoke(app, args)
    remote = client(served, *args)
    assert local.exit_code == remote.returncode == 2
    assert "--window 100000" in local.stderr
    assert remote.stderr.decode() == local.stderr


def test_errors_keep_their_exit_status_and_message(served, llama_dir, target_dir):
    done = client(served, "compress", "-n", "2", "--no-cache", stdin=TEXT.encode())
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith("crossprefill: error: the budget of 2 target tokens")
    nowhere = client(f"http://127.0.0.1:{free_port()}", "compress", stdin=b"text")
    assert nowhere.returncode == 1
    assert nowhere.stderr.decode().startswith("crossprefill: error: cannot reach the server")


def test_device_options_are_the_servers(served):
    done = client(served, "compress", "--device", "cpu", stdin=TEXT.encode())
    assert done.returncode == 0 and done.stdout
    assert done.stderr.decode() == ("crossprefill: warning: --device, --dtype and --backend "
                                    "are the server's to choose; ignored with --server\n")


@pytest.mark.parametrize("command", ["compress", "inspect", "estimate"])
def test_the_client_never_imports_torch_or_numpy(served, command):
    probe = ("import sys; from crossprefill_cli.apps.cli.commands import main\n"
             f"sys.argv = ['crossprefill', {command!r}, '--server', {served!r}]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(*(m in sys.modules for m in ('torch', 'transformers', 'numpy')), "
             "file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], input=TEXT.encode(),
                          capture_output=True, timeout=120)
    assert done.stderr.decode().splitlines()[-1] == "False False False", done.stderr
    assert done.stdout or command == "inspect"


@pytest.mark.parametrize("body, code, kind", [
    (b"{not json", 400, "bad_request"),
    ({"text": "x", "colour": "red"}, 400, "bad_request"),
    ({"text": 3}, 400, "bad_request"),
    ({"text": "x", "keep_rate": 1.5}, 400, "usage"),
    ({"text": TEXT, "scorer": "bm25"}, 400, "usage"),
    ({"text": "x", "draft": "nobody/else"}, 404, "not_found"),
    ({"text": "x", "profile": "/etc/passwd"}, 404, "unknown_profile"),
    ({"text": "x" * 500_000}, 413, "too_large"),
    ({"text": "   "}, 422, "input"),
    ({"text": TEXT, "target_tokens": 2}, 422, "budget"),
])
def test_status_codes(served, body, code, kind):
    answer, payload, _ = call(served + "/v1/compress", body)
    assert (answer, payload["error"]["type"]) == (code, kind)
    assert "\n" not in payload["error"]["message"]


@pytest.mark.parametrize("body, message", [
    ({"text": TEXT, "window": 100_000}, "window 100000 plus the query and lookahead exceeds"),
    ({"text": TEXT, "keep_rate": 0.0001}, "leaves no tokens of this"),
])
def test_error_bodies_name_settings_as_requests_do(served, body, message):
    """A request's settings are fields: its errors say keep_rate, never --keep-rate."""
    _, payload, _ = call(served + "/v1/compress", body)
    assert message in payload["error"]["message"]
    assert "--" not in payload["error"]["message"]
    assert next(iter(set(body) - {"text"})) in payload["error"]["message"]


def test_a_full_queue_answers_503_at_once_and_metrics_count_it(served):
    slow = threading.Thread(target=call, args=(served + "/v1/compress",
                                               {"text": SLOW_TEXT, "no_cache": True}))
    slow.start()
    time.sleep(1.5)
    started = time.monotonic()
    answer, payload, headers = call(served + "/v1/compress", {"text": TEXT})
    assert (answer, payload["error"]["type"]) == (503, "busy")
    assert headers.get("Retry-After") == "1" and time.monotonic() - started < 1
    slow.join(timeout=120)
    with urllib.request.urlopen(served + "/metrics", timeout=5) as metrics:
        text = metrics.read().decode()
    assert 'crossprefill_requests_total{path="/v1/compress",status="503"}' in text
    assert "crossprefill_queue_length 0.0" in text


def test_sigterm_finishes_the_request_in_flight_and_exits_0(llama_dir, target_dir):
    with server("-d", str(llama_dir), "-t", str(target_dir)) as (url, process):
        answers, queued = [], []
        slow = threading.Thread(target=lambda: answers.append(call(
            url + "/v1/compress", {"text": SLOW_TEXT, "no_cache": True})))
        slow.start()
        time.sleep(1.5)
        waiting = threading.Thread(target=lambda: queued.append(call(
            url + "/v1/compress", {"text": SLOW_TEXT + "\nMore.", "no_cache": True})))
        waiting.start()
        time.sleep(0.5)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        waiting.join(timeout=60)
        assert time.monotonic() - stopped < 2  # the queued one is told at once
        assert queued[0][0] == 503 and queued[0][1]["error"]["type"] == "stopping"
        slow.join(timeout=120)
        assert process.wait(timeout=60) == 0
        assert answers[0][0] == 200 and answers[0][1]["tokens_after"] <= answers[0][1]["budget"]


def test_a_key_is_required_when_given_and_for_other_addresses(llama_dir, target_dir):
    with server("-d", str(llama_dir), "-t", str(target_dir),
                env={"CROSSPREFILL_API_KEY": "s3cret"}) as (url, _):
        assert call(url + "/v1/compress", {"text": TEXT})[0] == 401
        assert call(url + "/v1/compress", {"text": TEXT},
                    {"Authorization": "Bearer wrong"})[0] == 401
        assert call(url + "/v1/compress", {"text": TEXT},
                    {"Authorization": "Bearer s3cret"})[0] == 200
        keyed = subprocess.run([sys.executable, "-m", "crossprefill_cli", "compress", "--server",
                                url], input=TEXT.encode(), capture_output=True, timeout=120,
                               env={**os.environ, "CROSSPREFILL_API_KEY": "s3cret"})
        assert keyed.returncode == 0 and keyed.stdout
    refused = subprocess.run([sys.executable, "-m", "crossprefill_cli", "serve", "--host",
                              "0.0.0.0", "--port", str(free_port())], capture_output=True,
                             timeout=120, env={k: v for k, v in os.environ.items()
                                               if k != "CROSSPREFILL_API_KEY"})
    assert refused.returncode == 2
    assert refused.stderr.decode() == ("crossprefill: error: binding 0.0.0.0 (not loopback) "
                                       "needs --api-key or CROSSPREFILL_API_KEY\n")


def test_a_crash_in_the_model_code_is_one_line_500_and_the_server_keeps_serving(
        llama_dir, target_dir, monkeypatch):
    from starlette.testclient import TestClient

    from crossprefill_cli.apps.http.server import ServerOptions, create_app

    app_under_test = create_app(ServerOptions(drafts=[str(llama_dir)], targets=[str(target_dir)]))
    engine = app_under_test.state.engine
    with TestClient(app_under_test) as http:
        assert engine.ready.wait(timeout=START_SECONDS)
        working = engine.run

        def crash(*request):
            raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

        monkeypatch.setattr(engine, "run", crash)
        crashed = http.post("/v1/compress", json={"text": TEXT})
        assert crashed.status_code == 500
        assert crashed.json()["error"] == {"type": "internal", "message": (
            "CUDA error: device-side assert triggered more detail")}
        monkeypatch.setattr(engine, "run", working)
        assert http.post("/v1/compress", json={"text": TEXT}).status_code == 200


def wait_for_queue(url: str, length: int, seconds: float = 60) -> None:
    """Until the server's metrics show `length` requests waiting (a fixed sleep was too
    short when the machine was busy)."""
    deadline = time.monotonic() + seconds
    while True:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as metrics:
            if f"crossprefill_queue_length {length:.1f}" in metrics.read().decode():
                return
        assert time.monotonic() < deadline, f"the queue never held {length} requests"
        time.sleep(0.05)


def test_a_client_that_leaves_the_queue_is_dropped_from_it(llama_dir, target_dir):
    with server("-d", str(llama_dir), "-t", str(target_dir), "--max-queue", "1") as (url, _):
        slow = threading.Thread(target=call, args=(url + "/v1/compress",
                                                   {"text": SLOW_TEXT, "no_cache": True}))
        slow.start()
        time.sleep(1.5)
        body = json.dumps({"text": TEXT}).encode()
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as leaving:  # queued, then gone
            leaving.sendall(b"POST /v1/compress HTTP/1.1\r\nHost: test\r\nContent-Type: "
                            b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            wait_for_queue(url, 1)
        wait_for_queue(url, 0)  # noticed gone, however slowly a busy machine runs the server
        assert call(url + "/v1/compress", {"text": TEXT})[0] == 200  # waited its turn: no 503
        slow.join(timeout=120)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as metrics:
            text = metrics.read().decode()
        assert 'crossprefill_requests_total{path="/v1/compress",status="499"} 1.0' in text
        assert 'status="503"' not in text


@pytest.mark.skipif(not (has_tiktoken_fixture("o200k_base") and has_tiktoken_fixture("cl100k_base")),
                    reason="tiktoken fixtures absent")
def test_the_server_accepts_the_target_names_local_mode_accepts(llama_dir, tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(TEXT)
    with server("-d", str(llama_dir), "-t", "o200k_base", "-t", "cl100k_base") as (url, _):
        for name in ("gpt-4o", "gpt-4", "cl100k_base"):
            args = ["compress", str(path), "-d", str(llama_dir), "-t", name, "-r", "0.3",
                    "--json", "--no-cache"]
            local = CliRunner().invoke(app, args)
            remote = client(url, *args)
            assert remote.returncode == local.exit_code == 0, remote.stderr
            assert remote.stdout.decode() == local.stdout
        unknown = client(url, "compress", "-t", "gpt-99", stdin=TEXT.encode())
        assert unknown.returncode == 1
        assert unknown.stderr.decode().startswith("crossprefill: error: this server has no "
                                                  "target 'gpt-99'")


def test_a_log_file_that_cannot_be_written_is_one_line_before_anything_loads(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "crossprefill_cli", "serve", "--port", "0",
                           "-d", "no-such-draft-would-load", "--log-file",
                           str(blocker / "server.log")], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == (f"crossprefill: error: cannot write the log file "
                                    f"{blocker / 'server.log'}: Not a directory\n")


def test_an_unknown_profile_is_a_usage_error_through_the_server(served):
    done = client(served, "compress", "-p", "prose", stdin=TEXT.encode())
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == ("crossprefill: error: this server has no profile 'prose'; "
                                    "it serves code, text\n")


def test_serve_says_when_it_is_ready_and_a_port_in_use_is_one_line(llama_dir, target_dir):
    with server("-d", str(llama_dir), "-t", str(target_dir)) as (url, process):
        port = url.rsplit(":", 1)[1]
        taken = subprocess.run([sys.executable, "-m", "crossprefill_cli", "serve", "--port", port,
                                "-d", str(llama_dir)], capture_output=True, timeout=60)
        assert (taken.returncode, taken.stdout) == (1, b"")
        assert taken.stderr.decode() == (f"crossprefill: error: cannot listen on 127.0.0.1:{port}: "
                                         "Address already in use\n")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        said = process.stderr.read().decode().splitlines()
    assert said == [f"crossprefill: loading the drafts for {url}",
                    f"crossprefill: ready on {url} (Ctrl-C stops)"]
