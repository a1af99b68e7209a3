"""The question inside a prompt, and the turns of a chat transcript.

Real prompts carry their question inside them: benchmark templates end with "What is
the special magic number for X mentioned in the provided text?" or "Question: ...
Answer:", a repository dump is followed by "Which function has the bug?", a chat's
last user turn asks. `detect` finds that question so that it can steer the draft the
way `--query` does, while it stays where it is in the text, kept verbatim (its span is
returned for that).

Chat transcripts (`transcript`) are read in the layouts chat templates write: ChatML
(`<|im_start|>user`...`<|im_end|>`), Llama 3 (`<|start_header_id|>user<|end_header_id|>`
...`<|eot_id|>`), Gemma (`<start_of_turn>user`...`<end_of_turn>`), Phi-3 (`<|user|>`
...`<|end|>`), Mistral (`[INST]`
...`[/INST]`, the answer after it), DeepSeek (`<｜User｜>`, `<｜Assistant｜>`) and plain
`User:` / `Assistant:` / `Human:` lines (at least one user and one other turn, the
first of them near the start, markers not in quotes). A turn
is its header (the role marker), its content and its footer (the end-of-turn marker);
the query is the last user turn with any text, or the question at the end of it when
the turn is long (a document pasted with a question below it).

Anything else is read as prose: the question is the last line near the end (within
the last `NEAR_END_CHARS`) that asks: it starts with a label (`Question:`, `Q:`,
`Query:`, `Task:`, `Instruction:`, `Key:`, or `问题：`, `質問：`, `질문:` and their
kin), or it ends with `?` or `？` (a Japanese line also with `か。`), or a question
mark is followed only by a short answer prefix ("...in the provided text? The numbers
are"); the question starts at that line (at its last sentence, for a long line: after
`. ! ?` and a space, or after `。！？`). Else it is a closing instruction: a short last
paragraph that starts with an imperative such as "Answer", "Summarize", "Find", "Based
on", `请`, `根据`, or that ends with one in Japanese and Korean (`...てください。`,
`...답하시오.`). From there to the end of the text is the question (answer prefixes
and options after a question belong to it), up to `MAX_QUERY_WIDTH` (characters, a
Chinese, Japanese or Korean letter counting three: `scripts.width`). When no line near
the end asks, the first asking line near the start (templates that ask before the
context) comes before a closing instruction. Nothing found: None, and the text is
compressed as if no query had been given.
"""

import re
from dataclasses import dataclass

from crossprefill_cli.text import scripts

NEAR_END_CHARS = 2000
NEAR_START_CHARS = 1500
# bounds in characters, a Chinese, Japanese or Korean letter counting three (`scripts.width`)
MAX_QUERY_WIDTH = 1000
# What may follow a question's `?` on its line: an answer prefix, not more text.
ANSWER_PREFIX_CHARS = 200
# A last user turn longer than this is a document with a question, not a question.
LONG_TURN_WIDTH = 2000
# A transcript's first turn starts within this (a system prompt may come before it).
PREAMBLE_CHARS = 2000
PREAMBLE_SHARE = 0.25
QUOTES = "`'\""  # a marker right after one is quoted, not a turn

# labels in English, Chinese (simplified and traditional), Japanese and Korean, with a
# colon of either width
LABEL = re.compile(r"(?i)^\s*(?:question|q|query|task|instructions?|key|问题|問題|提问|提問|"
                   r"质问|質問|设问|質疑|任务|任務|指示|질문|문제|과제)\s*[:：]")
STRIPPED_LABEL = re.compile(r"(?i)^\s*(?:question|q|query|问题|問題|提问|提問|質問|질문)\s*[:：]\s*")
ANSWER_CUE = re.compile(  # kept in the text, not asked
    r"(?i)\n\s*(?:answer|a|答案|答|回答|解答|答え|정답|답)\s*[:：]\s*$")
INSTRUCTION = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:answer|summari[sz]e|find|extract|identify|list|explain|"
    r"describe|determine|tell|give|write|read|return|output|classify|translate|"
    r"based on|using|according to|what|which|who|whom|whose|where|when|why|how)\b"
    # Chinese opens a request with 请 ("please"), 根据/基于 ("based on") or the verb
    r"|^\s*(?:请|請|根据|根據|基于|基於|依据|依據|按照|结合|結合|阅读|閱讀|总结|總結|概括|"
    r"列出|列举|列舉|解释|解釋|说明|說明|找出|回答|翻译|翻譯|以上|上述|上文|下面)"
    # Japanese and Korean close one with the verb: "...答えてください。", "...하세요."
    r"|[\s\S]*(?:ください|下さい|なさい|せよ|답하시오|하세요|하십시오|주세요|주십시오|시오)\s*[。.！!]?\s*$")
# a Japanese question may end with the particle か and a full stop: "...何ですか。"
JAPANESE_QUESTION = re.compile(r"[\u3040-\u309f]か[。．.]?\s*$")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\r?\n")

USER_ROLES = frozenset({"user", "human"})
SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class DetectedQuery:
    """The question: the text that steers scoring, and the span of the input it
    comes from (kept verbatim). `layout` says where it was found."""

    text: str
    start: int
    end: int
    layout: str  # "chat", "end" (after the context) or "start" (before it)


@dataclass(frozen=True)
class Turn:
    """One turn of a transcript: header [start, content_start), content, footer
    [content_end, end)."""

    role: str
    start: int
    content_start: int
    content_end: int
    end: int

    @property
    def kind(self) -> str:
        role = self.role.lower()
        return "user" if role in USER_ROLES else "system" if role in SYSTEM_ROLES else role


@dataclass(frozen=True)
class ChatFormat:
    name: str
    header: re.Pattern  # group "role", or a fixed role per alternative (see `_role`)
    footer: re.Pattern | None  # the end-of-turn marker, at the end of a turn's region


def _role(match: re.Match) -> str:
    role = match.groupdict().get("role")
    if role:
        return role
    return "user" if match.group(0).strip() == "[INST]" else "assistant"


CHAT_FORMATS = (
    ChatFormat("chatml", re.compile(r"<\|im_start\|>(?P<role>[\w-]+)[^\S\n]*\r?\n"),
               re.compile(r"<\|im_end\|>[^\S\n]*(?:\r?\n)?")),
    ChatFormat("llama3", re.compile(
        r"<\|start_header_id\|>(?P<role>[\w-]+)<\|end_header_id\|>(?:\r?\n){0,2}"),
        re.compile(r"<\|eot_id\|>")),
    ChatFormat("gemma", re.compile(r"<start_of_turn>(?P<role>\w+)[^\S\n]*\r?\n"),
               re.compile(r"<end_of_turn>[^\S\n]*(?:\r?\n)?")),
    ChatFormat("phi3", re.compile(r"<\|(?P<role>system|user|assistant)\|>[^\S\n]*\r?\n"),
               re.compile(r"<\|end\|>[^\S\n]*(?:\r?\n)?")),
    ChatFormat("deepseek", re.compile(r"<｜(?P<role>User|Assistant)｜>"),
               re.compile(r"<｜end▁of▁sentence｜>")),
    ChatFormat("mistral", re.compile(r"\[INST\][ \t]?|[ \t]?\[/INST\][ \t]?"),
               re.compile(r"</s>")),
    ChatFormat("plain", re.compile(
        r"(?im)^(?P<role>user|assistant|human|system|ai)[ \t]*:[ \t]*(?:\r?\n)?"), None),
)


@dataclass(frozen=True)
class Transcript:
    format: str
    turns: tuple[Turn, ...]

    @property
    def last_user(self) -> Turn | None:
        asking = [t for t in self.turns if t.kind == "user" and t.content_end > t.content_start]
        return asking[-1] if asking else None


def transcript(text: str) -> Transcript | None:
    """The turns of `text` when it is a chat transcript: a user turn and another one,
    the first of them near the start (text that merely mentions chat markers, such as
    documentation, has them deep inside or quoted)."""
    for chat_format in CHAT_FORMATS:
        turns = _turns(text, chat_format)
        kinds = {turn.kind for turn in turns}
        if "user" in kinds and len(turns) >= 2 and turns[0].start <= max(
                PREAMBLE_CHARS, PREAMBLE_SHARE * len(text)):
            return Transcript(chat_format.name, turns)
    return None


def _turns(text: str, chat_format: ChatFormat) -> tuple[Turn, ...]:
    headers = [h for h in chat_format.header.finditer(text)
               if h.start() == 0 or text[h.start() - 1] not in QUOTES]
    turns = []
    for index, header in enumerate(headers):
        region_end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        footer_start = region_end
        if chat_format.footer is not None:
            footers = list(chat_format.footer.finditer(text, header.end(), region_end))
            if footers and not text[footers[-1].end():region_end].strip():
                footer_start = footers[-1].start()
        content_start, content_end = _trimmed(text, header.end(), footer_start)
        turns.append(Turn(_role(header), header.start(), content_start, content_end,
                          region_end))
    return tuple(turns)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without surrounding whitespace (empty: start == end)."""
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return start, start
    first = start + piece.index(stripped)
    return first, first + len(stripped)


def detect(text: str, data: tuple[int, int] | None = None) -> DetectedQuery | None:
    """The question inside `text` (see the module docstring), or None. `data` is the
    span of structured data in it (`kinds.data_span`), whose lines never ask: a `?` in a
    JSON string (`"url": "...?query=1"`) is no question."""
    chat = transcript(text)
    if chat is not None:
        return _from_chat(text, chat)
    return (_asked_near_end(text, 0, len(text), data) or _near_start(text, data)
            or _instructed_at_end(text, 0, len(text)))


def of_user_turn(turn: str) -> str | None:
    """The query a user's last turn makes: the turn itself when short, else the question
    at its end (a document pasted with a question); None when it asks nothing."""
    if not turn.strip():
        return None
    if not is_long_turn(turn):
        asked = turn.strip()
        return asked[scripts.start_within(asked, 0, len(asked), MAX_QUERY_WIDTH):]
    found = detect(turn)
    return None if found is None else found.text


def is_long_turn(turn: str) -> bool:
    """True for a user turn that is a document with a question, not a question."""
    return scripts.width(turn) > LONG_TURN_WIDTH


def _from_chat(text: str, chat: Transcript) -> DetectedQuery | None:
    turn = chat.last_user
    if turn is None:
        return None
    start, end = turn.content_start, turn.content_end
    if is_long_turn(text[start:end]):
        found = _near_end(text, start, end)
        return None if found is None else DetectedQuery(found.text, found.start, found.end, "chat")
    return _query(text, start, end, "chat")


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Blank-line separated paragraphs of text[start:end], trimmed, in order."""
    spans, cursor = [], start
    for match in PARAGRAPH_BREAK.finditer(text, start, end):
        spans.append(_trimmed(text, cursor, match.start()))
        cursor = match.end()
    spans.append(_trimmed(text, cursor, end))
    return [(a, b) for a, b in spans if a < b]


def _asking_start(line: str) -> int | None:
    """Where the question in `line` starts, or None when the line does not ask: a label
    starts it; a `?` at its end or before a short answer prefix ("...text? The numbers
    are") ends it, and it starts at its sentence (the line start, for a short line)."""
    if LABEL.match(line):
        return 0
    body = line.rstrip()
    mark = max(body.rfind(mark) for mark in scripts.QUESTION_MARKS)
    if mark == -1 and JAPANESE_QUESTION.search(body):
        mark = len(body) - 1
    if mark == -1 or len(body) - mark - 1 > ANSWER_PREFIX_CHARS:
        return None
    if scripts.width(body[:mark]) < MAX_QUERY_WIDTH:
        return len(line) - len(line.lstrip())
    return max(max(body.rfind(f"{end} ", 0, mark) + 2 for end in ".!?"),
               max(body.rfind(end, 0, mark) + 1 for end in scripts.SENTENCE_END_MARKS))


def _lines(text: str, start: int, end: int) -> list[tuple[int, str]]:
    offsets, cursor = [], start
    for line in text[start:end].splitlines(keepends=True):
        offsets.append((cursor, line))
        cursor += len(line)
    return offsets


def _near_end(text: str, start: int, end: int) -> DetectedQuery | None:
    return _asked_near_end(text, start, end) or _instructed_at_end(text, start, end)


def _end_window(text: str, start: int, end: int) -> int:
    window = max(start, end - NEAR_END_CHARS)
    if window > start:  # from a line start
        window = text.find("\n", window, end) + 1 or window
    return window


def _outside(data: tuple[int, int] | None, offset: int) -> bool:
    return data is None or not data[0] <= offset < data[1]


def _asked_near_end(text: str, start: int, end: int,
                    data: tuple[int, int] | None = None) -> DetectedQuery | None:
    window = _end_window(text, start, end)
    for offset, line in reversed(_lines(text, window, end)):
        asking = _asking_start(line) if _outside(data, offset) else None
        if asking is not None:
            return _query(text, offset + asking, end, "end")
    return None


def _instructed_at_end(text: str, start: int, end: int) -> DetectedQuery | None:
    paragraphs = _paragraphs(text, _end_window(text, start, end), end)
    if paragraphs:
        a, b = paragraphs[-1]
        if scripts.width(text[a:b]) > MAX_QUERY_WIDTH:  # no paragraph: its last line may be
            a = text.rfind("\n", a, b) + 1 or a
        if (a > start and scripts.width(text[a:b]) <= MAX_QUERY_WIDTH
                and INSTRUCTION.match(text[a:b])):
            return _query(text, a, end, "end")
    return None


def _near_start(text: str, data: tuple[int, int] | None = None) -> DetectedQuery | None:
    for offset, line in _lines(text, 0, min(len(text), NEAR_START_CHARS)):
        asking = _asking_start(line) if _outside(data, offset) else None
        if asking is not None and offset + len(line) < len(text):
            return _query(text, offset + asking, offset + len(line), "start")
    return None


def _query(text: str, start: int, end: int, layout: str) -> DetectedQuery | None:
    start, end = _trimmed(text, start, end)
    if start == end:
        return None
    if scripts.width(text[start:end]) > MAX_QUERY_WIDTH:  # its asking end, from a word start
        cut = scripts.start_within(text, start, end, MAX_QUERY_WIDTH)
        space = text.find(" ", cut, end)
        start = _trimmed(text, cut if space == -1 else space, end)[0]
    question = ANSWER_CUE.sub("", STRIPPED_LABEL.sub("", text[start:end], count=1)).strip()
    return DetectedQuery(question or text[start:end], start, end, layout)
