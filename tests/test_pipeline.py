import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tiktoken
from conftest import fixture_path, has_tiktoken_fixture, long_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from property_settings import examples
from structure import assert_verbatim_structure

from crossprefill_cli import compress
from crossprefill_cli.errors import InputError, ModelLoadError, UsageError
from crossprefill_cli.pipeline.draft_source import DraftSource
from crossprefill_cli.pipeline.job import Job
from crossprefill_cli.pipeline.profiles import load_profile
from crossprefill_cli.settings import Settings

TEXT = long_text(120)


def run(llama_draft, target, text=TEXT, **options):
    return compress(text, draft=llama_draft, target=target, **options)


def test_budget_is_met_exactly_and_closely(llama_draft, target):
    for rate in (0.1, 0.3, 0.6):
        result = run(llama_draft, target, keep_rate=rate)
        assert result.budget == int(rate * result.tokens_before)
        assert result.tokens_after == target.count(result.text) <= result.budget
        assert result.tokens_after >= 0.95 * result.budget


def test_target_tokens_is_a_hard_ceiling_that_wins_over_keep_rate(llama_draft, target):
    result = run(llama_draft, target, keep_rate=0.9, target_tokens=400)
    assert result.budget == 400 and result.tokens_after <= 400
    assert result.keep_rate == 0.9


def test_output_is_verbatim_ordered_spans_with_head_and_tail(llama_draft, target):
    result = run(llama_draft, target, keep_rate=0.2, query="Which entry mentions a falcon?")
    assert_verbatim_structure(TEXT, result, "[...]")
    first_line_end = TEXT.index("\n") + 1
    assert result.spans[0].start == 0 and result.spans[0].end >= first_line_end
    assert result.spans[-1].end == len(TEXT)
    assert result.text.endswith("Please summarise the notes above in three sentences.\n")


def test_same_input_same_output(llama_draft, target):
    first = run(llama_draft, target, keep_rate=0.25, query="falcon?")
    second = run(llama_draft, target, keep_rate=0.25, query="falcon?")
    assert first.text == second.text and first.to_json() == second.to_json()


def test_keep_rate_one_returns_the_input(llama_draft, target):
    assert run(llama_draft, target, keep_rate=1.0).text == TEXT


def test_report_has_the_documented_fields(llama_draft, target):
    report = run(llama_draft, target, keep_rate=0.3).to_json()
    for name in ("text", "tokens_before", "tokens_after", "budget", "keep_rate", "target",
                 "draft", "profile", "lookahead", "spans", "chunks"):
        assert name in report
    assert set(report["spans"][0]) == {"start", "end"}
    assert {"start", "end", "score", "kept"} <= set(report["chunks"][0])
    json.dumps(report)


def test_kept_chunks_are_the_best_scoring_ones(llama_draft, target):
    result = run(llama_draft, target, keep_rate=0.3, chunk_size=16, detect_query=False)
    optional = [c for c in result.chunks if not c.required]
    kept = [c.score for c in optional if c.kept]
    dropped = [c.score for c in optional if not c.kept]
    # greedy may skip an expensive chunk to fit a cheaper one, so compare medians
    assert sorted(kept)[len(kept) // 2] > sorted(dropped)[len(dropped) // 2]


def test_the_query_steers_the_scores(llama_draft, target):
    plain = run(llama_draft, target, keep_rate=0.3)
    asked = run(llama_draft, target, keep_rate=0.3, query="Which entry mentions a falcon?")
    assert [c.score for c in plain.chunks] != [c.score for c in asked.chunks]


@pytest.mark.parametrize("query_rows", [True, False])
def test_the_question_tokens_vote_when_the_profile_says_so(llama_draft, target, query_rows):
    requests = []

    def recording_scorer(draft, request):
        requests.append(request)
        return np.ones(len(request.token_ids))

    settings = load_profile("text").with_overrides(query_rows=query_rows)
    run(llama_draft, target, keep_rate=0.3, query="Which entry mentions a falcon?",
        profile=settings, scorer=recording_scorer)
    request = requests[0]
    voting = request.query_ids[len(request.query_ids) - 1 - request.query_rows:-1]
    if query_rows:  # from the query's first token up to the one before "Answer:" ends
        assert llama_draft.tokenizer.decode(voting).strip() == (
            "Which entry mentions a falcon?\nAnswer")
    else:
        assert request.query_rows == 0


@pytest.fixture
def draft_with_defaults(llama_dir, tmp_path):
    """A copy of the tiny llama draft whose folder names its own scoring defaults."""
    folder = shutil.copytree(llama_dir, tmp_path / "draft")
    (folder / "crossprefill.yaml").write_text("lookahead: 2\n")
    return folder


def lookahead_used(draft, target, **options) -> int:
    requests = []

    def recording_scorer(model, request):
        requests.append(request)
        return np.ones(len(request.token_ids))

    result = compress(TEXT, draft=str(draft), target=target, keep_rate=0.3, device="cpu",
                      dtype="float32", scorer=recording_scorer, **options)
    assert result.lookahead == requests[0].lookahead
    return result.lookahead


def test_the_lookahead_is_the_drafts_unless_a_profile_or_option_names_one(
        draft_with_defaults, llama_dir, target, tmp_path):
    assert lookahead_used(llama_dir, target) == 8  # no defaults file: the paper's value
    assert lookahead_used(draft_with_defaults, target) == 2
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text("lookahead: 5\n")
    assert lookahead_used(draft_with_defaults, target, profile=str(pinned)) == 5
    assert lookahead_used(draft_with_defaults, target, lookahead=3) == 3


@pytest.mark.parametrize("content", ["lookahead: 0\n", "lookahead: [1\n", "pool_kernel: 5\n"])
def test_a_broken_defaults_file_is_a_model_load_error(draft_with_defaults, target, content):
    (draft_with_defaults / "crossprefill.yaml").write_text(content)
    with pytest.raises(ModelLoadError, match="crossprefill.yaml"):
        lookahead_used(draft_with_defaults, target)


def test_windowed_scoring_still_meets_the_contract(llama_draft, target):
    result = run(llama_draft, target, keep_rate=0.3, window=100)
    assert result.windows > 1
    assert result.tokens_after <= result.budget
    assert_verbatim_structure(TEXT, result, "[...]")


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt2"])
def test_every_draft_family_through_the_path_users_give(draft_dirs, target, family):
    result = compress(TEXT, draft=str(draft_dirs[family]), target=target, keep_rate=0.3,
                      device="cpu")
    assert result.draft == str(draft_dirs[family])
    assert result.tokens_after <= result.budget
    assert_verbatim_structure(TEXT, result, "[...]")


@pytest.mark.parametrize("family", ["qwen2.5", "llama3", "deepseek-v3"])
def test_real_target_tokenizers_count_the_budget(llama_draft, family):
    folder = fixture_path(family)
    result = compress(TEXT, draft=llama_draft, target=str(folder), keep_rate=0.3)
    assert result.target == str(folder)
    assert 0.95 * result.budget <= result.tokens_after <= result.budget


@pytest.mark.skipif(not has_tiktoken_fixture("o200k_base"), reason="o200k_base fixture absent")
def test_default_target_is_o200k(llama_draft):
    result = compress(TEXT, draft=llama_draft, keep_rate=0.3)
    assert result.target == "o200k_base" and not result.warnings


def test_default_target_falls_back_to_the_draft_tokenizer_with_a_warning(llama_draft, monkeypatch,
                                                                        tmp_path):
    def offline(name):
        raise ConnectionError("offline")

    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))  # no kept copy of o200k_base
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    seen = []
    result = compress(TEXT, draft=llama_draft, keep_rate=0.3, on_warning=seen.append)
    assert result.target.startswith("draft tokenizer")
    assert seen == result.warnings and "o200k_base cannot be loaded" in seen[0]


@pytest.mark.parametrize("options, error, message", [
    ({"keep_rate": 0.0}, UsageError, r"keep rate must be in \(0, 1\]"),
    ({"keep_rate": 1.01}, UsageError, r"keep rate must be in \(0, 1\]"),
    ({"target_tokens": 5}, UsageError, "smaller than what must be kept"),
    ({"target_tokens": 0}, UsageError, "positive"),
    ({"query": "   "}, UsageError, "query is empty"),
    ({"window": 10_000}, UsageError, "exceeds the draft's context"),
    ({"profile": "nonesuch"}, UsageError, "unknown profile"),
])
def test_impossible_requests_are_usage_errors(llama_draft, target, options, error, message):
    with pytest.raises(error, match=message):
        run(llama_draft, target, **options)


def test_the_library_names_settings_by_their_keywords(llama_draft, target):
    """The library's keywords are the fields: its errors and warnings say `window` and
    `chunk_size`, not the command line's --window and --chunk-size."""
    with pytest.raises(UsageError) as raised:
        run(llama_draft, target, window=10_000)
    assert str(raised.value).startswith("window 10000 plus the query and lookahead exceeds")
    with pytest.raises(UsageError, match="^window must be a positive number"):
        Job(Settings(window=0), draft=DraftSource(llama_draft, device="cpu", dtype="auto"))
    far_below = run(llama_draft, target, profile="code", keep_rate=0.3, chunk_size=4000)
    assert "a smaller chunk_size lets" in far_below.warnings[0]
    assert not any("--" in warning for warning in far_below.warnings)


def test_a_job_for_a_command_line_names_the_flags(llama_draft, target):
    job = Job(Settings(window=10_000), draft=DraftSource(llama_draft, device="cpu", dtype="auto"),
              target=target, flags=True)
    with pytest.raises(UsageError, match="^--window 10000 plus the query"):
        job.compress(TEXT)


@pytest.mark.parametrize("text", ["", " \n\t "])
def test_empty_input_is_an_input_error(llama_draft, target, text):
    with pytest.raises(InputError):
        run(llama_draft, target, text=text)


WORDS = st.sampled_from("alpha beta gamma delta river stone def return x = 1 ( ) : , .".split())
TEXTS = st.lists(st.tuples(WORDS, st.sampled_from([" ", " ", "\n", "  "])), min_size=30,
                 max_size=400).map(lambda pairs: "".join(w + s for w, s in pairs))


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, rate=st.floats(0.05, 1.0), profile=st.sampled_from(["text", "code"]),
       chunk_size=st.integers(2, 40))
def test_property_verbatim_ordered_spans_within_budget(llama_draft, target, text, rate,
                                                       profile, chunk_size):
    try:
        result = compress(text, draft=llama_draft, target=target, keep_rate=rate,
                          profile=profile, chunk_size=chunk_size)
    except UsageError as error:  # a tiny budget below the required head
        assert "smaller than what must be kept" in str(error) or "leaves no tokens" in str(error)
        return
    assert result.tokens_after == target.count(result.text) <= result.budget
    # an input that parses as Python gets Python's comment delimiter
    assert_verbatim_structure(text, result, "[...]" if profile == "text"
                              else ("// omitted", "# ... omitted"))


def test_crlf_input_gets_crlf_markers(llama_draft, target):
    text = TEXT.replace("\n", "\r\n")
    result = run(llama_draft, target, text, keep_rate=0.2)
    assert "[...]" in result.text
    assert result.text.count("\n") == result.text.count("\r\n")
    assert_verbatim_structure(text, result, "[...]")


MARKDOWN = "\n".join(
    ["# Release notes", ""]
    + [f"## Version {v}\n\nThe {v} release changed the {w} handling.\n\n```python\n"
       + "\n".join(f"configure_{w}(level={i})" for i in range(12)) + "\n```\n- fixed {w}\n"
       for v, w in zip(range(1, 13), "parser lexer cache index queue codec socket timer "
                                      "logger shell config router".split())]) + "\nThe end.\n"


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.35, 0.5])
def test_markdown_output_keeps_fences_paired_and_blocks_on_their_lines(llama_draft, target, rate):
    result = run(llama_draft, target, MARKDOWN, keep_rate=rate)
    fences = [line for line in result.text.splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0
    assert all(opening == "```python" and closing == "```"
               for opening, closing in zip(fences[::2], fences[1::2]))
    for line in result.text.splitlines():  # a heading or list item after a gap starts its line
        assert "[...] #" not in line and "[...] - " not in line
    assert_verbatim_structure(MARKDOWN, result, "[...]")


def test_one_long_line_of_code_is_still_compressed_to_its_budget(llama_draft, target):
    minified = ";".join(f"function f{i}(a,b){{return a*{i}+b}}" for i in range(400))
    result = run(llama_draft, target, minified, profile="code", keep_rate=0.2)
    assert 0.8 * result.budget <= result.tokens_after <= result.budget
    assert result.warnings == [] and len(result.spans) > 1


def test_an_output_far_below_its_budget_says_why(llama_draft, target):
    result = run(llama_draft, target, profile="code", keep_rate=0.3, chunk_size=4000)
    assert result.tokens_after < 0.5 * result.budget
    assert len(result.warnings) == 1 and "far below the budget" in result.warnings[0]


def test_the_library_prints_nothing(llama_dir, target, capfd):
    compress(TEXT, draft=str(llama_dir), target=target, keep_rate=0.3, device="cpu")
    assert capfd.readouterr() == ("", "")


QUESTION = "Which entry mentions the falcon and the quarry?"
ASKING = long_text(120).replace("Please summarise the notes above in three sentences.\n",
                                f"Question: {QUESTION}\nAnswer:")


def test_the_question_inside_the_text_steers_like_the_query_option(llama_draft, target):
    detected = run(llama_draft, target, ASKING, keep_rate=0.2)
    given = run(llama_draft, target, ASKING, keep_rate=0.2, query=QUESTION)
    assert (detected.query_source, given.query_source) == ("detected", "given")
    assert detected.query == QUESTION  # the answer cue stays in the text, not in the query
    assert [c.score for c in detected.chunks] == [c.score for c in given.chunks]
    off = run(llama_draft, target, ASKING, keep_rate=0.2, detect_query=False)
    assert (off.query, off.query_source) == (None, "none")
    assert [c.score for c in off.chunks] != [c.score for c in detected.chunks]


def test_a_detected_question_is_kept_verbatim_where_it_stands(llama_draft, target):
    leading = f"Question: {QUESTION}\n\n" + long_text(120)
    result = run(llama_draft, target, leading, keep_rate=0.1)
    assert result.query == QUESTION and result.text.startswith(f"Question: {QUESTION}\n")


def test_a_detected_question_that_would_take_half_the_context_does_not_steer(llama_draft,
                                                                             target):
    asking = ("Which of the entries above, " + "and which of the days, " * 40
              + "mention the falcon?")  # one line under the detector's character bound
    text = long_text(120) + asking + "\n"
    result = run(llama_draft, target, text, keep_rate=0.2)
    off = run(llama_draft, target, text, keep_rate=0.2, detect_query=False)
    assert (result.query, result.query_source) == (None, "none")
    assert [c.score for c in result.chunks] == [c.score for c in off.chunks]
    assert len(result.warnings) == 1 and result.warnings[0].startswith(
        f"the question found at characters {len(long_text(120))}-{len(text) - 1} is ")
    assert "more than 50% of the draft's context of 512" in result.warnings[0]


CHAT = ("<|im_start|>system\nAnswer from the notes.<|im_end|>\n<|im_start|>user\n"
        + long_text(120) + "<|im_end|>\n<|im_start|>assistant\nI have read them.<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")


def test_a_chat_keeps_its_markers_system_and_last_turn_and_compresses_the_rest(llama_draft,
                                                                               target):
    result = run(llama_draft, target, CHAT, keep_rate=0.15)
    assert (result.query, result.query_source) == (QUESTION, "detected")
    for marker in ("<|im_start|>system\nAnswer from the notes.<|im_end|>\n",
                   "<|im_start|>user\n", "<|im_start|>assistant\n",
                   f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"):
        assert marker in result.text
    assert result.text.count("<|im_end|>") == CHAT.count("<|im_end|>")
    assert result.tokens_after <= result.budget and "[...]" in result.text


def test_the_attention_scorer_is_the_papers_unit_mean_and_the_report_names_the_scorer(
        llama_draft, target):
    from crossprefill_cli.pipeline.analysis import analyse, finish
    from crossprefill_cli.units import chunks

    analysis = analyse(TEXT, draft=llama_draft, query="Which entry mentions a falcon?",
                       scorer="attention")
    result = finish(analysis, keep_rate=0.2, target=target)
    assert result.scorer == "attention" and result.to_json()["scorer"] == "attention"
    assert analysis.scores.surprise is None  # only the surprise scorer pays for the output head
    units = [chunks.Unit(c.start, c.end, c.required) for c in result.chunks]
    expected = chunks.unit_scores(analysis.scores.importance,
                                  chunks.token_units(analysis.scores.starts, units), len(units))
    np.testing.assert_allclose([c.score for c in result.chunks], np.round(expected, 6), atol=1e-6)


def test_the_default_scorer_fuses_and_lexical_needs_no_draft_pass(llama_draft, target,
                                                                  monkeypatch):
    needle = "The harbour master of Vell Harbour keeps a walnut chest under the stairs."
    text = long_text(120, needle=needle, at=60)
    query = "Where does the harbour master of Vell Harbour keep the walnut chest?"
    fused = run(llama_draft, target, text, keep_rate=0.1, query=query)
    assert fused.scorer == "evidence" and needle in fused.text

    def no_pass(*args, **kwargs):
        raise AssertionError("the lexical scorer ran the draft")

    monkeypatch.setattr(type(llama_draft), "read", no_pass)
    lexical = run(llama_draft, target, text, keep_rate=0.1, query=query, scorer="lexical")
    assert lexical.scorer == "lexical" and needle in lexical.text


def test_a_custom_scorer_is_reported_as_custom(llama_draft, target):
    result = run(llama_draft, target, keep_rate=0.3,
                 scorer=lambda draft, request: np.ones(len(request.token_ids)))
    assert result.scorer == "custom"


def test_the_draft_source_tokenises_as_the_loaded_draft_does(draft_dirs):
    from crossprefill_cli.models.loading import plain_tokenizer_file
    from crossprefill_cli.pipeline.draft_source import DraftSource

    text = long_text(5) + "naïve café 世界 ☃\r\n\tend"
    for folder in [*draft_dirs.values(), "builtin"]:
        source = DraftSource(str(folder), device="cpu", dtype="float32")
        before = source.encode(text)  # from tokenizer.json alone, when it is plain
        after = source.load().encode(text)
        assert plain_tokenizer_file(str(folder)) is not None
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


@pytest.mark.parametrize("statement", [
    "from crossprefill_cli.pipeline import job; job.Job",
    "from crossprefill_cli.pipeline import compress_messages",
    "from crossprefill_cli.pipeline import estimate, draft_source; draft_source.DraftSource",
    "import crossprefill_cli.pipeline.analysis",  # it imports `heap` from the package
    "from crossprefill_cli.pipeline import heap, compress_messages; heap.give_back",
])
def test_the_pipeline_package_names_import_first_thing(statement):
    """In a fresh interpreter, the package's submodules and the names it kept for one
    release import whichever comes first (a submodule by name used to recurse, and one
    imported from the package inside another submodule used to cycle)."""
    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
