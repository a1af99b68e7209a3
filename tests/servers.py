"""Servers for tests, all on loopback: `crossprefill serve` as a process, any ASGI app in
a thread, and a fake LLM API upstream that records what it received.

Every server is started and stopped by a context manager inside the test that uses it;
the fake upstream's waits are bounded (`HANG_SECONDS`, `RELEASE_SECONDS`), so a test that
goes wrong fails instead of hanging.
"""

import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field

START_SECONDS = 120
HANG_SECONDS = 30  # a "hang" upstream answers after this, if the test has not stopped it
RELEASE_SECONDS = 20  # a stream waits this long at most for the client's first chunk
TRICKLED = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [
    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                      "content": "slow " * 2000}}]}).encode()

HUGE = 32 * 2**20  # more than the sockets' buffers between a client and a server hold


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(*args: str, env: dict | None = None):
    """A running `crossprefill serve` on loopback; yields its URL, stops it after."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "crossprefill_cli", "serve", "--port",
                                str(port), *args], env={**os.environ, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                if status(url + "/healthz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the server did not become ready")
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def call(url: str, body, headers: dict | None = None) -> tuple[int, dict, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code



@contextmanager
def in_thread(app, port: int | None = None):
    """Serve the ASGI `app` with uvicorn in a thread on loopback; yields its base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=30)


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class FakeUpstream:
    """An LLM API that records every request and answers by the request's `model`:
    `hang` never answers (until `HANG_SECONDS`), `limited` is a 429 with Retry-After,
    `trickle` sends half of a JSON answer and the rest once `release` is set, `broken`
    half of one before its connection breaks (`broken-chunked`: unsized), `huge` one of
    `HUGE` bytes;
    anything else gets a chat completion (JSON, or SSE chunks when `stream` is true, the
    rest held back until the client has seen the first one: `release`)."""

    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    released_in_time: list[bool] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def record(request):
            body = await request.body()
            self.received.append(Received(request.method, request.url.path,
                                          dict(request.headers), body))
            return body

        async def models(request):
            await record(request)
            return JSONResponse({"object": "list", "data": [
                {"id": "test-model", "object": "model", "created": 0, "owned_by": "tests"}]})

        async def chat(request):
            try:
                body = json.loads(await record(request))
            except (ValueError, RecursionError):
                return JSONResponse({"error": {"message": "not JSON", "type": "invalid"}}, 400)
            model = body.get("model") if isinstance(body, dict) else None
            if model == "hang":
                await asyncio.to_thread(self.stop.wait, HANG_SECONDS)
            if model == "limited":
                return JSONResponse({"error": {"message": "slow down", "type": "rate_limit"}},
                                    429, headers={"Retry-After": "7"})
            if model == "broken":  # half of a JSON answer, then the connection breaks
                return StreamingResponse(self.broken(), media_type="application/json",
                                         headers={"Content-Length": str(len(TRICKLED))})
            if model == "broken-chunked":  # the same, unsized (chunked transfer encoding)
                return StreamingResponse(self.broken(), media_type="application/json")
            if model == "trickle":  # a plain JSON answer, its second half held back
                return StreamingResponse(self.halves(), media_type="application/json",
                                         headers={"Content-Length": str(len(TRICKLED))})
            if model == "huge":  # a plain answer of HUGE bytes (blanks after the JSON)
                return StreamingResponse(self.huge(), media_type="application/json",
                                         headers={"Content-Length": str(HUGE)})
            if isinstance(model, str) and model.startswith("seeker"):
                return seeker_answer(body, "openai")
            size = len(self.received[-1].body)
            if isinstance(body, dict) and body.get("stream"):
                return StreamingResponse(self.chunks(model, size), media_type="text/event-stream")
            return JSONResponse({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": f"received {size} bytes"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
                headers={"X-Upstream": "fake"})

        async def messages(request):
            try:
                body = json.loads(await record(request))
            except (ValueError, RecursionError):
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                return JSONResponse({"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "bad body"}}, 400)
            if body["model"].startswith("seeker"):
                return seeker_answer(body, "anthropic")
            return JSONResponse({
                "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})

        async def responses(request):
            try:
                body = json.loads(await record(request))
            except (ValueError, RecursionError):
                body = None
            if isinstance(body, dict) and str(body.get("model")).startswith("seeker"):
                return seeker_answer(body, "responses")
            return JSONResponse({"id": "resp_1", "object": "response", "status": "completed",
                                 "output": [{"type": "message", "role": "assistant", "content": [
                                     {"type": "output_text", "text": "ok"}]}]})

        async def teapot(request):
            await record(request)
            return Response(b"plain", status_code=418, media_type="text/plain")

        return Starlette(routes=[Route("/v1/models", models), Route("/v1/teapot", teapot),
                                 Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/messages", messages, methods=["POST"]),
                                 Route("/v1/responses", responses, methods=["POST"])])

    async def broken(self):
        yield TRICKLED[:len(TRICKLED) // 2]
        raise ConnectionResetError("the upstream breaks off mid-answer")

    async def huge(self):
        yield TRICKLED
        for _ in range((HUGE - len(TRICKLED)) // 65536):
            yield b" " * 65536
        yield b" " * ((HUGE - len(TRICKLED)) % 65536)

    async def halves(self):
        yield TRICKLED[:len(TRICKLED) // 2]
        self.released_in_time.append(await asyncio.to_thread(self.release.wait, RELEASE_SECONDS))
        yield TRICKLED[len(TRICKLED) // 2:]

    async def chunks(self, model: str, size: int):
        words = ["received ", f"{size} ", "bytes"]
        for number, word in enumerate(words):
            chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                     "model": model, "choices": [{"index": 0, "delta": {"content": word},
                                                  "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            if number == 0:
                self.released_in_time.append(
                    await asyncio.to_thread(self.release.wait, RELEASE_SECONDS))
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()


NEEDLE = "NEEDLE"  # the scripted model answers with the line that holds it
EXPAND_TOOL = "crossprefill_expand"
MARKER_REF = re.compile(r"\bref ([0-9a-f]+:\d+-\d+)")


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def seeker_step(body: dict, dialect: str) -> tuple[str, str]:
    """What the scripted model `seeker` does: ("answer", the line holding NEEDLE) when it
    can see one; else ("call", a ref) of the first gap marker it has not expanded yet,
    when the request offers the expand tool and lets it be called; else ("answer",
    "not found")."""
    conversation = _conversation(body, dialect)
    texts = _strings(conversation)
    for text in texts:
        for line in text.splitlines():
            if NEEDLE in line:
                return "answer", line.strip()
    tools = body.get("tools") or []
    offered = any(EXPAND_TOOL in (t.get("name"), (t.get("function") or {}).get("name"))
                  for t in tools) and body.get("tool_choice") not in ("none", {"type": "none"})
    asked = set()
    for message in conversation:
        content = message.get("content")
        for call in (message.get("tool_calls") or []) + [message] + [
                block for block in (content if isinstance(content, list) else [])
                if isinstance(block, dict) and block.get("type") == "tool_use"]:
            if call.get("type") == "function_call" and call.get("name") == EXPAND_TOOL:
                asked.add(json.loads(call["arguments"])["ref"])
            elif EXPAND_TOOL in (call.get("name"), (call.get("function") or {}).get("name")):
                asked.add((call.get("input") or json.loads(call["function"]["arguments"]))["ref"])
    refs = [ref for text in texts for ref in MARKER_REF.findall(text) if ref not in asked]
    return ("call", refs[0]) if offered and refs else ("answer", "not found")


def _conversation(body: dict, dialect: str) -> list[dict]:
    """A request's messages (responses: its input items)."""
    if dialect != "responses":
        return body.get("messages", [])
    given = body.get("input")
    return [{"role": "user", "content": given}] if isinstance(given, str) else given


def seeker_answer(body: dict, dialect: str):
    """The scripted model's answer, as JSON or SSE in the request's dialect; `seeker-both`
    calls the client's own tool `lookup` beside the expand tool."""
    from starlette.responses import JSONResponse, StreamingResponse

    step, value = seeker_step(body, dialect)
    calls = [(EXPAND_TOOL, {"ref": value})] if step == "call" else []
    if calls and body["model"] == "seeker-both":
        calls.append(("lookup", {"key": "weather"}))
    number = len(_conversation(body, dialect))
    if dialect == "responses":
        output = [{"type": "message", "id": f"msg_{number}", "role": "assistant",
                   "status": "completed", "content": [{"type": "output_text", "annotations": [],
                                                       "text": value if step == "answer"
                                                       else "Let me look."}]}] + [
            {"type": "function_call", "id": f"fc_{number}_{i}", "call_id": f"call_{number}_{i}",
             "name": name, "arguments": json.dumps(arguments), "status": "completed"}
            for i, (name, arguments) in enumerate(calls)]
        response = {"id": f"resp_{number}", "object": "response", "created_at": 0,
                    "model": body["model"], "status": "completed", "output": output,
                    "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
        if body.get("stream"):
            return StreamingResponse(_responses_events(response), media_type="text/event-stream")
        return JSONResponse(response)
    if dialect == "anthropic":
        blocks = [{"type": "text", "text": value if step == "answer" else "Let me look."}] + [
            {"type": "tool_use", "id": f"toolu_{number}_{i}", "name": name, "input": arguments}
            for i, (name, arguments) in enumerate(calls)]
        stop = "tool_use" if calls else "end_turn"
        if body.get("stream"):
            return StreamingResponse(_anthropic_events(body["model"], blocks, stop),
                                     media_type="text/event-stream")
        return JSONResponse({"id": "msg_1", "type": "message", "role": "assistant",
                             "model": body["model"], "content": blocks, "stop_reason": stop,
                             "stop_sequence": None,
                             "usage": {"input_tokens": 1, "output_tokens": 1}})
    tool_calls = [{"id": f"call_{number}_{i}", "type": "function",
                   "function": {"name": name, "arguments": json.dumps(arguments)}}
                  for i, (name, arguments) in enumerate(calls)]
    message = {"role": "assistant", "content": None if calls else value,
               **({"tool_calls": tool_calls} if calls else {})}
    finish = "tool_calls" if calls else "stop"
    if body.get("stream"):
        return StreamingResponse(_openai_chunks(body["model"], message, finish),
                                 media_type="text/event-stream")
    return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                         "model": body["model"], "choices": [
                             {"index": 0, "finish_reason": finish, "message": message}]})


async def _openai_chunks(model: str, message: dict, finish: str):
    def chunk(delta, finish_reason=None):
        data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish_reason}]}
        return f"data: {json.dumps(data)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    if message["content"]:
        for word in message["content"].split(" "):
            yield chunk({"content": word + " "})
    for index, call in enumerate(message.get("tool_calls", [])):
        arguments = call["function"]["arguments"]
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": ""}}]})
        for piece in (arguments[:5], arguments[5:]):  # arguments arrive in pieces
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish) + b"data: [DONE]\n\n"


async def _anthropic_events(model: str, blocks: list[dict], stop: str):
    def event(name, data):
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    yield event("message_start", {"message": {"id": "msg_1", "type": "message",
                                              "role": "assistant", "model": model,
                                              "content": [], "stop_reason": None,
                                              "stop_sequence": None,
                                              "usage": {"input_tokens": 1, "output_tokens": 0}}})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield event("content_block_start", {"index": index,
                                                "content_block": {"type": "text", "text": ""}})
            yield event("content_block_delta", {"index": index, "delta": {
                "type": "text_delta", "text": block["text"]}})
        else:
            yield event("content_block_start", {"index": index, "content_block": {
                **block, "input": {}}})
            arguments = json.dumps(block["input"])
            for piece in (arguments[:5], arguments[5:]):
                yield event("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": piece}})
        yield event("content_block_stop", {"index": index})
    yield event("message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": 1}})
    yield event("message_stop", {})


async def _responses_events(response: dict):
    """A responses stream: every event the API sends for a message and function calls."""
    sequence = iter(range(1_000))

    def event(name, data):
        data = {"type": name, "sequence_number": next(sequence), **data}
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    opening = {**response, "status": "in_progress", "output": []}
    yield event("response.created", {"response": opening})
    yield event("response.in_progress", {"response": opening})
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event("response.output_item.added", {"output_index": index, "item": {
                **item, "status": "in_progress", "content": []}})
            part = {"type": "output_text", "annotations": [], "text": ""}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", {**where, "part": part})
            for word in text.split(" "):
                yield event("response.output_text.delta", {**where, "delta": word + " "})
            yield event("response.output_text.done", {**where, "text": text})
            yield event("response.content_part.done", {**where, "part": {**part, "text": text}})
        else:
            yield event("response.output_item.added", {"output_index": index, "item": {
                **item, "status": "in_progress", "arguments": ""}})
            arguments = item["arguments"]
            for piece in (arguments[:5], arguments[5:]):  # arguments arrive in pieces
                yield event("response.function_call_arguments.delta", {
                    "item_id": item["id"], "output_index": index, "delta": piece})
            yield event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "arguments": arguments})
        yield event("response.output_item.done", {"output_index": index, "item": item})
    yield event("response.completed", {"response": response})


@contextmanager
def fake_upstream():
    """A `FakeUpstream` in a thread; yields it and its API base URL (`.../v1`)."""
    fake = FakeUpstream()
    with in_thread(fake.app()) as url:
        yield fake, url + "/v1"
        fake.stop.set()


@contextmanager
def proxy(upstream_url: str, llama_dir, target_dir, *, models: str = "test-*",
          wait: bool = True, api_key=None, **options):
    """`serve --upstream` in a thread, in front of `upstream_url`, counting models that
    match `models` in the test target; yields its URL and app (ready, unless not `wait`)."""
    from crossprefill_cli.apps.http.proxy import ProxyOptions
    from crossprefill_cli.apps.http.server import ServerOptions, create_app

    options.setdefault("min_tokens", 300)
    server = ServerOptions(drafts=[str(llama_dir)], targets=[str(target_dir)], api_key=api_key,
                           proxy=ProxyOptions(upstream_url, target_map=((models, str(target_dir)),),
                                              **options))
    application = create_app(server)
    with in_thread(application) as url:
        assert not wait or application.state.engine.ready.wait(START_SECONDS)
        yield url, application


@contextmanager
def resetting_upstream():
    """A port that accepts connections and resets them at once (TCP RST); yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            connection.recv(65536)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()
