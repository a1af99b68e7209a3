"""The compression proxy for real: a fake LLM API on a loopback port, the proxy in front
of it, and real clients (the `openai` SDK, `llm`, plain httpx) calling the proxy.

Each test asserts what the upstream received: long texts compressed exactly as the
library compresses them, verbatim and within budget; everything else byte for byte.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import long_text
from servers import TRICKLED, free_port, proxy, resetting_upstream
from structure import assert_pieces_verbatim
from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app as cli_app
from crossprefill_cli.apps.http import compressor as compressor_module
from crossprefill_cli.models.target import load_target
from crossprefill_cli.pipeline.job import compress

DOCUMENT = long_text(160)
QUESTION = "What was noted on day 31?"
MODEL = "test-model"  # mapped to the test target tokenizer
SYSTEM = "You answer from the tool's output only. Be brief."


@pytest.fixture(scope="module")
def proxied(upstream, llama_dir, target_dir):
    with proxy(upstream[1], llama_dir, target_dir) as running:
        yield running


def agent_messages(document: str = DOCUMENT) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Read the survey notes."},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "read_notes", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": document},
            {"role": "user", "content": QUESTION}]


def library(text: str, llama_dir, target_dir, rate: float = 0.3):
    return compress(text, keep_rate=rate, draft=str(llama_dir), target=str(target_dir),
                    query=QUESTION, detect_query=False)


def openai_client(url: str, **options):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0, **options)


def test_the_openai_sdk_gets_long_tool_results_compressed_and_the_rest_untouched(
        proxied, upstream, llama_dir, target_dir):
    fake, _ = upstream
    tools = [{"type": "function", "function": {"name": "read_notes", "parameters": {
        "type": "object", "properties": {}}}}]
    raw = openai_client(proxied[0]).chat.completions.with_raw_response.create(
        model=MODEL, messages=agent_messages(), temperature=0.25, tools=tools,
        response_format={"type": "text"}, extra_body={"x_unknown": {"nested": [1, 2.5, None]}})
    assert raw.parse().choices[0].message.content.startswith("received ")
    received = fake.received[-1]
    sent = received.json()
    expected = library(DOCUMENT, llama_dir, target_dir)
    assert sent["messages"][3]["content"] == expected.text
    assert_pieces_verbatim(DOCUMENT, expected.text, "[...]")
    assert load_target(str(target_dir)).count(expected.text) <= expected.budget
    untouched = agent_messages()
    untouched[3]["content"] = expected.text
    assert sent["messages"] == untouched  # system and the last user turn byte for byte
    assert (sent["temperature"], sent["tools"], sent["response_format"], sent["x_unknown"]) == (
        0.25, tools, {"type": "text"}, {"nested": [1, 2.5, None]})
    assert received.headers["authorization"] == "Bearer sk-test"
    assert raw.headers["x-crossprefill"] == "compressed"
    before, after = (int(raw.headers[f"x-crossprefill-tokens-{k}"]) for k in ("before", "after"))
    assert after < before and raw.headers["x-upstream"] == "fake"


def test_streamed_chunks_arrive_before_the_upstream_has_finished(proxied, upstream):
    fake, _ = upstream
    fake.release.clear()
    pieces = []
    stream = openai_client(proxied[0]).chat.completions.create(
        model=MODEL, messages=agent_messages(), stream=True)
    for chunk in stream:
        fake.release.set()  # the upstream sends the rest only once this client has a chunk
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert fake.released_in_time[-1] is True
    assert "".join(pieces) == f"received {len(fake.received[-1].body)} bytes"


def test_a_plain_answer_is_relayed_as_it_arrives(proxied, upstream):
    fake, _ = upstream
    fake.release.clear()
    with httpx.stream("POST", proxied[0] + "/v1/chat/completions", timeout=60,
                      json={"model": "trickle", "messages": agent_messages()}) as answer:
        pieces = []
        for piece in answer.iter_raw():
            fake.release.set()  # the upstream sends the rest only once this client has a piece
            pieces.append(piece)
        data = b"".join(pieces)
    assert fake.released_in_time[-1] is True
    assert data == TRICKLED and answer.headers["content-length"] == str(len(TRICKLED))


@pytest.mark.parametrize("model", ["broken", "broken-chunked"])
def test_an_answer_broken_off_midway_is_one_clean_error_and_the_proxy_goes_on(proxied, model):
    started = time.monotonic()
    with pytest.raises(httpx.TransportError):  # the client sees the break, not a hang
        httpx.post(proxied[0] + "/v1/chat/completions", timeout=30,
                   json={"model": model, "messages": agent_messages()})
    assert time.monotonic() - started < 10
    fine = httpx.post(proxied[0] + "/v1/chat/completions", timeout=30,
                      json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert fine.status_code == 200


def test_llm_continues_a_conversation_through_the_proxy(proxied, upstream, tmp_path):
    pytest.importorskip("llm")
    fake, _ = upstream
    fake.release.set()
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: proxied\n  model_name: {MODEL}\n  api_base: \"{proxied[0]}/v1\"\n"
        "  api_key_name: proxied\n")
    (tmp_path / "keys.json").write_text(json.dumps({"proxied": "sk-llm"}))
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    program = str(Path(sys.executable).with_name("llm"))
    # llm prepends whatever its stdin holds to the prompt: give it an empty pipe, not
    # /dev/null, which a sandbox may hold as a plain file other tests have written to
    first = subprocess.run([program, "-m", "proxied", "-s", SYSTEM, DOCUMENT],
                           capture_output=True, text=True, env=env, timeout=120, input="")
    assert first.returncode == 0, first.stderr
    assert fake.received[-1].json()["messages"][-1]["content"] == DOCUMENT  # the last turn
    second = subprocess.run([program, "-c", QUESTION], capture_output=True, text=True, env=env,
                            timeout=120, input="")
    assert second.returncode == 0, second.stderr
    sent = fake.received[-1]
    assert second.stdout.strip() == f"received {len(sent.body)} bytes"
    assert sent.headers["authorization"] == "Bearer sk-llm"
    turns = sent.json()["messages"]
    assert turns[0] == {"role": "system", "content": SYSTEM}
    assert turns[-1]["content"] == QUESTION
    earlier = [t["content"] for t in turns if t["role"] == "user"][0]
    assert len(earlier) < len(DOCUMENT) / 2
    assert_pieces_verbatim(DOCUMENT, earlier, "[...]")


def post(url: str, body, headers: dict | None = None, path: str = "/v1/chat/completions"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=content, timeout=60,
                      headers={"content-type": "application/json", **(headers or {})})


def test_what_is_not_a_chat_request_goes_upstream_as_it_came(proxied, upstream):
    fake, _ = upstream
    for body in (b"{not json", json.dumps({"model": MODEL, "prompt": DOCUMENT}).encode()):
        answer = post(proxied[0], body)
        assert fake.received[-1].body == body
        assert answer.headers["x-crossprefill"] == "unchanged"
    assert answer.status_code == 200
    assert post(proxied[0], b"{not json").status_code == 400  # the upstream's own verdict


def test_image_parts_pass_untouched_while_text_parts_are_compressed(
        proxied, upstream, llama_dir, target_dir):
    fake, _ = upstream
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": DOCUMENT}, image]},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": [{"type": "text", "text": QUESTION}, image]}]
    assert post(proxied[0], {"model": MODEL, "messages": messages}).status_code == 200
    sent = fake.received[-1].json()["messages"]
    assert sent[0]["content"][1] == image and sent[1:] == messages[1:]
    assert sent[0]["content"][0]["text"] == library(DOCUMENT, llama_dir, target_dir).text


def test_anthropic_tool_results_are_compressed_with_the_clients_key(
        proxied, upstream, llama_dir, target_dir):
    fake, _ = upstream
    messages = [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                   "name": "read_notes", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                              "content": DOCUMENT}]}]
    body = {"model": MODEL, "max_tokens": 64, "system": SYSTEM, "messages": messages}
    answer = post(proxied[0], body, {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"},
                  path="/v1/messages")
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "ok"
    received = fake.received[-1]
    assert received.path == "/v1/messages" and received.headers["x-api-key"] == "sk-ant"
    sent = received.json()
    assert (sent["system"], sent["messages"][:2]) == (SYSTEM, messages[:2])
    result = sent["messages"][2]["content"][0]
    assert result["content"] == library(DOCUMENT, llama_dir, target_dir).text
    assert result["tool_use_id"] == "toolu_1"


def test_the_anthropic_sdk_talks_through_the_proxy(proxied, upstream, llama_dir, target_dir):
    anthropic = pytest.importorskip("anthropic")
    fake, _ = upstream
    client = anthropic.Anthropic(base_url=proxied[0], api_key="sk-ant-sdk", max_retries=0)
    message = client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "read_notes", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": DOCUMENT}]}])
    assert message.content[0].text == "ok" and message.stop_reason == "end_turn"
    received = fake.received[-1]
    # the SDK's credentials (x-api-key or a bearer token, by release) go upstream as sent
    assert "sk-ant-sdk" in (received.headers.get("x-api-key", "")
                            + received.headers.get("authorization", ""))
    assert received.headers["anthropic-version"]
    result = received.json()["messages"][2]["content"][0]
    assert result["content"] == library(DOCUMENT, llama_dir, target_dir).text


def test_the_switch_and_keep_rate_headers_stay_with_the_proxy(
        proxied, upstream, llama_dir, target_dir):
    fake, _ = upstream
    body = {"model": MODEL, "messages": agent_messages()}
    off = post(proxied[0], body, {"X-Crossprefill": "off"})
    assert off.headers["x-crossprefill"] == "off"
    assert fake.received[-1].body == json.dumps(body).encode()
    assert post(proxied[0], body, {"X-Crossprefill-Keep-Rate": "0.5"}).status_code == 200
    received = fake.received[-1]
    assert received.json()["messages"][3]["content"] == library(
        DOCUMENT, llama_dir, target_dir, rate=0.5).text
    assert not any(name.startswith("x-crossprefill") for name in received.headers)
    count = len(fake.received)
    for bad in ("1.5", "zero", "0"):
        refused = post(proxied[0], body, {"X-Crossprefill-Keep-Rate": bad})
        assert refused.status_code == 400
        assert "X-Crossprefill-Keep-Rate" in refused.json()["error"]["message"]
    assert post(proxied[0], body, {"X-Crossprefill": "maybe"}).status_code == 400
    assert len(fake.received) == count  # nothing refused went upstream


def test_the_memo_is_bounded_in_entries_and_in_bytes_of_text(monkeypatch):
    monkeypatch.setattr(compressor_module, "MEMO_ENTRIES", 3)
    monkeypatch.setattr(compressor_module, "MEMO_BYTES", 10_000)
    memo = compressor_module.Memo()
    for number in range(5):
        memo.get(("count", number), lambda: number)
    assert list(memo.results) == [("count", 2), ("count", 3), ("count", 4)]
    memo.get(("count", 2), lambda: pytest.fail("a remembered result is made again"))
    for number in range(3):
        memo.get(("text", number), lambda: "x" * 4_000)
    assert list(memo.results) == [("text", 1), ("text", 2)] and memo.bytes <= 10_000
    memo.clear()
    assert not memo.results and memo.bytes == 0


def test_a_growing_conversation_keeps_its_earlier_compressions(proxied, upstream, monkeypatch):
    fake, _ = upstream
    compressor = proxied[1].state.proxy.compressor
    compressor.memo.clear()
    calls = []
    real = compressor._compress
    monkeypatch.setattr(compressor, "_compress", lambda *a: calls.append(1) or real(*a))
    history = agent_messages(long_text(150))
    post(proxied[0], {"model": MODEL, "messages": history})
    first = fake.received[-1].json()["messages"]
    history[-1:] = [{"role": "assistant", "content": "Day 31: a falcon."},
                    {"role": "tool", "tool_call_id": "call_2", "content": long_text(140)},
                    {"role": "user", "content": QUESTION}]
    post(proxied[0], {"model": MODEL, "messages": history})
    second = fake.received[-1].json()["messages"]
    assert second[:4] == first[:4]  # the same bytes: the upstream's prompt cache still hits
    assert second[5]["content"] != history[5]["content"]
    assert len(calls) == 2  # the repeated tool result came from the memo


def test_upstream_statuses_and_bodies_reach_the_client_as_they_are(proxied, upstream):
    limited = post(proxied[0], {"model": "limited", "messages": agent_messages()})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json() == {"error": {"message": "slow down", "type": "rate_limit"}}
    teapot = httpx.get(proxied[0] + "/v1/teapot?x=1", timeout=30)
    assert (teapot.status_code, teapot.text) == (418, "plain")
    listed = httpx.get(proxied[0] + "/v1/models", timeout=30)
    assert listed.json()["data"][0]["id"] == "test-model"
    assert upstream[0].received[-1].path == "/v1/models"


def test_metrics_count_the_tokens_saved(proxied):
    post(proxied[0], {"model": MODEL, "messages": agent_messages()})
    metrics = httpx.get(proxied[0] + "/metrics", timeout=30).text
    saved = [line for line in metrics.splitlines() if line.startswith("crossprefill_tokens_saved_total")]
    assert saved and float(saved[0].split()[-1]) > 0


def test_unreachable_resetting_and_hanging_upstreams_are_one_clear_error(
        upstream, llama_dir, target_dir):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    with resetting_upstream() as resetting:
        for url in (nowhere, resetting):
            with proxy(url, llama_dir, target_dir, wait=False) as (address, _):
                answer = post(address, body)
                assert answer.status_code == 502
                message = answer.json()["error"]["message"]
                assert message.startswith(f"cannot reach the upstream {url} (") and "\n" not in message
    with proxy(upstream[1], llama_dir, target_dir, wait=False, timeout=1.0) as (address, _):
        started = time.monotonic()
        answer = post(address, {**body, "model": "hang"})
        assert answer.status_code == 504 and time.monotonic() - started < 10
        assert "did not answer in time" in answer.json()["error"]["message"]


def test_a_failing_compression_fails_open_or_closed(upstream, llama_dir, target_dir, capfd):
    fake, _ = upstream
    body = {"model": MODEL, "messages": agent_messages(long_text(120))}

    def crash(*args):
        raise RuntimeError("CUDA error: device-side assert triggered")

    for fail_closed in (False, True):
        with proxy(upstream[1], llama_dir, target_dir, fail_closed=fail_closed) as (url, running):
            running.state.proxy.compressor._compress = crash
            count = len(fake.received)
            answer = post(url, body)
            if fail_closed:
                assert answer.status_code == 502 and len(fake.received) == count
                assert "CUDA error" in answer.json()["error"]["message"]
            else:
                assert answer.status_code == 200 and answer.headers["x-crossprefill"] == "bypassed"
                assert fake.received[-1].body == json.dumps(body).encode()
    warning = capfd.readouterr().err
    assert "compression failed (CUDA error: device-side assert triggered)" in warning
    assert "Bearer" not in warning


def test_a_server_key_is_asked_for_in_its_own_header(upstream, llama_dir, target_dir):
    fake, _ = upstream
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with proxy(upstream[1], llama_dir, target_dir, wait=False, api_key="s3cret") as (url, _):
        assert post(url, body, {"Authorization": "Bearer sk-user"}).status_code == 401
        allowed = post(url, body, {"Authorization": "Bearer sk-user",
                                   "X-Crossprefill-Api-Key": "s3cret"})
        assert allowed.status_code == 200
        headers = fake.received[-1].headers
        assert headers["authorization"] == "Bearer sk-user" and "x-crossprefill-api-key" not in headers


@pytest.mark.parametrize("args, message", [
    (["--keep-rate", "0.3"], "need --upstream"),
    (["--upstream", "ftp://example.com"], "--upstream must be an http"),
    (["--anthropic-upstream", "http://127.0.0.1:9/v1"], "need --upstream"),
    (["--upstream", "http://127.0.0.1:9/v1", "--anthropic-upstream", "ftp://example.com"],
     "--anthropic-upstream must be an http"),
    (["--upstream", "http://127.0.0.1:9/v1", "--target-map", "llama"], "PATTERN=TOKENIZER"),
    (["--upstream", "http://127.0.0.1:9/v1", "--keep-rate", "1.5"], "keep rate"),
])
def test_bad_proxy_options_are_usage_errors(args, message):
    done = CliRunner().invoke(cli_app, ["serve", "--port", str(free_port()), *args])
    assert done.exit_code == 2 and message in done.stderr


def test_the_servers_log_leaves_out_a_broken_upstreams_traceback_only():
    import logging

    from crossprefill_cli.apps.http.upstream import UpstreamBrokeOff, _not_a_broken_upstream

    def record(error):
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                                 "Exception in ASGI application", None,
                                 (type(error), error, None))

    assert not _not_a_broken_upstream(record(UpstreamBrokeOff("http://up")))
    assert not _not_a_broken_upstream(record(ExceptionGroup("g", [UpstreamBrokeOff("u")])))
    assert _not_a_broken_upstream(record(RuntimeError("a real failure")))
