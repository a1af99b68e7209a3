"""The expand tool's stream filters: a streamed answer passes through event by event.

Everything reaches the client as it arrives except the expand tool's own events; the
client's tool calls, content blocks and output items are renumbered so that it sees
them consecutive, and a stream that ends in nothing but the proxy's calls is continued
by the next round's stream instead of ending (`upstream.Upstream.expanding` drives the
rounds, `expansion` holds the rest of the tool). One filter per dialect: OpenAI chat
completion chunks (`OpenAIStream`), Anthropic message events (`AnthropicStream`),
OpenAI responses events (`ResponsesStream`).
"""

import copy
import json
from dataclasses import dataclass, field
from typing import Callable

from crossprefill_cli.apps.http.chat_requests import ANTHROPIC, RESPONSES
from crossprefill_cli.apps.http.expansion import (TOOL, Call, call_of, is_clients_call, is_ours,
                                                  ref_of, summed_usage)

# What a round's filter is: it takes each event (its name and data), emits what the
# client sees, and says whether the round's stream goes on.
Handler = Callable[[str | None, str], bool]


def sse_events(lines: list[str]) -> tuple[str | None, str]:
    """An SSE event's name and data from its lines."""
    name, data = None, []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return name, "\n".join(data)


def _sse(name: str | None, data: str) -> bytes:
    """One SSE event as the client gets it."""
    return (f"event: {name}\n" if name else "").encode() + f"data: {data}\n\n".encode()


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
        self.usage: dict | None = None  # the usage of the rounds before this one, summed

    def round(self, emit: Callable[[bytes], None]) -> Handler:
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
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            if isinstance(usage, dict) and self.usage and not self.state.continues:
                chunk["usage"] = summed_usage(self.usage, usage)  # every round was billed
                data = json.dumps(chunk)
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                if not self.state.continues:
                    emit(f"data: {data}\n\n".encode())  # a usage chunk, an error
                elif isinstance(usage, dict):
                    self.usage = summed_usage(self.usage, usage)
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
                    if index in ours or (index not in theirs and is_ours(call)):
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
                if isinstance(usage, dict):
                    self.usage = summed_usage(self.usage, usage)
                self.state = StreamRound(True, [Call(c["id"], ref_of(c["arguments"]))
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
        self.usage: dict | None = None  # the usage of the rounds before this one, summed

    def round(self, emit: Callable[[bytes], None]) -> Handler:
        blocks: dict[int, dict] = {}  # every block of this round, rebuilt
        ours: set[int] = set()
        renumbered: dict[int, int] = {}
        # this round's usage: message_start's, overwritten by message_delta's counts
        # (cumulative within a round)
        usage: dict = {}
        self.state = StreamRound()

        def relay(name: str | None, event: dict | None, data: str) -> None:
            text = data if event is None else json.dumps(event)
            emit(_sse(name, text))

        def handle(name: str | None, data: str) -> bool:
            try:
                event = json.loads(data)
            except ValueError:
                relay(name, None, data)
                return True
            kind = event.get("type") if isinstance(event, dict) else None
            index = event.get("index") if isinstance(event, dict) else None
            if kind == "message_start":
                started_usage = (event.get("message") or {}).get("usage")
                usage.update(started_usage if isinstance(started_usage, dict) else {})
                if not self.started:
                    self.started = True
                    relay(name, None, data)
                return True
            if kind == "content_block_start" and isinstance(index, int):
                block = event.get("content_block") or {}
                blocks[index] = copy.deepcopy(block)
                if is_ours(block):
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
                if isinstance(event.get("usage"), dict):
                    usage.update(event["usage"])
                if stop == "tool_use" and ours and not others:
                    finished = {i: _finished(block) for i, block in blocks.items()}
                    self.state = StreamRound(
                        True, [call_of(finished[i], ANTHROPIC) for i in sorted(ours)],
                        {"content": [finished[i] for i in sorted(blocks)]})
                    self.usage = summed_usage(self.usage, usage)
                    return True
                if self.usage and isinstance(event.get("usage"), dict):
                    # the client's totals: every round was billed
                    relay(name, {**event, "usage": summed_usage(self.usage, usage)}, data)
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


class ResponsesStream:
    """Filters OpenAI responses events: the expand tool's output items and their events
    are held back, the others' `output_index` renumbered and every `sequence_number`
    made consecutive across rounds; a round ending in the proxy's calls alone is
    continued (its `response.completed` is not relayed, nor the next round's
    `response.created` and `response.in_progress`), and the completed response the
    client gets lists every output item it was shown, of every round, under the first
    round's id (one response from start to end, as clients check; only unstored
    requests get the tool, `expansion.offered`)."""

    def __init__(self):
        self.sequence = 0
        self.items_relayed = 0
        self.started = False
        self.shown: list[dict] = []  # earlier rounds' output items the client saw
        self.response_id: object = None
        self.usage: dict | None = None  # the usage of the rounds before this one, summed

    def round(self, emit: Callable[[bytes], None]) -> Handler:
        first, self.started = not self.started, True
        ours: set[int] = set()
        renumbered: dict[int, int] = {}
        self.state = StreamRound()

        def relay(name: str | None, event: dict) -> None:
            if "sequence_number" in event:
                event = {**event, "sequence_number": self.sequence}
                self.sequence += 1
            response = event.get("response")
            if isinstance(response, dict) and "id" in response:
                if first and self.response_id is None:
                    self.response_id = response["id"]
                elif not first:
                    event = {**event, "response": {**response, "id": self.response_id}}
            emit(_sse(name, json.dumps(event)))

        def handle(name: str | None, data: str) -> bool:
            try:
                event = json.loads(data)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                emit(_sse(name, data))
                return True
            kind = event.get("type", name)
            index = event.get("output_index")
            if kind in ("response.created", "response.in_progress"):
                if first:
                    relay(name, event)
                return True
            if kind == "response.output_item.added" and isinstance(index, int):
                if is_ours(event.get("item")):
                    ours.add(index)
                    return True
                renumbered[index] = self.items_relayed
                self.items_relayed += 1
            if isinstance(index, int):
                if index in ours:
                    return True
                if index in renumbered:
                    event = {**event, "output_index": renumbered[index]}
            if kind == "response.completed" and isinstance(event.get("response"), dict):
                response = event["response"]
                output = response.get("output") if isinstance(response.get("output"), list) else []
                calls = [call for call in output if is_ours(call)]
                usage = response.get("usage")
                if calls and not any(is_clients_call(item) for item in output):
                    self.state = StreamRound(True, [call_of(c, RESPONSES) for c in calls],
                                             {"output": output})
                    self.shown += [item for item in output if not is_ours(item)]
                    if isinstance(usage, dict):
                        self.usage = summed_usage(self.usage, usage)
                    return False
                shown = [*self.shown, *(item for item in output if not is_ours(item))]
                if self.usage and isinstance(usage, dict):  # every round was billed
                    response = {**response, "usage": summed_usage(self.usage, usage)}
                relay(name, {**event, "response": {**response, "output": shown}})
                return False
            relay(name, event)
            return True

        return handle


def stream_filter(dialect: str) -> "OpenAIStream | AnthropicStream | ResponsesStream":
    """A fresh filter for one client's streamed answer in `dialect`."""
    if dialect == ANTHROPIC:
        return AnthropicStream()
    return ResponsesStream() if dialect == RESPONSES else OpenAIStream()
