"""inspect and estimate on the command line, and the heatmap they draw."""

import io
import json
import re

import pytest
from conftest import long_text
from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.estimate_table import render_estimate
from crossprefill_cli.apps.cli.render import draft_progress, stderr_console

TEXT = long_text(60, needle="The ferry to Ostwick leaves from pier 42.", at=30)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path / "cache"))


def invoke(llama_dir, target_dir, *args, env=None, **kwargs):
    return runner.invoke(app, [*args, "-d", str(llama_dir), "-t", str(target_dir)],
                         input=TEXT, env=env, **kwargs)


def test_inspect_draws_heatmap_counts_and_top_chunks_in_80_columns(llama_dir, target_dir):
    result = invoke(llama_dir, target_dir, "inspect", "-r", "0.25",
                    env={"COLUMNS": "80", "FORCE_COLOR": "1", "NO_COLOR": None})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "\x1b[" in result.stderr  # coloured
    plain = ANSI.sub("", result.stderr)
    assert all(len(line) <= 80 for line in plain.splitlines())
    for expected in ("Saliency of", "█ kept", "░ dropped", "score percentile", "Counts",
                     "target tokens before", "chunks kept", "(scored by evidence)",
                     "Highest-scoring chunks"):
        assert expected in plain
    cells = "".join(re.findall(r"[█▓░]", plain.split("cell =")[0]))
    report = json.loads(invoke(llama_dir, target_dir, "inspect", "-r", "0.25", "--json").stdout)
    assert len(cells) == len(report["chunks"])
    assert cells.count("░") == sum(not c["kept"] for c in report["chunks"])


def test_no_color_is_respected(llama_dir, target_dir):
    result = invoke(llama_dir, target_dir, "inspect", env={"NO_COLOR": "1", "FORCE_COLOR": None})
    assert result.exit_code == 0 and "\x1b[" not in result.stderr and "Saliency" in result.stderr


@pytest.mark.parametrize("env", [{"NO_COLOR": "1", "FORCE_COLOR": None},
                                 {"NO_COLOR": "1", "FORCE_COLOR": "1"},  # a terminal, no colour
                                 {"NO_COLOR": None, "FORCE_COLOR": None}])  # no terminal
def test_heatmap_has_no_colour_legend_without_colour(llama_dir, target_dir, env):
    result = invoke(llama_dir, target_dir, "inspect", env=env)
    assert result.exit_code == 0, result.stderr
    plain = ANSI.sub("", result.stderr)
    assert "█ kept" in plain and "░ dropped" in plain
    assert "score percentile" not in plain


@pytest.mark.parametrize("columns", [80, 120])
def test_top_chunk_excerpts_end_on_a_word_or_an_ellipsis(llama_dir, target_dir, columns):
    result = invoke(llama_dir, target_dir, "inspect", env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    table = result.stderr.split("Highest-scoring chunks")[1]
    excerpts = re.findall(r"^\d\.\d{4}\s+(?:yes|no)\s+\d+\s+(.+?)\s*$", table, re.M)
    assert excerpts
    flat = " ".join(TEXT.split())
    for excerpt in excerpts:
        stem = excerpt.removesuffix("…")
        assert stem in flat
        # at 120 the column holds the whole word-boundary cut; at 80 Rich's ellipsis cuts it
        if columns == 120 or stem == excerpt:
            assert re.search(re.escape(stem) + r"(\s|$)", flat), excerpt
    assert any(excerpt.endswith("…") for excerpt in excerpts)
    if columns == 120:  # the excerpts use the room a wide terminal has
        assert max(len(excerpt) for excerpt in excerpts) > 80


def test_estimate_table_fits_80_columns_with_every_option():
    strings = ["The ferry to Ostwick leaves from pier 42.", "Entry 3:"]
    before = 1_234_567
    rows = [{"keep_rate": 0.01, "tokens_after": None, "error": "below what must be kept"}]
    for rate in (0.1, 0.3, 0.5):
        after = round(before * rate)
        rows.append({"keep_rate": rate, "budget": after, "tokens_after": after, "share": rate,
                     "prefill_tokens_saved": before - after, "attention_work_saved": 1 - rate ** 2,
                     "fits": after <= 200_000, "cost_after": after * 2.5e-6,
                     "money_saved": (before - after) * 2.5e-6,
                     "survives": {strings[0]: rate > 0.2, strings[1]: True}})
    report = {"target": "gpt-4o", "draft": "Qwen/Qwen2.5-0.5B", "profile": "prose",
              "tokens_before": before, "context_window": 200_000, "price_per_mtok": 2.5,
              "scores_cached": True, "rows": rows, "must_keep": strings,
              "missing_from_input": [], "smallest_keep_rate": 0.3}
    lines = render_estimate(report, color=False, width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    data = [line.split() for line in lines if re.match(r"\s*0\.\d+ ", line)]
    assert [cells[0] for cells in data] == ["0.01", "0.1", "0.3", "0.5"]
    assert data[0][1:] == ["too", "low"]
    assert data[1] == ["0.1", "123,457", "10.0%", "1,111,110", "99%", "yes", "$0.3086",
                       "$2.7778", "lost", "kept"]
    assert all(len(cells) == 10 for cells in data[1:])


def terminal_stderr() -> Environment:
    """Input piped in, stdout piped out, stderr a terminal: the usual shell pipeline."""
    return Environment(stdin=io.BytesIO(TEXT.encode()), stdout=io.BytesIO(), stderr=io.StringIO(),
                       stdin_isatty=False, stderr_isatty=True)


def test_compress_shows_the_heatmap_only_when_asked_and_one_line_on_a_terminal(llama_dir,
                                                                              target_dir):
    piped = invoke(llama_dir, target_dir, "compress")
    assert piped.exit_code == 0 and piped.stderr == ""
    asked = invoke(llama_dir, target_dir, "compress", "--heatmap")
    assert "Saliency of" in asked.stderr and asked.stdout == piped.stdout
    options = ["-d", str(llama_dir), "-t", str(target_dir)]
    terminal, quiet = terminal_stderr(), terminal_stderr()
    runner.invoke(app, ["compress", *options], obj=terminal)
    runner.invoke(app, ["compress", "--quiet", *options], obj=quiet)
    report = json.loads(invoke(llama_dir, target_dir, "compress", "--json").stdout)
    assert re.fullmatch(
        f"crossprefill: {report['tokens_before']:,} → {report['tokens_after']:,} target tokens "
        rf"\({re.escape(str(target_dir))}\), "
        f"{100 * report['tokens_after'] / report['tokens_before']:.1f}% kept, "
        r"\d+\.\d s", terminal.stderr.getvalue().splitlines()[-1])
    # (before it, only what the transient progress bar leaves on a fake terminal)
    assert terminal.stderr.getvalue().strip().count("\n") == 0
    assert quiet.stderr.getvalue() == ""
    assert terminal.stdout.getvalue().decode() == quiet.stdout.getvalue().decode() == piped.stdout


def test_piped_reports_have_no_trailing_spaces_and_an_unbroken_header(llama_dir, target_dir):
    for args in (["inspect"], ["estimate", "--context-window", "900", "--price-per-mtok", "2"]):
        result = invoke(llama_dir, target_dir, *args, env={"COLUMNS": "80", "NO_COLOR": "1"})
        assert result.exit_code == 0, result.stderr
        shown = result.stderr if args[0] == "inspect" else result.stdout
        assert shown and not re.search(r" +$", shown, re.M)
    header = invoke(llama_dir, target_dir, "estimate", "--no-cache",
                    env={"COLUMNS": "40"}).stdout.split("\n")[:2]
    assert header[1] == f"draft {llama_dir}, profile text" and len(header[1]) > 40


def test_the_estimate_table_says_what_its_columns_mean():
    rows = [{"keep_rate": 0.3, "budget": 30, "tokens_after": 30, "share": 0.3,
             "prefill_tokens_saved": 70, "attention_work_saved": 0.91, "survivors": {},
             "survives": {}}]
    report = {"target": "o200k_base", "draft": "builtin", "profile": "text",
              "tokens_before": 100, "context_window": None, "price_per_mtok": None,
              "scores_cached": False, "rows": rows, "must_keep": []}
    shown = render_estimate(report, color=False)
    for column in ("tokens after", "share", "prefill saved", "attn saved"):
        assert re.search(rf"^{column} +\S", shown, re.M), column
    assert "fits" not in shown and "cost" not in shown
    both = render_estimate({**report, "context_window": 50, "price_per_mtok": 2.0,
                            "rows": [{**rows[0], "fits": True, "cost_after": 0.1,
                                      "money_saved": 0.2}]}, color=False)
    assert re.search(r"^fits +whether", both, re.M) and re.search(r"^cost +the result", both, re.M)


@pytest.mark.parametrize("path, width, shown", [
    ("pkg/mod.py", 22, "pkg/mod.py"),
    ("src/crossprefill_cli/profiles/code.yaml", 22, "src/crosspr…/code.yaml"),
    ("cache/pnpm-lock-2ab282f20a2c22f7.yaml", 22, "pnpm-lock-2…c22f7.yaml"),
    ("pnpm-lock-2ab282f20a2c22f7aaaa.yaml", 22, "pnpm-lock-2…7aaaa.yaml"),
])
def test_long_paths_keep_their_start_and_file_name(path, width, shown):
    from crossprefill_cli.apps.cli.render import _fit

    assert _fit(path, width) == shown and len(shown) <= width


def test_inspect_explains_its_columns(llama_dir, target_dir):
    result = invoke(llama_dir, target_dir, "inspect", env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert "score: the chunk's weight under the evidence scorer" in result.stderr
    assert "line: the input line where the chunk starts" in result.stderr


def test_estimate_json_rows_grow_with_the_keep_rate(llama_dir, target_dir):
    result = invoke(llama_dir, target_dir, "estimate", "--keep-rates", "0.5,0.1,0.3",
                    "--context-window", "900", "--price-per-mtok", "2", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    rows = report["rows"]
    assert [row["keep_rate"] for row in rows] == [0.1, 0.3, 0.5]
    assert all(row["tokens_after"] <= row["budget"] for row in rows)
    assert [row["tokens_after"] for row in rows] == sorted(row["tokens_after"] for row in rows)
    assert all(row["fits"] == (row["tokens_after"] <= 900) for row in rows)
    assert rows[0]["money_saved"] > rows[-1]["money_saved"] > 0


def test_estimate_finds_the_smallest_keep_rate_that_keeps_a_string(llama_dir, target_dir):
    needle = "The ferry to Ostwick leaves from pier 42."
    report = json.loads(invoke(llama_dir, target_dir, "estimate", "--must-keep", needle,
                               "--must-keep", "Entry 3:", "--json").stdout)
    smallest = report["smallest_keep_rate"]
    assert 0 < smallest <= 1

    def kept_at(rate):
        out = invoke(llama_dir, target_dir, "compress", "-r", str(rate)).stdout
        return needle in out and "Entry 3:" in out

    assert kept_at(smallest)
    if smallest > 0.01:
        assert not kept_at(round(smallest - 0.01, 2))
    table = invoke(llama_dir, target_dir, "estimate", "--must-keep", needle,
                   "--must-keep", "Entry 3:").stdout
    assert f"smallest keep rate that keeps all of them: {smallest:g}" in table


def test_estimate_reports_strings_missing_from_the_input(llama_dir, target_dir):
    report = json.loads(invoke(llama_dir, target_dir, "estimate", "--must-keep", "absent words",
                               "--json").stdout)
    assert report["missing_from_input"] == ["absent words"]
    assert report["smallest_keep_rate"] is None


@pytest.mark.parametrize("rates", ["0.1,abc", "0.2,1.5", ","])
def test_estimate_rejects_bad_keep_rates(llama_dir, target_dir, rates):
    result = invoke(llama_dir, target_dir, "estimate", "--keep-rates", rates)
    assert result.exit_code == 2 and result.stdout == ""


def test_second_run_uses_the_cache(llama_dir, target_dir):
    first = json.loads(invoke(llama_dir, target_dir, "compress", "--json").stdout)
    second = json.loads(invoke(llama_dir, target_dir, "compress", "-r", "0.5", "--json").stdout)
    uncached = json.loads(invoke(llama_dir, target_dir, "compress", "--json", "--no-cache").stdout)
    assert (first["scores_cached"], second["scores_cached"], uncached["scores_cached"]) == \
        (False, True, False)


def test_the_draft_progress_bar_takes_windows_done(tmp_path):
    console = stderr_console(open(tmp_path / "err", "w"))
    with draft_progress(console) as callback:
        callback(1, 3)
        callback(3, 3)


def test_inspect_labels_heatmap_rows_with_the_files_of_a_dump(llama_dir, target_dir):
    rule = "=" * 48
    dump = "".join(f"{rule}\nFILE: pkg/{name}.py\n{rule}\n" +
                   "".join(f"def {name}_{i}(x):\n    return x + {i}\n\n" for i in range(40))
                   for name in ("alpha", "beta"))
    result = runner.invoke(app, ["inspect", "-p", "code", "-d", str(llama_dir), "-t", str(target_dir)],
                           input=dump, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    labelled = [line for line in result.stderr.splitlines() if line.startswith("pkg/")]
    assert [line.split()[0] for line in labelled] == ["pkg/alpha.py", "pkg/beta.py"]
    assert all(len(line) <= 80 for line in result.stderr.splitlines())
