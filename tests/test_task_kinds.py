"""Whole compressions of logs, data, diffs and dumps: what the task needs survives
whatever a (here random) draft attends to, and the gaps say what went."""

import json

from test_kinds import PACKAGES, PYTEST_RUN

from crossprefill_cli import compress, compress_messages


def run(llama_draft, target, text, **options):
    return compress(text, draft=llama_draft, target=target, **options)


def test_a_failing_test_and_its_error_survive_a_log_at_a_small_keep_rate(llama_draft, target):
    prompt = PYTEST_RUN + "\nWhy did this CI run fail?\n"
    result = run(llama_draft, target, prompt, keep_rate=0.3)
    assert "test_port_parses FAILED" in result.text
    assert "E       AssertionError: assert 80 == 8080" in result.text
    assert "more lines like this ...]" in result.text
    assert result.tokens_after <= result.budget
    assert [(k.kind, k.start, k.end) for k in result.kinds] == [("log", 0, len(prompt))]
    assert result.to_json()["kinds"] == [{"kind": "log", "start": 0, "end": len(prompt)}]


def test_kind_text_reads_a_log_as_prose(llama_draft, target):
    result = run(llama_draft, target, PYTEST_RUN, keep_rate=0.3, kind="text")
    assert "lines like this" not in result.text and result.kinds == []


def test_the_asked_record_survives_whole_and_no_value_is_cut(llama_draft, target):
    data = json.dumps(PACKAGES, indent=2)
    result = run(llama_draft, target, data + "\n\nWhich version of pkg7 is installed?",
                 keep_rate=0.2)
    assert '"name": "pkg7",\n        "version": "1.7.0",' in result.text
    for line in result.text.splitlines():
        if not line.strip().startswith("[..."):
            assert line.count('"') % 2 == 0, line  # a kept string is whole
    assert "more records ...]" in result.text or "more keys ...]" in result.text


def test_include_and_exclude_drop_files_but_keep_their_headers(llama_draft, target):
    dump = "".join(f"<file path=\"{path}\">\n{body}\n</file>\n\n" for path, body in [
        ("src/app.py", "def main():\n    return serve(port=8080)\n" * 20),
        ("tests/test_app.py", "def test_main():\n    assert main() == 0\n" * 20),
        ("README.md", "The app serves requests on a port.\n" * 20)])
    options = dict(profile="code", keep_rate=0.6)
    result = run(llama_draft, target, dump, exclude="tests/*,*.md", **options)
    assert "assert main()" not in result.text and "serves requests" not in result.text
    assert '<file path="tests/test_app.py">' in result.text
    assert '<file path="README.md">' in result.text
    only = run(llama_draft, target, dump, include="**/*.md", **options)
    assert "return serve" not in only.text and "serves requests" in only.text


def test_a_tool_message_that_is_a_log_is_cut_as_one(llama_draft, target):
    messages = [{"role": "user", "content": "Run the tests."},
                {"role": "tool", "content": PYTEST_RUN},
                {"role": "user", "content": "Which test failed?"}]
    compressed, result = compress_messages(messages, draft=llama_draft, target=target,
                                           keep_rate=0.5)
    tool = compressed[1]["content"]
    assert "test_port_parses FAILED" in tool and "lines like this ...]" in tool


SERVICES = "services:\n" + "".join(
    f"  svc{i}:\n    image: registry.example/svc{i}:1.{i}.0\n    restart: always\n"
    f"    environment:\n      LOG_LEVEL: info\n      WORKERS: \"{i % 5 + 1}\"\n"
    f"    ports:\n      - \"{8000 + i}:80\"\n" for i in range(30))


def test_the_asked_yaml_record_survives_whole_in_verbatim_spans(llama_draft, target):
    prompt = SERVICES + "\nWhich image does svc17 run?"
    result = run(llama_draft, target, prompt, keep_rate=0.2)
    assert [(k.kind, k.start, k.end) for k in result.kinds] == [("yaml", 0, len(SERVICES))]
    record = SERVICES[SERVICES.index("  svc17:"):SERVICES.index("  svc18:")]
    assert record in result.text and result.text.startswith("services:\n")
    assert "more records ...]" in result.text
    assert result.tokens_after <= result.budget
    # the output is the kept spans, in order, and gap markers between them: no line is cut
    position, lines = 0, set(prompt.splitlines())
    for span in result.spans:
        piece = prompt[span.start:span.end]
        found = result.text.index(piece, position)
        assert all(line.strip().startswith("[...") for line in
                   result.text[position:found].splitlines() if line.strip())
        position = found + len(piece)
    assert not result.text[position:].strip()
    kept = [line for line in result.text.splitlines() if not line.strip().startswith("[...")]
    assert all(line in lines for line in kept)
