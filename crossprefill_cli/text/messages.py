"""OpenAI-style chat messages in, the same messages out with long contents compressed.

The input is a list of `{role, content}` messages, or an object holding one under
`messages` (other keys are left as they are); `content` is a string or a list of parts,
of which the `{"type": "text", "text": ...}` ones are text and the others (images,
audio) pass through untouched. Every text is a *piece*. The pieces are joined with
blank lines into one conversation text, which is compressed like any input: the budget
counts the whole conversation, the draft reads it once, units never cross a piece. The
system messages and the last user message are kept whole (their pieces are required),
every other piece keeps its first line as a text keeps its head (see `pipeline`), and
the last user message is the query (the question at its end, when it is long),
unless one is given. Each piece then gets its
kept spans back, verbatim, with its own gap markers, in its own place in the JSON.

A message list that is not what this says is a `UsageError` naming what is wrong.
"""

import copy
import json
from dataclasses import dataclass
from typing import Any

from crossprefill_cli.errors import UsageError
from crossprefill_cli.settings import INPUT_FORMATS, check_choice
from crossprefill_cli.text import query

SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Piece:
    """One text of the conversation: where it sits in the JSON and in the joined text."""

    message: int
    part: int | None  # index in a content list, None for a string content
    role: str
    start: int
    end: int


@dataclass(frozen=True)
class Conversation:
    source: str  # the JSON text, as given
    data: Any  # the parsed JSON
    text: str  # every piece, joined by SEPARATOR
    pieces: tuple[Piece, ...]

    def _whole(self) -> list[bool]:
        """For each piece, whether it stays whole: a system message, the last user message."""
        last_user = max((p.message for p in self.pieces if p.role == "user"), default=None)
        return [p.role in ("system", "developer") or p.message == last_user for p in self.pieces]

    def keep(self) -> tuple[tuple[int, int], ...]:
        """The spans that stay whole: system messages, the last user message, separators."""
        whole = [(p.start, p.end) for p, kept in zip(self.pieces, self._whole()) if kept]
        separators = [(a.end, b.start) for a, b in zip(self.pieces, self.pieces[1:])]
        return tuple(sorted(whole + separators))

    def heads(self) -> tuple[tuple[int, int], ...]:
        """The spans of the other pieces, each of which keeps its first line the way a
        text keeps its head: a pasted document's title, a tool result's opening line."""
        return tuple((p.start, p.end) for p, kept in zip(self.pieces, self._whole()) if not kept)

    def query(self) -> str | None:
        """The last user message with any text, or the question at its end when it is
        long (a document pasted with a question); None without one."""
        users = [p for p in self.pieces if p.role == "user" and self.text[p.start:p.end].strip()]
        if not users:
            return None
        last = [p for p in users if p.message == users[-1].message]
        return query.of_user_turn(self.text[last[0].start:last[-1].end])

    def compressed(self, spans: list[tuple[int, int]], join) -> dict[int, str]:
        """Each piece's text from the kept `spans` of the joined text: `join(piece text,
        spans within it, offset of the piece)` assembles it (gap markers included)."""
        out = {}
        for index, piece in enumerate(self.pieces):
            inside = [(max(a, piece.start) - piece.start, min(b, piece.end) - piece.start)
                      for a, b in spans if a < piece.end and b > piece.start]
            if inside != [(0, piece.end - piece.start)]:
                out[index] = join(self.text[piece.start:piece.end], inside, piece.start)
        return out

    def rebuilt(self, compressed: dict[int, str]) -> Any:
        """The JSON with piece i's text replaced by compressed[i] (the others unchanged)."""
        data = copy.deepcopy(self.data)
        messages = data["messages"] if isinstance(data, dict) else data
        for index, piece in enumerate(self.pieces):
            if index not in compressed:
                continue
            message = messages[piece.message]
            if piece.part is None:
                message["content"] = compressed[index]
            else:
                message["content"][piece.part]["text"] = compressed[index]
        return data


def parse(text: str) -> Conversation:
    """Read `text` as chat messages (see the module docstring); raise `UsageError`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--format messages: the input is not JSON ({error.msg} at line "
                         f"{error.lineno}, column {error.colno})") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not messages:
        raise UsageError("--format messages: expected a list of {role, content} messages, "
                         "or an object with such a list under \"messages\"")
    texts: list[tuple[int, int | None, str, str]] = []
    for number, message in enumerate(messages):
        where = f"--format messages: message {number}"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise UsageError(f"{where} is not an object with a role")
        content = message.get("content")
        if content is None:
            continue  # an assistant message with tool calls only
        if isinstance(content, str):
            texts.append((number, None, message["role"], content))
        elif isinstance(content, list):
            for index, part in enumerate(content):
                if not isinstance(part, dict) or "type" not in part:
                    raise UsageError(f"{where}: content part {index} has no type")
                if part["type"] == "text":
                    if not isinstance(part.get("text"), str):
                        raise UsageError(f"{where}: text part {index} has no text")
                    texts.append((number, index, message["role"], part["text"]))
        else:
            raise UsageError(f"{where}: content is neither text nor a list of parts")
    if not any(body.strip() for *_, body in texts):
        raise UsageError("--format messages: no message has any text")
    pieces, cursor = [], 0
    for number, index, role, body in texts:
        pieces.append(Piece(number, index, role, cursor, cursor + len(body)))
        cursor += len(body) + len(SEPARATOR)
    joined = SEPARATOR.join(body for *_, body in texts)
    return Conversation(text, data, joined, tuple(pieces))


def dumps_like(source: str, data: Any) -> str:
    """`data` as JSON in the style of `source`: one line if it was one line, else indented."""
    if "\n" not in source.strip():
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def sniffed(text: str) -> Conversation | None:
    """For `--format auto`: the conversation when `text` parses as a message list."""
    if not text.lstrip().startswith(("[", "{")):
        return None
    try:
        return parse(text)
    except UsageError:
        return None


def looks_like_messages(text: str) -> bool:
    return sniffed(text) is not None


def read_format(text: str, input_format: str) -> Conversation | None:
    """The conversation `text` holds under `input_format` (None: plain text)."""
    check_choice("--format", input_format, INPUT_FORMATS)
    if input_format == "messages":
        return parse(text)
    return sniffed(text) if input_format == "auto" else None
