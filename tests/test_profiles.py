import pytest

from crossprefill_cli.errors import UsageError
from crossprefill_cli.pipeline.profiles import builtin_names, load_profile


def test_builtin_profiles_carry_the_papers_settings():
    assert builtin_names() == ["code", "text"]
    text, code = load_profile("text"), load_profile("code")
    assert (text.chunk_size, text.pool_kernel, text.delimiter) == (32, 13, "[...]")
    # how many lookahead tokens carry signal is the draft's to say (loading.draft_defaults)
    assert text.lookahead == code.lookahead == "auto"
    assert (code.chunk_size, code.delimiter, code.boundary) == (128, "// omitted", "line")


def test_user_profile_inherits_from_its_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: code\nchunk_size: 64\ndelimiter: '<snip>'\n")
    profile = load_profile(str(path))
    assert (profile.name, profile.chunk_size, profile.delimiter, profile.boundary) == \
        ("mine", 64, "<snip>", "line")


@pytest.mark.parametrize("content, message", [
    ("chunk_size: [1, 2", "not valid YAML"),
    ("- a list\n", "mapping"),
    ("chunk_sise: 12\n", "unknown setting"),
    ("chunk_size: 0\n", "chunk_size must be a positive integer"),
    ("keep_rate: 1.5\n", "keep_rate must be in"),
    ("tree_share: -0.1\n", "tree_share must be in \\[0, 1\\]"),
    ("diff_share: half\n", "diff_share must be in"),
    ("boundary: paragraph\n", "boundary must be one of"),
    ("scorer: bm25\n", "scorer must be one of evidence, attention, lexical, surprise"),
    ("query_template: 'no placeholder'\n", "must contain {query}"),
    ("base: nothing\n", "unknown base profile"),
    ("language_delimiters: [a]\n", "must be a mapping"),
    ("language_delimiters: {pyton: '# x'}\n", "unknown language 'pyton'"),
    ("language_delimiters: {python: '  '}\n", "non-blank string"),
])
def test_bad_user_profiles_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_profile(str(path))


def test_unknown_profile_names_list_the_choices():
    with pytest.raises(UsageError, match="built-in profiles: code, text"):
        load_profile("prose")


def test_missing_profile_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read profile"):
        load_profile(str(tmp_path / "absent.yaml"))


def test_a_profile_may_leave_the_lookahead_to_the_draft_or_name_it(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("lookahead: 3\n")
    assert load_profile(str(path)).lookahead == 3
    path.write_text("lookahead: automatic\n")
    with pytest.raises(UsageError, match="lookahead must be a positive integer"):
        load_profile(str(path))


def test_overrides_are_validated():
    assert load_profile("text").with_overrides(chunk_size=16, lookahead=None).chunk_size == 16
    with pytest.raises(UsageError, match="pool_kernel"):
        load_profile("text").with_overrides(pool_kernel=-1)


def test_code_profile_speaks_each_languages_comment_syntax():
    code = load_profile("code")
    assert code.delimiter_for("python") == "# ... omitted"
    assert code.delimiter_for("rust") == "// ... omitted"
    assert code.delimiter_for("sql") == "-- ... omitted"
    assert code.delimiter_for("markdown") == code.delimiter_for(None) == "// omitted"
    assert load_profile("text").delimiter_for("python") == "[...]"


def test_user_language_delimiters_merge_over_the_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: code\nlanguage_delimiters:\n  python: '# snip'\n  html: '<!-- snip -->'\n")
    profile = load_profile(str(path))
    assert profile.delimiter_for("python") == "# snip"
    assert profile.delimiter_for("html") == "<!-- snip -->"
    assert profile.delimiter_for("go") == "// ... omitted"
    hash(profile)  # profiles stay hashable
