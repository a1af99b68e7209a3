"""The proxy's expand tool: the model asks for omitted text, the proxy answers itself.

With `--expandable`, a request whose texts the proxy compressed (with references in
their gap markers, `pipeline.references`) also declares a tool, `crossprefill_expand`.
When the model's answer calls it, the proxy looks each reference up, appends the call
and its results to the messages and asks the upstream again, until the model answers
without it (at most `MAX_ROUNDS` times; the last round forbids the tool), so the client
sees one answer and never the tool. Calls to the client's own tools are the client's:
an answer that calls both keeps the client's calls and loses the proxy's, so the
conversation the client stores stays consistent.

The pure parts live here, per dialect: declaring the tool, finding its calls in an
answer, removing them, and the follow-up request. Streams are filtered event by event
(`OpenAIStream`, `AnthropicStream`): everything passes through as it arrives except the
tool's own events; indices of the client's tool calls and content blocks are renumbered
so the client sees them consecutive, and a stream that ends in nothing but the
proxy's calls is continued by the next round's stream instead of ending.
"""

import copy
import json
from dataclasses import dataclass, field
from typing import Callable

from crossprefill_cli.apps.http.chat_requests import ANTHROPIC, OPENAI

TOOL = "crossprefill_expand"
DIALECTS = (OPENAI, ANTHROPIC)  # responses requests are compressed without the tool
MAX_ROUNDS = 8
DESCRIPTION = (
    "Some long texts in this conversation were shortened to fit: each omission is marked "
    "in place like `[... 412 tokens · ref 7f3a9c01:120-480]` (in code, `# ... omitted · "
    "412 tokens · ref ...`). Call this with a marker's ref to read the omitted original "
    "text when what you need may be in it.")
PARAMETERS = {"type": "object", "properties": {"ref": {
    "type": "string", "description": "The ref of a gap marker, such as 7f3a9c01:120-480."}},
    "required": ["ref"]}


@dataclass(frozen=True)
class Call:
    """One call of the expand tool: its id and the reference asked for."""

    id: str
    ref: str


def declare(body: dict, dialect: str) -> None:
    """Add the expand tool to a request body's tools (in place)."""
    tool = ({"name": TOOL, "description": DESCRIPTION, "input_schema": PARAMETERS}
            if dialect == ANTHROPIC else
            {"type": "function", "function": {"name": TOOL, "description": DESCRIPTION,
                                              "parameters": PARAMETERS}})
    tools = body.get("tools")
    body["tools"] = [*(tools if isinstance(tools, list) else []), tool]


def _ref_of(arguments: object) -> str:
    """The reference in a call's arguments (a JSON text or an object); '' when none."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return ""
    ref = arguments.get("ref") if isinstance(arguments, dict) else None
    return ref if isinstance(ref, str) else ""


def _is_ours(call: object) -> bool:
    if not isinstance(call, dict):
        return False
    function = call.get("function")
    return (call.get("name") == TOOL and call.get("type") == "tool_use") or (
        isinstance(function, dict) and function.get("name") == TOOL)


def message_of(answer: dict, dialect: str) -> dict | None:
    """The answer's assistant message (OpenAI: the first choice's); None if it has none."""
    if dialect == ANTHROPIC:
        return answer if isinstance(answer.get("content"), list) else None
    choices = answer.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices \
        and isinstance(choices[0], dict) else None
    return message if isinstance(message, dict) else None


def _calls_field(dialect: str) -> str:
    return "content" if dialect == ANTHROPIC else "tool_calls"


def calls(answer: object, dialect: str) -> tuple[list[Call], bool]:
    """The expand calls in an answer, and whether it calls any other tool too."""
    message = message_of(answer, dialect) if isinstance(answer, dict) else None
    listed = message.get(_calls_field(dialect)) if message else None
    if not isinstance(listed, list):
        return [], False
    ours = [Call(str(c.get("id")), _ref_of(c.get("input") if dialect == ANTHROPIC
                                           else c.get("function", {}).get("arguments")))
            for c in listed if _is_ours(c)]
    others = any(not _is_ours(c) and (dialect != ANTHROPIC or c.get("type") == "tool_use")
                 for c in listed if isinstance(c, dict))
    return ours, others


def without_calls(answer: dict, dialect: str) -> dict:
    """The answer without the expand tool's calls (the client's own stay)."""
    answer = copy.deepcopy(answer)
    message = message_of(answer, dialect)
    name = _calls_field(dialect)
    if message is not None and isinstance(message.get(name), list):
        message[name] = [c for c in message[name] if not _is_ours(c)]
    return answer


def continued(body: dict, message: dict, results: list[tuple[Call, str]], dialect: str,
              *, last: bool) -> dict:
    """The next round's request: the messages, the model's message that called the
    tool, and each call's result; with `last`, the tool may no longer be called."""
    body = copy.deepcopy(body)
    if dialect == ANTHROPIC:
        body["messages"] = [*body["messages"],
                            {"role": "assistant", "content": message["content"]},
                            {"role": "user", "content": [
                                {"type": "tool_result", "tool_use_id": call.id, "content": text}
                                for call, text in results]}]
    else:
        assistant = {key: value for key, value in message.items()
                     if key in ("role", "content", "tool_calls")}
        body["messages"] = [*body["messages"], assistant,
                            *({"role": "tool", "tool_call_id": call.id, "content": text}
                              for call, text in results)]
    if last:
        body["tool_choice"] = {"type": "none"} if dialect == ANTHROPIC else "none"
    return body


def sse_events(lines: list[str]) -> tuple[str | None, str]:
    """An SSE event's name and data from its lines."""
    name, data = None, []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return name, "\n".join(data)


@dataclass
class StreamRound:
    """What one round's stream said: whether it ended in the proxy's calls alone (then
    the next round continues it), the calls, and the assistant message they belong to."""

    continues: bool = False
    calls: list[Call] = field(default_factory=list)
    message: dict = field(default_factory=dict)


class OpenAIStream:
    """Filters chat completion chunks: the expand tool's deltas are held back, the
    client's tool calls renumbered; a round ending in the proxy's calls alone does not
    end the client's stream."""

    def __init__(self):
        self.relayed_role = False

    def round(self, emit: Callable[[bytes], None]) -> "Callable[[str | None, str], bool]":
        """A handler for one round's events: it emits what the client sees and returns
        False once the round's stream is over; its summary is `self.state`."""
        ours: dict[int, dict] = {}  # upstream index -> the call being streamed
        theirs: dict[int, int] = {}  # upstream index -> the index the client sees
        content: list[str] = []
        self.state = StreamRound(message={"role": "assistant"})

        def handle(name: str | None, data: str) -> bool:
            if data.strip() == "[DONE]":
                if not self.state.continues:
                    emit(b"data: [DONE]\n\n")
                return False
            try:
                chunk = json.loads(data)
            except ValueError:
                emit(f"data: {data}\n\n".encode())
                return True
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                if not self.state.continues:
                    emit(f"data: {data}\n\n".encode())  # a usage chunk, an error
                return True
            choice = choices[0]
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            changed = False
            if isinstance(delta.get("tool_calls"), list):
                kept = []
                for call in delta["tool_calls"]:
                    index = call.get("index", 0) if isinstance(call, dict) else 0
                    if index in ours or (index not in theirs and _is_ours(call)):
                        _accumulate(ours.setdefault(index, {"id": "", "arguments": ""}), call)
                        continue
                    theirs.setdefault(index, len(theirs))
                    kept.append({**call, "index": theirs[index]})
                changed = len(kept) != len(delta["tool_calls"]) or any(
                    k["index"] != c.get("index") for k, c in zip(kept, delta["tool_calls"]))
                delta["tool_calls"] = kept
                if not kept:
                    del delta["tool_calls"]
            finish = choice.get("finish_reason")
            if finish == "tool_calls" and ours and not theirs:
                self.state = StreamRound(True, [Call(c["id"], _ref_of(c["arguments"]))
                                                for c in ours.values()], {
                    "role": "assistant", "content": "".join(content) or None,
                    "tool_calls": [{"id": c["id"], "type": "function", "function": {
                        "name": TOOL, "arguments": c["arguments"]}} for c in ours.values()]})
                return True
            if self.relayed_role and delta.get("role") and len(delta) == 1 and not finish:
                return True  # a continued round's opening: the client saw one already
            self.relayed_role = self.relayed_role or bool(delta.get("role"))
            if changed and not delta and finish is None:
                return True
            emit(f"data: {json.dumps(chunk) if changed else data}\n\n".encode())
            return True

        return handle


def _accumulate(call: dict, delta: dict) -> None:
    if delta.get("id"):
        call["id"] = delta["id"]
    function = delta.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        call["arguments"] += function["arguments"]


class AnthropicStream:
    """Filters Anthropic message events: the expand tool's content blocks are held back
    and the others renumbered; a round ending in the proxy's calls alone is continued
    (its `message_delta` and `message_stop` are not relayed, the next round's
    `message_start` neither)."""

    def __init__(self):
        self.blocks_relayed = 0
        self.started = False

    def round(self, emit: Callable[[bytes], None]) -> "Callable[[str | None, str], bool]":
        blocks: dict[int, dict] = {}  # every block of this round, rebuilt
        ours: set[int] = set()
        renumbered: dict[int, int] = {}
        self.state = StreamRound()

        def relay(name: str | None, event: dict | None, data: str) -> None:
            text = data if event is None else json.dumps(event)
            emit((f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode())

        def handle(name: str | None, data: str) -> bool:
            try:
                event = json.loads(data)
            except ValueError:
                relay(name, None, data)
                return True
            kind = event.get("type") if isinstance(event, dict) else None
            index = event.get("index") if isinstance(event, dict) else None
            if kind == "message_start":
                if not self.started:
                    self.started = True
                    relay(name, None, data)
                return True
            if kind == "content_block_start" and isinstance(index, int):
                block = event.get("content_block") or {}
                blocks[index] = copy.deepcopy(block)
                if _is_ours(block):
                    ours.add(index)
                    return True
                renumbered[index] = self.blocks_relayed
                self.blocks_relayed += 1
            if kind in ("content_block_delta", "content_block_stop") and isinstance(index, int):
                if kind == "content_block_delta":
                    _apply(blocks.setdefault(index, {}), event.get("delta") or {})
                if index in ours:
                    return True
            if isinstance(index, int) and index in renumbered and renumbered[index] != index:
                relay(name, {**event, "index": renumbered[index]}, data)
                return True
            if kind == "message_delta":
                stop = (event.get("delta") or {}).get("stop_reason")
                others = any(b.get("type") == "tool_use" and i not in ours
                             for i, b in blocks.items())
                if stop == "tool_use" and ours and not others:
                    finished = {i: _finished(block) for i, block in blocks.items()}
                    self.state = StreamRound(True, [
                        Call(str(finished[i].get("id")), _ref_of(finished[i].get("input")))
                        for i in sorted(ours)], {"content": [finished[i] for i in sorted(blocks)]})
                    return True
            if kind == "message_stop":
                if not self.state.continues:
                    relay(name, None, data)
                return False
            relay(name, None, data)
            return True

        return handle


def _apply(block: dict, delta: dict) -> None:
    """A content block's delta, applied to the block being rebuilt."""
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        block["partial_json"] = block.get("partial_json", "") + delta.get("partial_json", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")


def _finished(block: dict) -> dict:
    """A rebuilt block as the next request sends it back (a tool use's input parsed)."""
    block = dict(block)
    partial = block.pop("partial_json", None)
    if block.get("type") == "tool_use" and partial:
        try:
            block["input"] = json.loads(partial)
        except ValueError:
            block["input"] = {}
    return block
