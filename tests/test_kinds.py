"""Kinds of input: logs, JSON, JSON Lines and diffs are recognised and cut on their
structure; their gaps say what went; question words meet identifiers and inflections."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.text import diffs, kinds, logs, structured
from crossprefill_cli.units import chunks, evidence, records, terms

PYTEST_RUN = "\n".join(
    ["============================= test session starts ==============================",
     "collected 40 items", ""]
    + [f"tests/test_mod.py::test_case_{i} PASSED{' ' * 20}[{i * 2:3d}%]" for i in range(20)]
    + ["tests/test_mod.py::test_port_parses FAILED                [ 42%]"]
    + [f"tests/test_other.py::test_more_{i} PASSED{' ' * 20}[{50 + i:3d}%]" for i in range(19)]
    + ["", "=================================== FAILURES ===================================",
       "_______________________________ test_port_parses _______________________________",
       "", "    def test_port_parses():", ">       assert parse_port('80a') == 8080",
       "E       AssertionError: assert 80 == 8080", "",
       "tests/test_mod.py:12: AssertionError",
       "=========================== short test summary info ============================",
       "FAILED tests/test_mod.py::test_port_parses - AssertionError: assert 80 == 8080",
       "========================= 1 failed, 39 passed in 0.21s =========================", ""])

TRACEBACK = """2026-01-02 10:00:01 INFO starting worker
Traceback (most recent call last):
  File "worker.py", line 3, in <module>
    run()
  File "worker.py", line 2, in run
    raise ValueError("bad port")
ValueError: bad port
2026-01-02 10:00:02 INFO retrying
"""


def test_a_test_run_is_a_log_and_prose_is_not():
    assert logs.is_log(PYTEST_RUN)
    assert kinds.detect(PYTEST_RUN) == "log"
    prose = "The quick brown fox jumps over the lazy dog.\n" * 40
    assert not logs.is_log(prose)
    assert kinds.detect(prose) is None


def test_entries_tile_the_log_and_keep_a_traceback_and_a_failure_section_whole():
    found = logs.entries(TRACEBACK)
    assert "".join(TRACEBACK[e.start:e.end] for e in found) == TRACEBACK
    texts = [TRACEBACK[e.start:e.end] for e in found]
    assert texts[1].startswith("Traceback") and texts[1].endswith("ValueError: bad port\n")
    assert texts[2] == "2026-01-02 10:00:02 INFO retrying\n"
    sections = [PYTEST_RUN[e.start:e.end] for e in logs.entries(PYTEST_RUN)]
    failure = next(s for s in sections if s.startswith("____"))
    assert "E       AssertionError" in failure and failure.endswith("AssertionError\n")


def test_lines_of_one_shape_share_a_template_and_a_rare_line_has_its_own():
    lines = [line for line in PYTEST_RUN.splitlines() if "::" in line and "FAILED " in line
             or "PASSED" in line]
    ids = logs.templates(lines)
    failed = lines.index(next(line for line in lines if "FAILED" in line))
    passed = [template for i, template in enumerate(ids) if i != failed]
    assert len(set(passed)) <= 2 and ids[failed] not in passed


def test_severity_reads_words_not_parts_of_names():
    assert logs.severity("FAILED tests/a.py::test_x - AssertionError") == 1.0
    assert logs.severity("tests/test_errors.py::test_error_handling PASSED") == 0.0
    assert logs.severity("DeprecationWarning: old API") == pytest.approx(logs.WARNING_SEVERITY)


def _log_units(text: str) -> tuple[list[chunks.Unit], logs.LogStructure]:
    detail = logs.LogStructure.of(text, 0, len(text))
    segments = records.segments(detail, 0, len(text))
    return [chunks.Unit(s.start, s.end) for s in segments], detail


def test_the_failure_is_novel_and_severe_and_passing_lines_are_neither():
    units, detail = _log_units(PYTEST_RUN)
    priors = {name: np.zeros(len(units)) for name in records.PRIORS}
    records.log_signals(PYTEST_RUN, units, detail, priors)
    texts = [PYTEST_RUN[u.start:u.end] for u in units]
    failed = next(i for i, t in enumerate(texts) if "test_port_parses FAILED" in t)
    passed = [i for i, t in enumerate(texts) if "PASSED" in t]
    assert priors["severity"][failed] == 1.0 and not priors["severity"][passed].any()
    assert priors["novelty"][failed] > priors["novelty"][passed[5]]
    # the first line of a template is its kept example: it ranks above its repeats
    assert priors["novelty"][passed[0]] > priors["novelty"][passed[5]]


def test_a_log_gap_counts_its_lines_and_says_when_they_are_all_alike():
    units, detail = _log_units(PYTEST_RUN)
    texts = [PYTEST_RUN[u.start:u.end] for u in units]
    first = next(i for i, t in enumerate(texts) if "test_case_0 " in t)
    last = next(i for i, t in enumerate(texts) if "test_case_19 " in t)
    note = records.gap_note(PYTEST_RUN, detail, units[first + 1].start, units[last].end)
    assert note == "[... 19 more lines like this ...]"
    mixed = records.gap_note(PYTEST_RUN, detail, units[last].start, units[last + 2].end)
    assert mixed == "[... 3 lines ...]"


PACKAGES = {"version": "1", "installed": [
    {"metadata": {"name": f"pkg{i}", "version": f"1.{i}.0", "summary": "word " * (i * 40),
                  "requires_dist": [f"dep{i}>=1", "other"]}, "installer": "pip"}
    for i in range(12)]}


@pytest.mark.parametrize("indent", [2, None])
def test_blocks_tile_the_data_and_never_cut_a_short_value(indent):
    text = json.dumps(PACKAGES, indent=indent)
    plan = structured.blocks(text, structured.parse(text), 0, len(text))
    assert "".join(text[b.start:b.end] for b in plan.blocks) == text
    assert "records" in plan.containers
    for block in plan.blocks:
        piece = text[block.start:block.end]
        assert piece.count('"') % 2 == 0, piece  # no string is cut in half
    # a member of a split record needs the blocks that open the containers above it
    version = next(b for b in plan.blocks if '"version": "1.9.0"' in text[b.start:b.end])
    opened = [text[plan.blocks[j].start:plan.blocks[j].end].strip() for j in version.path]
    assert any(piece.startswith('"installed"') for piece in opened)


def test_a_data_gap_counts_whole_records():
    text = json.dumps({"items": [{"id": i, "text": "x" * 300} for i in range(10)]}, indent=2)
    plan = structured.blocks(text, structured.parse(text), 0, len(text))
    records_ = [b for b in plan.blocks if b.role == "member" and b.parent == 1]
    assert len(records_) == 10
    note = records.gap_note(text, plan, records_[1].start, records_[8].end)
    assert note == "[... 8 more records ...]"
    assert records.gap_note(text, plan, records_[1].start + 3, records_[8].end) is None


def test_json_lines_are_records_and_data_with_a_question_after_it_is_data():
    lines = "".join(json.dumps({"sha": f"{i:040x}", "files": ["a.py"]}) + "\n" for i in range(30))
    assert kinds.detect(lines) == "jsonl"
    prompt = lines + "\nWhich files did commit 0000001 touch?"
    (start, end, kind), (_, _, after) = kinds.regions(prompt)
    assert (start, end, kind, after) == (0, len(lines), "jsonl", None)
    pretty = json.dumps(PACKAGES, indent=2)
    assert kinds.regions("Here is the output:\n" + pretty + "\nWhich version of pkg3?")[1][2] == "json"


def test_diffs_are_cut_into_file_headers_and_whole_hunks():
    diff = ("diff --git a/p.py b/p.py\n--- a/p.py\n+++ b/p.py\n"
            "@@ -1,3 +1,3 @@ class Parser:\n-def parse(text):\n+def parse(text, strict=False):\n"
            "     return text\n@@ -10,2 +10,2 @@\n-x = parse(a)\n+x = parse(a, True)\n")
    assert diffs.is_diff(diff) and kinds.detect(diff) == "diff"
    pieces = diffs.hunks(diff, 0, len(diff))
    assert "".join(diff[a:b] for a, b in pieces) == diff
    assert [diff[a:b].split("\n")[0][:2] for a, b in pieces] == ["di", "@@", "@@"]
    assert diffs.changed_names(diff) == {"parse"}
    assert not diffs.is_diff("--- a heading\nsome prose\n")


def test_terms_undo_identifiers_and_inflections():
    assert {"stop", "check", "action"} <= set(terms.terms("_post_stop_check_actions"))
    assert "_post_stop_check_actions" in terms.terms("_post_stop_check_actions")
    assert "retri" in terms.terms("retryIfException") and "retri" in terms.terms("retrying")
    assert terms.terms("Why does it fail?") == ["fail"]
    asked = set(terms.terms("failure"))
    bags = terms.aligned(terms.bags(["FAILED test_x", "PASSED test_y"]), asked)
    assert evidence.bm25(bags, asked)[0] > 0 == evidence.bm25(bags, asked)[1]


def test_implementation_outranks_its_tests_unless_the_question_asks_about_tests():
    texts = ["def stop_after(attempts): ...", "def test_stop_after(): assert stop_after(3)"]
    common = dict(unit_texts=texts, required=[False, False], attention=np.zeros(2),
                  surprise=None, secondary=np.array([False, True]),
                  paths=["tenacity/stop.py", "tests/test_stop.py"])
    about_code = evidence.unit_scores("evidence", query="how does it stop?", **common)
    assert about_code[0] > about_code[1]
    about_tests = evidence.unit_scores("evidence", query="how is stopping tested?", **common)
    assert about_tests[1] >= about_tests[0]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=60),
       st.sampled_from([None, 1, 2]))
def test_any_json_parses_to_blocks_that_tile_it(value, indent):
    text = json.dumps(value, indent=indent)
    root = structured.parse(text)
    assert root.end == len(text)
    plan = structured.blocks(text, root, 0, len(text))
    assert "".join(text[b.start:b.end] for b in plan.blocks) == text



def _data_plan(text):
    """A data plan over one unit per non-empty block: (plan, identities, lineages, groups)."""
    plan = structured.blocks(text, structured.parse(text), 0, len(text))
    units = [chunks.Unit(b.start, b.end) for b in plan.blocks if b.end > b.start]
    signals = {name: np.zeros(len(units)) for name in records.PRIORS}
    groups, identities, lineages = np.full(len(units), -1), [""] * len(units), [""] * len(units)
    records.data_plan(text, units, plan, signals, groups, [set() for _ in units], identities,
                      lineages)
    return plan, identities, lineages, groups


NESTED = json.dumps({"dependencies": {
    "express": {"version": "4.0.0", "installer": "npm", "note": "x" * 400, "dependencies": {
        "debug": {"version": "2.6.9", "installer": "npm", "note": "x" * 400},
        "qs": {"version": "6.1.0", "installer": "npm", "note": "x" * 400}}},
    "debug": {"version": "4.3.4", "installer": "npm", "note": "x" * 400}}}, indent=2)


def _record_names(identities, groups):
    """Each record's names (a split record's are in several of its units), by its first unit."""
    names = {}
    for index, held in enumerate(identities):
        if held:
            names.setdefault(int(groups[index]) if groups[index] >= 0 else index, set()).update(
                held.split())
    return names


def test_records_are_named_by_their_keys_and_by_values_no_sibling_record_holds():
    plan, identities, lineages, groups = _data_plan(NESTED)
    assert sorted(records.record_keys(NESTED, plan).values()) == ["debug", "debug", "express", "qs"]
    names = _record_names(identities, groups)
    # "npm" is every record's installer: it names none; 2.6.9 names only its record
    assert sorted(map(sorted, names.values())) == [
        ["2.6.9", "debug"], ["4.0.0", "express"], ["4.3.4", "debug"], ["6.1.0", "qs"]]
    # the records nested in express's have express's names above them
    above = {" ".join(sorted(held)): lineages[first] for first, held in names.items()}
    assert {k: sorted(v.split()) for k, v in above.items()} == {
        "4.0.0 express": [], "2.6.9 debug": ["4.0.0", "express"],
        "6.1.0 qs": ["4.0.0", "express"], "4.3.4 debug": []}


def test_the_copy_under_the_named_parent_outranks_other_copies_and_the_parent():
    plan, identities, lineages, groups = _data_plan(NESTED)
    question = "Which version of debug, the copy under express, is installed?"
    asked = set(terms.terms(question))
    names = {" ".join(sorted(held)): first
             for first, held in _record_names(identities, groups).items()}
    score = evidence.identity_hits(identities, lineages, groups, asked, question)
    # asked terms among its names and its parent's (debug, express), and each written whole
    assert {name: score[first] for name, first in names.items()} == {
        "2.6.9 debug": 4, "4.0.0 express": 2, "4.3.4 debug": 2, "6.1.0 qs": 0}
    # every unit of a record scores alike
    assert all(score[i] == score[groups[i]] for i in range(len(groups)) if groups[i] >= 0)
    # without lineages a record counts its own names only
    plain = evidence.identity_hits(identities, None, groups, asked, question)
    assert plain[names["2.6.9 debug"]] == 2


def test_a_name_the_question_writes_whole_outranks_one_that_only_holds_its_word():
    identities = ["requests 2.31.0", "https://github.com/psf/requests-oauthlib"]
    question = "List the dependencies that requests declares."
    asked = set(terms.terms(question))
    score = evidence.identity_hits(identities, None, np.array([-1, -1]), asked, question)
    assert score.tolist() == [2.0, 1.0]


def test_an_array_of_one_object_is_records_and_an_object_of_one_object_is_not():
    only = {"key": "terminado", "note": "x" * 700}
    text = json.dumps({"dependencies": [only], "metadata": {"a": {"note": "y" * 700}}}, indent=2)
    plan = structured.blocks(text, structured.parse(text), 0, len(text))
    at = next(i for i, b in enumerate(plan.blocks) if '"terminado"' in text[b.start:b.end])
    first = plan.blocks[at].record
    assert first >= 0 and text[plan.blocks[first].start:plan.blocks[first].end].strip() == "{"
    assert plan.containers[plan.blocks[first].parent] == "records"
    note = next(b for b in plan.blocks if '"a"' in text[b.start:b.end])
    assert note.record == -1  # "metadata": {"a": {...}} holds no records
