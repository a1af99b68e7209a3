"""inspect and estimate on the command line, and the heatmap they draw."""

import io
import json
import re

import pytest
from typer.testing import CliRunner

from crossprefill_cli.cli import app
from crossprefill_cli.environment import Environment
from crossprefill_cli.render import draft_progress, stderr_console

from conftest import long_text

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
                     "target tokens before", "chunks kept", "Highest-scoring chunks"):
        assert expected in plain
    cells = "".join(re.findall(r"[█▓░]", plain.split("cell =")[0]))
    report = json.loads(invoke(llama_dir, target_dir, "inspect", "-r", "0.25", "--json").stdout)
    assert len(cells) == len(report["chunks"])
    assert cells.count("░") == sum(not c["kept"] for c in report["chunks"])


def test_no_color_is_respected(llama_dir, target_dir):
    result = invoke(llama_dir, target_dir, "inspect", env={"NO_COLOR": "1", "FORCE_COLOR": None})
    assert result.exit_code == 0 and "\x1b[" not in result.stderr and "Saliency" in result.stderr


def terminal_stderr() -> Environment:
    """Input piped in, stdout piped out, stderr a terminal: the usual shell pipeline."""
    return Environment(stdin=io.BytesIO(TEXT.encode()), stdout=io.BytesIO(), stderr=io.StringIO(),
                       stdin_isatty=False, stderr_isatty=True)


def test_compress_shows_the_heatmap_only_when_asked_or_on_a_terminal(llama_dir, target_dir):
    piped = invoke(llama_dir, target_dir, "compress")
    assert piped.exit_code == 0 and piped.stderr == ""
    asked = invoke(llama_dir, target_dir, "compress", "--heatmap")
    assert "Saliency of" in asked.stderr and asked.stdout == piped.stdout
    options = ["-d", str(llama_dir), "-t", str(target_dir)]
    shown, hidden = terminal_stderr(), terminal_stderr()
    runner.invoke(app, ["compress", *options], obj=shown)
    runner.invoke(app, ["compress", "--no-heatmap", *options], obj=hidden)
    assert "Saliency of" in shown.stderr.getvalue()
    assert "Saliency" not in hidden.stderr.getvalue()
    assert shown.stdout.getvalue().decode() == hidden.stdout.getvalue().decode() == piped.stdout


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


def test_progress_callback_only_when_enabled(tmp_path):
    console = stderr_console(open(tmp_path / "err", "w"))
    with draft_progress(console, enabled=False) as callback:
        assert callback is None
    with draft_progress(console, enabled=True) as callback:
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
