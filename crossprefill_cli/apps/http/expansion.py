"""The proxy's expand tool: the model asks for omitted text, the proxy answers itself.

With `--expandable`, a request whose texts the proxy compressed (with references in
their gap markers, `pipeline.references`) also declares a tool, `crossprefill_expand`.
When the model's answer calls it, the proxy looks each reference up, appends the call
and its results to the conversation and asks the upstream again, until the model
answers without it (at most `MAX_ROUNDS` times; the last round forbids the tool), so the
client sees one answer and never the tool. Calls to the client's own tools are the
client's: an answer that calls both keeps the client's calls and loses the proxy's, so
the conversation the client stores stays consistent.

The pure parts live here, per dialect (OpenAI chat completions, Anthropic messages,
OpenAI responses): declaring the tool, finding its calls in an answer, removing them,
and the follow-up request. Streams are filtered event by event in `expansion_streams`.
"""

import copy
import json
from dataclasses import dataclass

from crossprefill_cli.apps.http.chat_requests import ANTHROPIC, OPENAI, RESPONSES

TOOL = "crossprefill_expand"
DIALECTS = (OPENAI, ANTHROPIC, RESPONSES)
# Output items of the Responses API that are calls the API runs itself, not the client:
# an answer holding one still leaves nothing for the client to answer.
HOSTED_CALLS = frozenset({"web_search_call", "file_search_call", "code_interpreter_call",
                          "image_generation_call", "mcp_call"})
MAX_ROUNDS = 8
DESCRIPTION = (
    "Some long texts in this conversation were shortened to fit: each omission is marked "
    "in place like `[... 412 tokens · ref 7f3a9c01:120-480]` (in code, `# ... omitted · "
    "412 tokens · ref ...`). Call this with a marker's ref to read the omitted original "
    "text when what you need may be in it.")
PARAMETERS = {"type": "object", "properties": {"ref": {
    "type": "string", "description": "The ref of a gap marker, such as 7f3a9c01:120-480."}},
    "required": ["ref"]}


def offered(body: dict, dialect: str) -> bool:
    """Whether a compressed request may get the tool: in every dialect, except a
    responses request the API stores (`store` not false). A stored response can be
    continued by its id (`previous_response_id`), and a stream names one response from
    start to end (the OpenAI SDK's stream helper insists), which with the tool would be
    the proxy's first round: stored ending in a call the client never answered.
    Unstored requests (clients that send the whole conversation each time) get it;
    stored ones keep bare markers."""
    return dialect in DIALECTS and (dialect != RESPONSES or body.get("store") is False)


@dataclass(frozen=True)
class Call:
    """One call of the expand tool: its id and the reference asked for."""

    id: str
    ref: str


def declare(body: dict, dialect: str) -> None:
    """Add the expand tool to a request body's tools (in place)."""
    if dialect == ANTHROPIC:
        tool = {"name": TOOL, "description": DESCRIPTION, "input_schema": PARAMETERS}
    elif dialect == RESPONSES:
        tool = {"type": "function", "name": TOOL, "description": DESCRIPTION,
                "parameters": PARAMETERS}
    else:
        tool = {"type": "function", "function": {"name": TOOL, "description": DESCRIPTION,
                                                 "parameters": PARAMETERS}}
    tools = body.get("tools")
    body["tools"] = [*(tools if isinstance(tools, list) else []), tool]


def ref_of(arguments: object) -> str:
    """The reference in a call's arguments (a JSON text or an object); '' when none."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return ""
    ref = arguments.get("ref") if isinstance(arguments, dict) else None
    return ref if isinstance(ref, str) else ""


def is_ours(call: object) -> bool:
    """Whether a tool call (of any dialect: a chat completion's call, a `tool_use`
    block, a responses `function_call` item) is the expand tool's."""
    if not isinstance(call, dict):
        return False
    function = call.get("function")
    return (call.get("name") == TOOL and call.get("type") in ("tool_use", "function_call")) \
        or (isinstance(function, dict) and function.get("name") == TOOL)


def is_clients_call(item: object) -> bool:
    """Whether a responses output item is a call the client is to answer."""
    kind = item.get("type") if isinstance(item, dict) else None
    return isinstance(kind, str) and kind.endswith("_call") and kind not in HOSTED_CALLS \
        and not is_ours(item)


def message_of(answer: dict, dialect: str) -> dict | None:
    """The answer's assistant message (OpenAI: the first choice's; Anthropic and
    responses: the answer itself); None if it has none."""
    if dialect in (ANTHROPIC, RESPONSES):
        return answer if isinstance(answer.get(_calls_field(dialect)), list) else None
    choices = answer.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices \
        and isinstance(choices[0], dict) else None
    return message if isinstance(message, dict) else None


def _calls_field(dialect: str) -> str:
    return {ANTHROPIC: "content", RESPONSES: "output"}.get(dialect, "tool_calls")


def calls(answer: object, dialect: str) -> tuple[list[Call], bool]:
    """The expand calls in an answer, and whether it calls any other tool too."""
    message = message_of(answer, dialect) if isinstance(answer, dict) else None
    listed = message.get(_calls_field(dialect)) if message else None
    if not isinstance(listed, list):
        return [], False
    ours = [call_of(c, dialect) for c in listed if is_ours(c)]
    if dialect == RESPONSES:
        others = any(is_clients_call(c) for c in listed)
    else:
        others = any(not is_ours(c) and (dialect != ANTHROPIC or c.get("type") == "tool_use")
                     for c in listed if isinstance(c, dict))
    return ours, others


def call_of(call: dict, dialect: str) -> Call:
    """An expand tool's call (`is_ours`) of `dialect` as a `Call`."""
    if dialect == ANTHROPIC:
        return Call(str(call.get("id")), ref_of(call.get("input")))
    if dialect == RESPONSES:
        return Call(str(call.get("call_id")), ref_of(call.get("arguments")))
    return Call(str(call.get("id")), ref_of(call.get("function", {}).get("arguments")))


def without_calls(answer: dict, dialect: str) -> dict:
    """The answer without the expand tool's calls (the client's own stay)."""
    answer = copy.deepcopy(answer)
    message = message_of(answer, dialect)
    name = _calls_field(dialect)
    if message is not None and isinstance(message.get(name), list):
        message[name] = [c for c in message[name] if not is_ours(c)]
    return answer


def merged(earlier: list[dict], answer: dict, dialect: str) -> dict:
    """The last round's answer (without the expand calls) with what the earlier rounds
    showed in front, as a stream shows it: OpenAI's message content joined, Anthropic's
    content blocks and responses' output items listed in order; and `usage` summed over
    every round, since every round was billed."""
    merged_answer = without_calls(answer, dialect)
    rounds = [without_calls(round_answer, dialect) for round_answer in earlier]
    message = message_of(merged_answer, dialect)
    if message is not None:
        shown = [message_of(round_answer, dialect) or {} for round_answer in rounds]
        if dialect == OPENAI:
            texts = [m.get("content") for m in [*shown, message]]
            if any(isinstance(text, str) and text for text in texts):
                message["content"] = "".join(text for text in texts if isinstance(text, str))
        else:
            name = _calls_field(dialect)
            message[name] = [item for m in shown if isinstance(m.get(name), list)
                             for item in m[name]] + message[name]
    for usage in [round_answer.get("usage") for round_answer in rounds]:
        if isinstance(usage, dict) and isinstance(merged_answer.get("usage"), dict):
            merged_answer["usage"] = summed_usage(usage, merged_answer["usage"])
    return merged_answer


def summed_usage(first: dict | None, second: dict) -> dict:
    """Two usage objects added (the first maybe None: nothing yet): counts summed,
    nested objects too, anything else the second's."""
    result = dict(second)
    for key, value in (first or {}).items():
        other = second.get(key)
        if key not in second:
            result[key] = value
        elif isinstance(value, int) and not isinstance(value, bool) \
                and isinstance(other, int) and not isinstance(other, bool):
            result[key] = value + other
        elif isinstance(value, dict) and isinstance(other, dict):
            result[key] = summed_usage(value, other)
    return result


def continued(body: dict, message: dict, results: list[tuple[Call, str]], dialect: str,
              *, last: bool) -> dict:
    """The next round's request: the messages (a responses request: its input), the
    model's message that called the tool (responses: every item of its output), and
    each call's result; with `last`, the tool may no longer be called."""
    body = copy.deepcopy(body)
    if dialect == ANTHROPIC:
        body["messages"] = [*body["messages"],
                            {"role": "assistant", "content": message["content"]},
                            {"role": "user", "content": [
                                {"type": "tool_result", "tool_use_id": call.id, "content": text}
                                for call, text in results]}]
    elif dialect == RESPONSES:
        earlier = body.get("input")
        earlier = [{"role": "user", "content": earlier}] if isinstance(earlier, str) \
            else list(earlier or [])
        body["input"] = [*earlier, *message["output"],
                         *({"type": "function_call_output", "call_id": call.id, "output": text}
                           for call, text in results)]
    else:
        assistant = {key: value for key, value in message.items()
                     if key in ("role", "content", "tool_calls")}
        body["messages"] = [*body["messages"], assistant,
                            *({"role": "tool", "tool_call_id": call.id, "content": text}
                              for call, text in results)]
    if last:
        body["tool_choice"] = {"type": "none"} if dialect == ANTHROPIC else "none"
    return body
