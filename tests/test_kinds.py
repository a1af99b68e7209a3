"""Kinds of input: logs, JSON, JSON Lines and diffs are recognised and cut on their
structure; their gaps say what went; question words meet identifiers and inflections."""

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.text import diffs, kinds, logs, structured, yaml_data
from crossprefill_cli.units import chunks, evidence, layout, records, terms

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


def test_broken_names_are_the_changes_that_callers_must_follow():
    diff = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,9 +1,9 @@\n"
            "-def render(logger, method, event):\n+def render(_: Logger, __: str, event: Event):\n"
            "     pass\n"
            "-def debug(self, event=None, *args, **kw):\n"
            "+def debug(self, event: Optional[str] = None, *args: Any, **kw: Any) -> Dict[str, Any]:\n"
            "     pass\n def many(\n     a,\n-    b,\n+    b, c,\n ):\n"
            "-func Old(x int) {\n+func New(x int) {\n")
    # `debug` only gains annotations: its calls still work; `many` changes on a context
    # line's definition, `Old` is renamed away
    assert diffs.broken_names(diff) == {"render", "many", "Old"}
    assert diffs.changed_names(diff) == {"render", "debug", "Old", "New"}
    texts = ["render(a, b, c)", "debug(x)", "render(a, b, c); debug(x)", "nothing here"]
    found = evidence.references(texts, frozenset({"render", "debug"}), frozenset({"render"}))
    assert found.tolist() == [1.0, evidence.UNBROKEN_SHARE, 1.0 + evidence.UNBROKEN_SHARE, 0.0]
    assert evidence.references(texts, frozenset({"render", "debug"})).tolist() == [1, 1, 2, 0]


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


COMPOSE = """\
# the web stack
services:
  web:
    image: nginx:1.25  # pinned
    ports:
      - "80:80"
    command: |
      nginx -g 'daemon off;'
      echo started
  db:
    image: postgres:16
    environment: {POSTGRES_DB: app, POSTGRES_USER: app}
volumes:
  data: {}
"""

MANIFESTS = """\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
spec:
  replicas: 2
---
apiVersion: v1
kind: Service
metadata:
  name: cart
spec:
  ports:
  - port: 80
    targetPort: 8080
"""


def _yaml_values(text: str) -> list[tuple[int, int]]:
    """Every scalar's span, from PyYAML's own events."""
    import yaml

    return [(e.start_mark.index, e.end_mark.index) for e in yaml.parse(text, Loader=yaml.SafeLoader)
            if isinstance(e, yaml.ScalarEvent) and e.end_mark.index > e.start_mark.index]


def test_yaml_blocks_of_a_multi_document_stream_are_its_documents_and_members(monkeypatch):
    monkeypatch.setattr(structured, "MAX_BLOCK_CHARS", 30)
    plan = yaml_data.blocks(MANIFESTS, 0, len(MANIFESTS))
    pieces = [(b.role, MANIFESTS[b.start:b.end]) for b in plan.blocks]
    assert pieces == [
        ("rest", ""),
        ("open", "---\n"), ("member", "apiVersion: apps/v1\n"), ("member", "kind: Deployment\n"),
        ("member", "metadata:\n  name: cart\n"), ("member", "spec:\n  replicas: 2\n"),
        ("close", ""),
        ("open", "---\n"), ("member", "apiVersion: v1\n"), ("member", "kind: Service\n"),
        ("member", "metadata:\n  name: cart\n"), ("open", "spec:\n"), ("open", "  ports:\n"),
        ("open", "  - "), ("member", "port: 80\n"), ("member", "    targetPort: 8080\n"),
        ("close", ""), ("close", ""), ("close", ""), ("close", ""), ("close", "")]
    assert plan.syntax == "yaml" and plan.containers[0] == "records"
    # the second document is a record, and so is the one port in its list; the port
    # needs the lines that lead to it
    port = next(b for b in plan.blocks if MANIFESTS[b.start:b.end] == "port: 80\n")
    assert plan.blocks[port.record].start == MANIFESTS.index("  - port")
    service = next(b for b in plan.blocks if MANIFESTS[b.start:b.end] == "kind: Service\n")
    assert plan.blocks[service.record].start == MANIFESTS.index("---\napiVersion: v1")
    assert [MANIFESTS[plan.blocks[j].start:plan.blocks[j].end] for j in port.path[1:]] == [
        "---\n", "spec:\n", "  ports:\n", "  - "]


def test_yaml_blocks_never_cut_a_value_and_a_block_scalar_is_one(monkeypatch):
    monkeypatch.setattr(structured, "MAX_BLOCK_CHARS", 20)
    plan = yaml_data.blocks(COMPOSE, 0, len(COMPOSE))
    assert "".join(COMPOSE[b.start:b.end] for b in plan.blocks) == COMPOSE
    cuts = {b.start for b in plan.blocks}
    assert not any(a < cut < b for a, b in _yaml_values(COMPOSE) for cut in cuts)
    texts = [COMPOSE[b.start:b.end] for b in plan.blocks]
    assert "    command: |\n      nginx -g 'daemon off;'\n      echo started\n" in texts
    assert "    image: nginx:1.25  # pinned\n" in texts
    assert "services:\n" in texts and "  db:\n" in texts


def test_a_yaml_comment_goes_with_the_member_below_it_but_never_leaves_a_block_scalar(monkeypatch):
    monkeypatch.setattr(structured, "MAX_BLOCK_CHARS", 20)
    text = ("jobs:\n  # the proxy\n  web:\n    image: nginx\n    run: |\n      echo a\n"
            "      # inside the script\n    # after a blank line\n\n    # right above\n"
            "    db: postgres\n")
    pieces = [text[b.start:b.end] for b in yaml_data.blocks(text, 0, len(text)).blocks]
    assert pieces == ["", "jobs:\n  # the proxy\n", "  web:\n", "    image: nginx\n",
                      "    run: |\n      echo a\n      # inside the script\n"
                      "    # after a blank line\n\n",
                      "    # right above\n    db: postgres\n", "", "", ""]


def test_yaml_is_data_and_prose_markdown_and_python_are_not():
    assert kinds.detect(COMPOSE) == "yaml" and kinds.detect(MANIFESTS) == "yaml"
    prose = "The quick brown fox jumps over the lazy dog.\n" * 40
    assert kinds.detect(prose) is None  # one plain scalar to PyYAML
    assert kinds.detect("- apples\n- pears\n- plums\n- figs\n") is None  # a Markdown list
    markdown = ("# Shopping\n\nBuy these today:\n\n- apples\n- pears\n- milk: two litres\n"
                "- plums\n\nThanks.\n")
    assert kinds.regions(markdown) == [(0, len(markdown), None)]
    records = "".join(f"Name: item {i}\nPrice: {i}\n\n" for i in range(10))  # YAML repeats no key
    assert yaml_data.parse(records, 0, len(records)).repeated_keys == 18
    assert kinds.detect(records) is None
    notes = "".join(f"Entry {i}: the river near the orchard was high on day {i}.\n" for i in range(20))
    assert yaml_data.parse(notes, 0, len(notes)).prose_values == 20  # a mapping of sentences
    assert kinds.detect(notes) is None
    code = "class A:\n    def f(self):\n        return 1\n    def g(self):\n        return 2\n"
    assert yaml_data.is_yaml(code) and kinds.detect(code) == "python"  # Python first
    asked = "Here is the compose file:\n\n" + COMPOSE + "\nWhich image does db run?"
    # the data starts at its first key (a comment at the margin may be a Markdown heading)
    start, end = asked.index("services:"), asked.index("\nWhich")
    assert kinds.regions(asked) == [(0, start, None), (start, end, "yaml"),
                                    (end, len(asked), None)]
    fenced = "Our stack:\n```yaml\n" + COMPOSE + "```\nWhich image does db run?"
    assert kinds.regions(fenced)[1] == (fenced.index("services:"), fenced.index("```\nW"), "yaml")


def test_yaml_is_read_from_events_only_and_within_bounds(monkeypatch):
    bomb = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c]\n"
    assert len(yaml_data.blocks(bomb, 0, len(bomb)).blocks) == 1  # aliases are not expanded
    tagged = "a: !!python/object/apply:os.system ['echo hi']\nb: 1\nc: 2\n"
    assert kinds.detect(tagged) == "yaml"  # read, never constructed
    monkeypatch.setattr(yaml_data, "MAX_CHARS", 50)
    assert not yaml_data.is_yaml(COMPOSE)
    assert kinds.detect("a: 1\nb: [\n") is None  # does not parse


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, min_size=1, max_size=5)
                    | st.dictionaries(st.text(max_size=8), inner, min_size=1, max_size=5),
                    max_leaves=60),
       st.sampled_from([False, None]), st.booleans())
def test_any_yaml_parses_to_blocks_that_tile_it_between_values(value, flow, twice):
    import yaml

    text = yaml.safe_dump_all([value] * (2 if twice else 1), default_flow_style=flow,
                              explicit_start=twice, allow_unicode=True)
    try:
        plan = yaml_data.blocks(text, 0, len(text))
    except yaml_data.NotYAML:  # a lone scalar is not data
        assert not isinstance(value, (list, dict))
        return
    assert "".join(text[b.start:b.end] for b in plan.blocks) == text
    cuts = {b.start for b in plan.blocks}
    assert not any(a < cut < b for a, b in _yaml_values(text) for cut in cuts)


def test_a_dump_file_of_no_language_or_plain_text_is_read_for_its_kind():
    log = "".join(f"2026-01-01 10:00:{i:02d} INFO step {i} ok\n" for i in range(40))
    dump = ('<file path="README.txt">\nSome words here.\n</file>\n'
            f'<file path="ci-output.txt">\n{log}</file>\n'
            '<file path="notes">\nplain notes\n</file>\n<file path="a.py">\nx = 1\n</file>\n')
    parts = [(dump[p.start:p.end], p.language, p.code)
             for p in layout.describe(dump, line_mode=True).parts if not p.required]
    assert parts == [("Some words here.\n", "text", False), (log, "log", True),
                     ("plain notes\n", None, True), ("x = 1\n", "python", True)]


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


def test_a_term_that_aligns_with_several_asked_terms_takes_the_longest_in_every_process():
    # "retrieval" starts both "retriev" and "retri": a set's order (the process's hash
    # seed) must not pick between them
    bags = terms.aligned([Counter({"retrieval": 2, "other": 1})], {"retri", "retriev", "zzzz"})
    assert bags == [Counter({"retriev": 2, "other": 1})]
