"""Chat messages in, the same messages out with long contents compressed."""

import json

import pytest
from conftest import long_text
from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.errors import UsageError
from crossprefill_cli.pipeline.job import compress_messages
from crossprefill_cli.text import messages

NOTES = long_text(100)
QUESTION = "Which entry mentions a falcon?"
REQUEST = {"model": "gpt-4o", "temperature": 0, "messages": [
    {"role": "system", "content": "Answer from the notes."},
    {"role": "user", "content": [{"type": "text", "text": NOTES},
                                 {"type": "image_url", "image_url": {"url": "data:,"}}]},
    {"role": "assistant", "content": "I have read them."},
    {"role": "tool", "content": long_text(40)},
    {"role": "user", "content": QUESTION}]}


def test_pieces_are_every_text_joined_by_blank_lines():
    conversation = messages.parse(json.dumps(REQUEST))
    texts = [conversation.text[p.start:p.end] for p in conversation.pieces]
    assert texts == ["Answer from the notes.", NOTES, "I have read them.", long_text(40), QUESTION]
    assert conversation.text == messages.SEPARATOR.join(texts)
    assert conversation.query() == QUESTION


def test_long_contents_are_compressed_and_everything_else_is_as_it_was(llama_draft, target):
    data, result = compress_messages(REQUEST, keep_rate=0.2, draft=llama_draft, target=target)
    assert (result.query, result.query_source) == (QUESTION, "detected")
    assert result.tokens_after <= result.budget == int(0.2 * target.count(
        messages.parse(json.dumps(REQUEST)).text))
    assert {k: v for k, v in data.items() if k != "messages"} == {"model": "gpt-4o",
                                                                 "temperature": 0}
    sent, got = REQUEST["messages"], data["messages"]
    assert got[0] == sent[0] and got[4] == sent[4] and got[1]["content"][1] == sent[1]["content"][1]
    compressed = got[1]["content"][0]["text"]
    assert len(compressed) < len(NOTES) and "[...]" in compressed
    for piece in compressed.split("[...]"):
        assert piece.strip("\n") in NOTES


def test_a_given_query_wins(llama_draft, target):
    _, result = compress_messages(REQUEST, keep_rate=0.3, draft=llama_draft, target=target,
                                  query="falcon")
    assert (result.query, result.query_source) == ("falcon", "given")


@pytest.mark.parametrize("text, message", [
    ("{\"messages\": ", "the input is not JSON"),
    ("[1, 2]", "message 0 is not an object with a role"),
    ("{\"prompt\": \"hi\"}", "expected a list of {role, content} messages"),
    ("[{\"role\": \"user\", \"content\": 3}]", "content is neither text nor a list of parts"),
    ("[{\"role\": \"user\", \"content\": [{\"text\": \"x\"}]}]", "content part 0 has no type"),
    ("[{\"role\": \"user\", \"content\": \"  \"}]", "no message has any text"),
])
def test_bad_messages_are_one_clear_usage_error(text, message):
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        messages.parse(text)
    assert not messages.looks_like_messages(text)


def test_the_command_line_prints_the_same_json(llama_dir, target_dir, llama_draft, target, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    expected, _ = compress_messages(REQUEST, keep_rate=0.2, draft=llama_draft, target=target)
    runner = CliRunner()
    for form in ("messages", "auto"):
        done = runner.invoke(app, ["compress", str(path), "--format", form, "-r", "0.2",
                                   "-d", str(llama_dir), "-t", str(target_dir)])
        assert done.exit_code == 0, done.stderr
        assert done.stdout == json.dumps(expected, ensure_ascii=False, separators=(",", ":")) + "\n"
    report = json.loads(runner.invoke(app, ["compress", str(path), "--format", "messages",
                                            "--json", "-r", "0.2", "-d", str(llama_dir),
                                            "-t", str(target_dir)]).stdout)
    assert report["messages"] == expected and report["query_source"] == "detected"
    bad = runner.invoke(app, ["compress", "--format", "messages", "-d", str(llama_dir),
                              "-t", str(target_dir)], input="not json")
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr.startswith("crossprefill: error: --format messages: the input is not JSON")


def test_every_compressed_message_keeps_its_first_line(llama_draft, target):
    # a pasted README keeps its title, a tool result its opening, as text mode keeps a head
    data, _ = compress_messages(REQUEST, keep_rate=0.2, draft=llama_draft, target=target,
                                scorer="lexical", query="falcon")
    got = data["messages"]
    for compressed in (got[1]["content"][0]["text"], got[3]["content"]):
        assert "[...]" in compressed
        assert compressed.startswith("Field notes from the survey\n")


def test_a_one_line_message_keeps_a_bounded_head_and_still_compresses(llama_draft, target):
    one_line = " ".join(long_text(60).splitlines())
    request = [{"role": "system", "content": "Answer from the notes."},
               {"role": "tool", "content": one_line}, {"role": "user", "content": QUESTION}]
    data, result = compress_messages(request, keep_rate=0.2, draft=llama_draft, target=target,
                                     scorer="lexical")
    compressed = data[1]["content"]
    assert result.tokens_after <= result.budget
    assert compressed.startswith("Field notes from the survey Entry 0:")
    assert len(compressed) < len(one_line) / 3


def test_a_budget_below_the_messages_first_lines_says_so(llama_draft, target):
    with pytest.raises(UsageError, match="each message's first line"):
        compress_messages(REQUEST, target_tokens=5, draft=llama_draft, target=target,
                          scorer="lexical")


def test_the_command_line_finds_a_messages_budget_too_small_before_scoring(
        llama_dir, target_dir, llama_draft, target, tmp_path, monkeypatch):
    from crossprefill_cli.models import target_process
    from crossprefill_cli.pipeline.draft_source import DraftSource

    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    with pytest.raises(UsageError) as raised:
        compress_messages(REQUEST, target_tokens=40, draft=llama_draft, target=target)

    def refuse(self):
        raise AssertionError("the model loaded before the budget check")

    monkeypatch.setattr(DraftSource, "load", refuse)
    # the target built here (one core), not beside the draft's reading in a child process
    monkeypatch.setattr(target_process, "usable_cores", lambda: 1)
    done = CliRunner().invoke(app, ["compress", str(path), "--format", "messages", "-n", "40",
                                    "--no-cache", "-d", str(llama_dir), "-t", str(target_dir)])
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr == f"crossprefill: error: {raised.value}\n"


def test_messages_whose_only_long_text_is_the_last_user_turn_pass_through(
        llama_dir, target_dir, llama_draft, target, tmp_path):
    request = [{"role": "system", "content": "Answer from the notes."},
               {"role": "assistant", "content": "Send them."},
               {"role": "user", "content": NOTES + "\n" + QUESTION}]
    data, result = compress_messages(request, keep_rate=0.2, draft=llama_draft, target=target)
    assert data == request and result.tokens_after == result.tokens_before > result.budget
    assert result.warnings == [
        "nothing in these messages can be left out (the system messages and the last user "
        "message stay whole, the others are their first line): they pass through unchanged, "
        f"{result.tokens_after} target tokens for a budget of {result.budget}"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request, indent=1))  # printed as it came, in its own style
    done = CliRunner().invoke(app, ["compress", str(path), "--format", "messages", "-r", "0.2",
                                    "-d", str(llama_dir), "-t", str(target_dir)])
    assert (done.exit_code, done.stdout) == (0, path.read_text())
    assert done.stderr == f"crossprefill: warning: {result.warnings[0]}\n"
