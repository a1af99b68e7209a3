"""Which texts of an LLM API request the proxy may compress (pure functions).

A chat request is read leniently: the proxy is not the API's validator, so anything it
does not recognise (a message that is not an object, a content part of an unknown type,
an image, audio) is simply not a text, and reaches the upstream as it came. Every text
is found by its `path` of keys and indices into the body, so the body can be changed in
place, one text at a time, with every other field (tools, response_format, unknown
ones) left exactly as it was.

Three dialects:

- OpenAI chat completions: `messages[i].content`, a string or a list of parts whose
  `{"type": "text"}` ones hold text; the role is the message's.
- Anthropic messages: `system` (a string or text blocks) and `messages[i].content`, a
  string or blocks; a `tool_result` block's content (a string or blocks) is a text of
  role `tool`, whatever the message's role.

- OpenAI responses (Codex CLI, newer OpenAI clients): `input`, a string (the user's
  turn) or a list of items: messages (`role`, `content` a string or parts whose
  `input_text`/`output_text`/`text` ones hold text) and tool outputs
  (`function_call_output`, `custom_tool_call_output`: `output`, a string or such
  parts), a text of role `tool`; `instructions` are the system's, never changed.

A text is a *candidate* when its role is one of the roles asked for and it is not in a
system (or developer) message or the last user turn: those the client wrote for the
model, and they are never changed. The last user turn is the last user message that has
text of its own (in Anthropic's dialect a user message may hold only tool results); it
is also the query that steers the compression (`query.of_user_turn`).
"""

from dataclasses import dataclass
from typing import Any

from crossprefill_cli.text import query as query_module

OPENAI, ANTHROPIC, RESPONSES = "openai", "anthropic", "responses"
TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")
TEXT_PARTS = ("text", "input_text", "output_text")
NEVER_CHANGED = ("system", "developer")
DEFAULT_ROLES = ("tool", "user")
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Text:
    path: Path
    role: str
    message: int | None  # None: the top-level system prompt
    text: str


@dataclass(frozen=True)
class ChatTexts:
    texts: tuple[Text, ...]  # every text of the request, in order
    candidates: tuple[int, ...]  # indices into `texts` of those that may be compressed
    query: str | None


def chat_texts(body: Any, dialect: str, roles: tuple[str, ...] = DEFAULT_ROLES) -> ChatTexts | None:
    """The texts of a request body, or None when it has no list of messages."""
    key = "input" if dialect == RESPONSES else "messages"
    messages = body.get(key) if isinstance(body, dict) else None
    if dialect == RESPONSES and isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]  # the turn alone: kept whole
    if not isinstance(messages, list):
        return None
    texts = list(_anthropic_system(body)) if dialect == ANTHROPIC else []
    for number, message in enumerate(messages):
        if dialect == RESPONSES:
            texts.extend(_response_item_texts(message, number))
        elif isinstance(message, dict) and isinstance(message.get("role"), str):
            texts.extend(_message_texts(message, number, dialect))
    own = [t for t in texts if t.role == "user"]
    last_user = own[-1].message if own else None
    turn = "\n".join(t.text for t in own if t.message == last_user)
    candidates = tuple(i for i, t in enumerate(texts) if t.role in roles
                       and t.role not in NEVER_CHANGED and t.message is not None
                       and not (t.role == "user" and t.message == last_user))
    return ChatTexts(tuple(texts), candidates, query_module.of_user_turn(turn) if own else None)


def _anthropic_system(body: dict):
    system = body.get("system")
    if isinstance(system, str):
        yield Text(("system",), "system", None, system)
    elif isinstance(system, list):
        for index, block in enumerate(system):
            if _is_text_block(block):
                yield Text(("system", index, "text"), "system", None, block["text"])


def _message_texts(message: dict, number: int, dialect: str):
    role, content = message["role"], message.get("content")
    base: Path = ("messages", number, "content")
    if isinstance(content, str):
        yield Text(base, role, number, content)
        return
    if not isinstance(content, list):
        return
    for index, part in enumerate(content):
        if _is_text_block(part):
            yield Text((*base, index, "text"), role, number, part["text"])
        elif (dialect == ANTHROPIC and isinstance(part, dict)
              and part.get("type") == "tool_result"):
            inner = part.get("content")
            if isinstance(inner, str):
                yield Text((*base, index, "content"), "tool", number, inner)
            elif isinstance(inner, list):
                for k, block in enumerate(inner):
                    if _is_text_block(block):
                        yield Text((*base, index, "content", k, "text"), "tool", number,
                                   block["text"])


def _response_item_texts(item: Any, number: int):
    """The texts of one item of a responses request's `input`."""
    if not isinstance(item, dict):
        return
    if item.get("type") in TOOL_OUTPUTS:
        role, field = "tool", "output"
    elif item.get("type", "message") == "message" and isinstance(item.get("role"), str):
        role, field = item["role"], "content"
    else:
        return
    content, base = item.get(field), ("input", number, field)
    if isinstance(content, str):
        yield Text(base, role, number, content)
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if (isinstance(part, dict) and part.get("type") in TEXT_PARTS
                    and isinstance(part.get("text"), str)):
                yield Text((*base, index, "text"), role, number, part["text"])


def _is_text_block(part: Any) -> bool:
    return (isinstance(part, dict) and part.get("type") == "text"
            and isinstance(part.get("text"), str))


def replace(body: Any, path: Path, text: str) -> None:
    """Set the text at `path` in `body` (in place)."""
    *parents, last = path
    for key in parents:
        body = body[key]
    body[last] = text
