"""Hostile requests: whatever a client sends to `serve`'s endpoints and to the proxy, the
answer is never a 500 and comes in bounded time, and a key never shows in an answer.

Hypothesis draws the bodies: any JSON (wrong types, odd Unicode, nesting), fields of
the right names with wrong values, and raw bytes (invalid UTF-8, truncated JSON);
fixed cases add what a generator rarely reaches (very deep nesting, 100,000 messages).
"""

import contextlib
import http.client
import json
import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from property_settings import examples
from servers import HUGE, START_SECONDS, FakeUpstream, in_thread

from crossprefill_cli.apps.http import connections, wire
from crossprefill_cli.apps.http.proxy import ProxyOptions
from crossprefill_cli.apps.http.server import ServerOptions, listen, serving
from crossprefill_cli.apps.http.warm import FIELDS

KEY = "sk-hostile-secret"
ANSWER_SECONDS = 60
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
FIELD_BODIES = st.dictionaries(st.sampled_from(sorted(FIELDS)), JSON, max_size=5)
RAW = st.binary(max_size=200) | st.sampled_from([
    b'{"text": "\xff\xfe"}', b'{"text": ', b"\x00" * 50, b'{"text": "\\ud800"}',
    b'{"messages": [{"role": "user", "content": "\xc3"}]}'])
CHAT = st.fixed_dictionaries({"model": JSON, "messages": st.lists(
    st.dictionaries(st.sampled_from(["role", "content", "tool_calls", "name"]), JSON,
                    max_size=3) | JSON, max_size=4)}) | JSON
FAST = settings(max_examples=examples(60), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served(llama_dir, target_dir, tmp_path_factory):
    upstream = FakeUpstream()
    with in_thread(upstream.app()) as upstream_url:
        options = ServerOptions(drafts=[str(llama_dir)], targets=[str(target_dir)],
                                api_key=KEY, max_bytes=16_000_000,
                                proxy=ProxyOptions(upstream_url + "/v1", min_tokens=50,
                                                   target_map=(("*", str(target_dir)),),
                                                   expandable=True))
        listening = listen("127.0.0.1", 0)  # served as `crossprefill serve` serves
        with serving(options, listening) as application:
            assert application.state.engine.ready.wait(START_SECONDS)
            url = f"http://127.0.0.1:{listening.getsockname()[1]}"
            with httpx.Client(base_url=url, timeout=ANSWER_SECONDS) as client:
                yield client
        upstream.stop.set()


def post(client: httpx.Client, path: str, content: bytes, **headers) -> httpx.Response:
    keys = {"Authorization": f"Bearer {KEY}", "X-Crossprefill-Api-Key": KEY}
    started = time.monotonic()
    answer = client.post(path, content=content, headers={**keys, **headers})
    assert time.monotonic() - started < ANSWER_SECONDS
    assert answer.status_code < 500 or answer.status_code in (502, 503, 504), answer.text
    assert KEY not in answer.text
    if answer.status_code >= 400 and path != "/v1/chat/completions":
        error = answer.json()["error"]
        assert error["type"] and error["message"] and "\n" not in error["message"]
    return answer


@FAST
@given(body=JSON | FIELD_BODIES)
def test_compress_and_estimate_answer_any_json_without_a_500(served, body):
    for path in ("/v1/compress", "/v1/estimate"):
        post(served, path, json.dumps(body).encode())


@FAST
@given(body=JSON | st.fixed_dictionaries({"ref": JSON}))
def test_expand_answers_any_json_without_a_500(served, body):
    answer = post(served, "/v1/expand", json.dumps(body).encode())
    assert answer.status_code in (400, 404)


@FAST
@given(raw=RAW)
def test_bytes_that_are_not_json_are_a_400(served, raw):
    for path in ("/v1/compress", "/v1/expand"):
        answer = post(served, path, raw)
        assert answer.status_code in (400, 404, 422)


@FAST
@given(body=CHAT)
def test_the_proxy_forwards_any_chat_body_without_a_500(served, body):
    post(served, "/v1/chat/completions", json.dumps(body).encode())
    post(served, "/v1/messages", json.dumps(body).encode(), **{"anthropic-version": "2023-06-01"})


@pytest.mark.parametrize("path", ["/v1/compress", "/v1/expand", "/v1/chat/completions"])
def test_very_deep_nesting_is_refused_or_forwarded_not_crashed(served, path):
    post(served, path, b"[" * 100_000 + b"]" * 100_000)
    post(served, path, b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")


def test_a_hundred_thousand_messages_go_through_in_bounded_time(served):
    messages = [{"role": "user" if n % 2 else "assistant", "content": f"turn {n}"}
                for n in range(100_000)]
    body = json.dumps({"model": "test", "messages": messages}).encode()
    answer = post(served, "/v1/chat/completions", body)
    assert answer.status_code == 200
    # the draft reads every message here, so fewer: what must not grow quadratically
    # (each message's spans carved out of the layout) is checked all the same
    compressed = post(served, "/v1/compress", json.dumps({"messages": messages[:3000]}).encode())
    assert compressed.status_code == 200


def test_a_wrong_key_is_refused_and_never_echoed(served):
    for path in ("/v1/compress", "/v1/expand", "/v1/chat/completions"):
        answer = served.post(path, content=b"{}", headers={
            "Authorization": "Bearer sk-wrong-key", "X-Crossprefill-Api-Key": "sk-wrong-key"})
        assert answer.status_code == 401 and "sk-wrong-key" not in answer.text


def raw_connection(served: httpx.Client) -> socket.socket:
    address = urlsplit(str(served.base_url))
    return socket.create_connection((address.hostname, address.port), timeout=30)


def send_until_answered(raw: socket.socket, pieces, pause: float, seconds: float = 20) -> bytes:
    """Send `pieces` one by one, `pause` seconds apart, until the server answers; then its
    answer's first bytes (b"" when it closed without one, or never answered)."""
    started = time.monotonic()
    for piece in pieces:
        try:
            raw.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        if select.select([raw], [], [], pause)[0] or time.monotonic() - started > seconds:
            break
    return answer_until_closed(raw) if select.select([raw], [], [], 0)[0] else b""


def answer_until_closed(raw: socket.socket) -> bytes:
    """What the server sends until it closes the connection (as it does after a 408 or a
    400 that left part of a request unread)."""
    answer = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while piece := raw.recv(65536):
            answer += piece
    return bytes(answer)


HEAD = (b"POST /v1/compress HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\n")


def test_a_client_that_stalls_its_body_gets_a_408(served, monkeypatch):
    monkeypatch.setattr(wire, "BODY_IDLE_SECONDS", 1.0)
    started = time.monotonic()
    with raw_connection(served) as raw:
        raw.sendall(HEAD + b"Content-Length: 100\r\n\r\n{\"text\": ")
        answer = answer_until_closed(raw).decode()
    assert answer.startswith("HTTP/1.1 408") and "stalled" in answer
    assert time.monotonic() - started < 10


def test_a_client_that_trickles_its_body_gets_a_408_in_bounded_time(served, monkeypatch):
    monkeypatch.setattr(wire, "BODY_IDLE_SECONDS", 1.0)
    monkeypatch.setattr(wire, "MIN_BODY_RATE", 10)  # a second more for every 10 bytes
    started = time.monotonic()
    with raw_connection(served) as raw:
        raw.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
        # a byte every 0.2 s: never idle for a second, 5 bytes a second where 10 are due
        answer = send_until_answered(raw, [b" "] * 1000, pause=0.2).decode()
    assert answer.startswith("HTTP/1.1 408") and "too slowly" in answer
    assert time.monotonic() - started < 10


def test_a_connection_that_sends_no_head_is_closed_and_a_slow_head_gets_a_408(
        served, monkeypatch):
    monkeypatch.setattr(connections, "HEAD_SECONDS", 1.0)
    with raw_connection(served) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b"" and time.monotonic() - started < 10
    with raw_connection(served) as slow:
        started = time.monotonic()
        # a byte every 0.1 s: never idle, never a whole head
        answer = send_until_answered(slow, [bytes([byte]) for byte in HEAD * 10], pause=0.1)
    assert answer.startswith(b"HTTP/1.1 408") and b"head did not arrive" in answer
    assert time.monotonic() - started < 10


def test_a_kept_alive_connection_is_not_cut_while_its_requests_come(served, monkeypatch):
    monkeypatch.setattr(connections, "HEAD_SECONDS", 1.0)
    address = urlsplit(str(served.base_url))
    kept_alive = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection = None
        for _ in range(3):  # 3 x 0.6 s on one connection: each head has its own second
            time.sleep(0.6)
            kept_alive.request("GET", "/healthz")
            answer = kept_alive.getresponse()
            assert answer.status == 200 and answer.read()
            connection = connection or kept_alive.sock
            assert kept_alive.sock is connection
    finally:
        kept_alive.close()


def test_an_oversized_head_is_a_400_and_the_server_keeps_serving(served):
    with raw_connection(served) as raw:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000
        answer = send_until_answered(raw, [head[at:at + 65536] for at in range(0, len(head),
                                                                                 65536)], pause=0)
    assert answer.startswith(b"HTTP/1.1 400")
    assert served.get("/healthz").status_code == 200


def test_a_client_that_reads_nothing_of_its_answer_is_cut_off(served, monkeypatch):
    monkeypatch.setattr(connections, "READ_STALL_SECONDS", 1.0)
    body = json.dumps({"model": "huge", "messages": [{"role": "user", "content": "hi"}]})
    address = urlsplit(str(served.base_url))
    with socket.socket() as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((address.hostname, address.port))
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/json\r\nX-Crossprefill-Api-Key: " + KEY.encode() +
                    b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body.encode())
        time.sleep(4)  # reading nothing while the proxy relays a 32 MiB answer
        raw.settimeout(10)
        head, received, closed = b"", 0, True
        try:
            while piece := raw.recv(65536):
                head = head or piece
                received += len(piece)
        except ConnectionResetError:
            pass
        except TimeoutError:  # still open, still sending
            closed = False
    assert head.startswith(b"HTTP/1.1 200") and closed and received < HUGE  # cut off
    assert served.get("/healthz").status_code == 200
