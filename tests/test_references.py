"""Omissions that can be asked back for: the reference store, the markers that carry
references, and `expand` through the library, the command line and `serve`."""

import json
import multiprocessing
import re
import sqlite3

import pytest
from conftest import long_text
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from property_settings import examples
from servers import in_thread
from typer.testing import CliRunner

from crossprefill_cli import compress
from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.errors import BudgetError, UnknownReference
from crossprefill_cli.pipeline.job import compress_messages
from crossprefill_cli.pipeline.references import ID_HEX, RefStore, parse
from crossprefill_cli.units.selection import referenced

TEXT = long_text(120)
MARKER_REF = re.compile(r"\bref ([0-9a-f]+:\d+-\d+)")


def test_a_stored_text_comes_back_by_its_reference(tmp_path):
    store = RefStore(tmp_path / "refs.sqlite3")
    identity = store.put(TEXT)
    assert len(identity) == ID_HEX and store.put(TEXT) == identity  # stored once
    assert store.expand(f"{identity}:10-200") == TEXT[10:200]
    assert store.expand(f"ref {identity}:0-{len(TEXT)}") == TEXT
    assert store.expand(f"[... 41 tokens · ref {identity}:5-9]") == TEXT[5:9]


@pytest.mark.parametrize("reference, message", [
    ("nonsense", "is not a reference"),
    ("7f3a:1-2", "is not a reference"),  # shorter than any ID
    ("7f3a9c01:9-2", "is not a reference"),
    ("7f3a9c01:1-2", "no stored input 7f3a9c01"),
])
def test_a_reference_to_nothing_is_an_error(tmp_path, reference, message):
    with pytest.raises(UnknownReference, match=message):
        RefStore(tmp_path / "refs.sqlite3").expand(reference)


def test_a_reference_past_its_input_is_an_error(tmp_path):
    store = RefStore(tmp_path / "refs.sqlite3")
    identity = store.put("short text")
    with pytest.raises(UnknownReference, match="outside its input"):
        store.expand(f"{identity}:0-11")


def test_the_least_recently_used_inputs_are_evicted_and_say_so(tmp_path):
    store = RefStore(tmp_path / "refs.sqlite3", max_bytes=1500)
    texts = [f"{index} " + long_text(12) for index in range(5)]  # ~460 bytes each, zipped
    ids = [store.put(text) for text in texts[:3]]
    assert store.expand(f"{ids[0]}:0-5") == texts[0][:5]  # now used after the others
    later = store.put(texts[3])
    with pytest.raises(UnknownReference, match="was evicted"):
        store.expand(f"{ids[1]}:0-5")
    assert store.expand(f"{ids[0]}:0-5") == texts[0][:5]
    assert store.expand(f"{later}:0-5") == texts[3][:5]
    assert store.put(texts[1]) == ids[1]  # stored again: the same ID, its references work
    assert store.expand(f"{ids[1]}:0-5") == texts[1][:5]
    with pytest.raises(UnknownReference, match="was evicted"):
        store.expand(f"{ids[2]}:0-5")


def test_an_id_taken_by_another_text_is_never_reused(tmp_path):
    path = tmp_path / "refs.sqlite3"
    store = RefStore(path)
    store.put("something else")  # creates the tables
    identity = store.put(TEXT)
    with sqlite3.connect(path) as db:  # another input holding the same prefix
        db.execute("DELETE FROM inputs WHERE id = ?", (identity,))
        db.execute("INSERT INTO inputs VALUES (?, 'another digest', x'00', 1, 0)", (identity,))
    longer = store.put(TEXT)
    assert longer != identity and longer.startswith(identity)
    assert store.expand(f"{longer}:0-20") == TEXT[:20]


def _put_many(path: str, worker: int) -> list[tuple[str, str]]:
    store = RefStore(__import__("pathlib").Path(path), max_bytes=20_000)
    texts = [f"worker {worker} text {index} " + long_text(6 + index % 5) for index in range(25)]
    return [(store.put(text), text) for text in texts]


def test_concurrent_writers_never_give_a_wrong_text(tmp_path):
    path = str(tmp_path / "refs.sqlite3")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        stored = [pair for pairs in pool.starmap(_put_many, [(path, w) for w in range(4)])
                  for pair in pairs]
    store = RefStore(tmp_path / "refs.sqlite3", max_bytes=20_000)
    kept = 0
    for identity, text in stored:
        try:
            assert store.expand(f"{identity}:0-{len(text)}") == text
            kept += 1
        except UnknownReference as error:
            assert "evicted" in str(error)
    assert len({identity for identity, _ in stored}) == len(stored) == 100
    assert 0 < kept < 100  # the cap held some and evicted the others


@pytest.mark.parametrize("marker, expected", [
    ("[...]", "[... 412 tokens · ref a:1-2]"),
    ("[... 12 lines ...]", "[... 12 lines · 412 tokens · ref a:1-2]"),
    ("# ... omitted", "# ... omitted · 412 tokens · ref a:1-2"),
    ("// omitted", "// omitted · 412 tokens · ref a:1-2"),
    ("<!-- ... omitted -->", "<!-- ... omitted · 412 tokens · ref a:1-2 -->"),
    ("/* ... omitted */", "/* ... omitted · 412 tokens · ref a:1-2 */"),
])
def test_a_marker_with_a_reference_keeps_its_own_shape(marker, expected):
    assert referenced(marker, 412, "a:1-2") == expected


def _check_references(result, text: str, store: RefStore) -> None:
    """Every gap is referenced in its marker, in order, and gives back its text; kept
    spans and gaps tile the input."""
    pieces = sorted([(s.start, s.end) for s in result.spans]
                    + [(o.start, o.end) for o in result.omitted])
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert MARKER_REF.findall(result.text) == [o.ref for o in result.omitted]
    for gap in result.omitted:
        assert parse(gap.ref)[1:] == (gap.start, gap.end)
        assert store.expand(gap.ref) == text[gap.start:gap.end]


def test_compressed_text_carries_references_within_its_budget(llama_draft, target, tmp_path):
    store = RefStore(tmp_path / "refs.sqlite3")
    plain = compress(TEXT, draft=llama_draft, target=target, keep_rate=0.3)
    result = compress(TEXT, draft=llama_draft, target=target, keep_rate=0.3, refs=True,
                      references=store)
    assert result.omitted and result.tokens_after == target.count(result.text) <= result.budget
    _check_references(result, TEXT, store)
    assert "ref " not in plain.text and all(o.ref is None for o in plain.omitted)
    assert [(o.start, o.end) for o in plain.omitted] == [(s.end, e.start) for s, e in
                                                        zip(plain.spans, plain.spans[1:])]
    again = compress(TEXT, draft=llama_draft, target=target, keep_rate=0.3, refs=True,
                     references=store)
    assert again.text == result.text  # the same input, the same references


@settings(max_examples=examples(15), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(paragraphs=st.integers(8, 40), rate=st.floats(0.05, 0.9), profile=st.sampled_from(
    ["text", "code"]))
def test_every_gap_of_any_compression_comes_back(llama_draft, target, tmp_path, paragraphs,
                                                 rate, profile):
    text = long_text(paragraphs)
    store = RefStore(tmp_path / "refs.sqlite3")
    try:
        result = compress(text, draft=llama_draft, target=target, keep_rate=rate, refs=True,
                          references=store, profile=profile)
    except BudgetError:  # a budget below the first line and the tail: nothing to check
        reject()
    assert result.tokens_after <= result.budget
    _check_references(result, text, store)


def test_messages_carry_references_to_their_own_text(llama_draft, target, tmp_path):
    store = RefStore(tmp_path / "refs.sqlite3")
    conversation = [{"role": "system", "content": "Answer briefly."},
                    {"role": "tool", "content": TEXT},
                    {"role": "user", "content": "What was noted on day 31?"}]
    data, result = compress_messages(conversation, draft=llama_draft, target=target,
                                     keep_rate=0.4, refs=True, references=store)
    compressed = data[1]["content"]
    references = MARKER_REF.findall(compressed)
    assert references and references == [o.ref for o in result.omitted]
    pieces = re.split(r"\s*\[\.\.\. [\d,]+ tokens? · ref [^\]]+\]\s*", compressed)
    rebuilt = "".join(piece + (store.expand(ref) if i < len(references) else "")
                      for i, (piece, ref) in enumerate(zip(pieces, references + [""])))
    assert all(piece.strip() in TEXT for piece in pieces)
    assert rebuilt.replace(" ", "").replace("\n", "") == TEXT.replace(" ", "").replace("\n", "")


def test_the_command_line_expands_what_compress_left_out(llama_dir, target_dir, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))
    source = tmp_path / "notes.txt"
    source.write_text(TEXT)
    runner = CliRunner()
    compressed = runner.invoke(app, ["compress", str(source), "--refs", "-r", "0.3", "--json",
                                     "-d", str(llama_dir), "-t", str(target_dir)])
    assert compressed.exit_code == 0, compressed.output
    report = json.loads(compressed.stdout)
    gap = report["omitted"][1]
    expanded = runner.invoke(app, ["expand", gap["ref"]])
    assert expanded.exit_code == 0 and expanded.stdout == TEXT[gap["start"]:gap["end"]]
    missing = runner.invoke(app, ["expand", "0123abcd:1-2"])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("crossprefill: error: no stored input 0123abcd")


def test_serve_expands_what_it_compressed(llama_dir, target_dir, tmp_path, monkeypatch):
    import httpx

    from crossprefill_cli.apps.http.server import ServerOptions, create_app

    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))
    application = create_app(ServerOptions(drafts=[str(llama_dir)], targets=[str(target_dir)]))
    with in_thread(application) as url:
        assert application.state.engine.ready.wait(120)
        report = httpx.post(url + "/v1/compress", json={"text": TEXT, "keep_rate": 0.3,
                                                        "refs": True}, timeout=120).json()
        gap = report["omitted"][0]
        assert f"ref {gap['ref']}]" in report["text"]
        answer = httpx.post(url + "/v1/expand", json={"ref": gap["ref"]}, timeout=30)
        assert answer.json() == {"ref": gap["ref"], "text": TEXT[gap["start"]:gap["end"]]}
        unknown = httpx.post(url + "/v1/expand", json={"ref": "0123abcd:1-2"}, timeout=30)
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "reference"
        wrong = httpx.post(url + "/v1/expand", json={"ref": 3}, timeout=30)
        assert wrong.status_code == 400
        by_client = CliRunner().invoke(app, ["expand", gap["ref"], "--server", url])
        assert by_client.stdout == TEXT[gap["start"]:gap["end"]]
