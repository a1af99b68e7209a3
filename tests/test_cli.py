"""The command-line contract: exact stdout, one-line errors, exit codes, pipes."""

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import long_text
from typer.testing import CliRunner

from crossprefill_cli import compress
from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.errors import UsageError

TEXT = long_text(60)
runner = CliRunner()


@pytest.fixture()
def input_file(tmp_path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(TEXT, encoding="utf-8")
    return path


def options(llama_dir, target_dir, *extra):
    return ["-d", str(llama_dir), "-t", str(target_dir), *extra]


def test_stdout_is_exactly_the_compressed_text(llama_dir, target_dir, input_file, llama_draft, target):
    result = runner.invoke(app, ["compress", str(input_file), *options(llama_dir, target_dir, "-r", "0.3")])
    assert result.exit_code == 0, result.stderr
    expected = compress(TEXT, draft=llama_draft, target=target, keep_rate=0.3).text
    assert result.stdout == expected
    assert result.stderr == ""


def test_stdin_is_read_when_no_input_or_dash_is_given(llama_dir, target_dir, input_file):
    from_file = runner.invoke(app, ["compress", str(input_file), *options(llama_dir, target_dir)])
    for args in (["compress"], ["compress", "-"]):
        piped = runner.invoke(app, [*args, *options(llama_dir, target_dir)], input=TEXT)
        assert piped.exit_code == 0 and piped.stdout == from_file.stdout


def test_json_report(llama_dir, target_dir, input_file):
    result = runner.invoke(app, ["compress", str(input_file), "--json",
                                 *options(llama_dir, target_dir, "-n", "300", "-q", "falcon?")])
    report = json.loads(result.stdout)
    assert report["budget"] == 300 and report["tokens_after"] <= 300
    assert report["profile"] == "text" and report["draft"] == str(llama_dir)
    assert TEXT[report["spans"][0]["start"]:report["spans"][0]["end"]] in report["text"]


def test_output_file_is_written_atomically_and_stdout_stays_empty(llama_dir, target_dir,
                                                                input_file, tmp_path):
    out = tmp_path / "out" / "short.md"
    out.parent.mkdir()
    result = runner.invoke(app, ["compress", str(input_file), "-o", str(out),
                                 *options(llama_dir, target_dir)])
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text(encoding="utf-8").startswith("Field notes from the survey\n")
    assert [p.name for p in out.parent.iterdir()] == ["short.md"]


def test_failed_run_leaves_the_output_file_alone(llama_dir, target_dir, tmp_path):
    out = tmp_path / "short.md"
    out.write_text("previous")
    result = runner.invoke(app, ["compress", "-o", str(out), *options(llama_dir, target_dir)],
                           input="")
    assert result.exit_code == 1 and out.read_text() == "previous"


@pytest.mark.parametrize("stdin, args, code, message", [
    ("", [], 1, "crossprefill: error: input is empty\n"),
    ("  \n", [], 1, "crossprefill: error: input is only whitespace\n"),
    (TEXT, ["-r", "1.5"], 2, "crossprefill: error: keep rate must be in (0, 1], got 1.5\n"),
    (TEXT, ["-r", "0"], 2, "crossprefill: error: keep rate must be in (0, 1], got 0.0\n"),
    (TEXT, ["-p", "prose"], 2, "crossprefill: error: unknown profile 'prose'; built-in "
                               "profiles: code, text (or give a path to a .yaml file)\n"),
    (TEXT, ["--scorer", "bm25"], 2, "crossprefill: error: profile command line: scorer must be "
                                    "one of evidence, attention, lexical, surprise, got 'bm25'\n"),
    (TEXT, ["-q", "x", "--query-file", "q.txt"], 2,
     "crossprefill: error: give --query or --query-file, not both\n"),
])
def test_bad_requests_get_one_line_and_an_exit_status(llama_dir, target_dir, stdin, args, code,
                                                      message):
    result = runner.invoke(app, ["compress", *options(llama_dir, target_dir, *args)], input=stdin)
    assert (result.exit_code, result.stdout, result.stderr) == (code, "", message)


def test_errors_name_the_command_lines_flags(llama_dir, target_dir):
    result = runner.invoke(app, ["compress", *options(llama_dir, target_dir, "--window",
                                                      "100000")], input=TEXT)
    assert result.exit_code == 2
    assert result.stderr.startswith("crossprefill: error: --window 100000 plus the query")


def test_binary_input_is_refused(llama_dir, target_dir):
    result = runner.invoke(app, ["compress", *options(llama_dir, target_dir)],
                           input=b"PK\x03\x04\x00\x00binary")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "crossprefill: error: input looks binary (NUL byte at offset 4); " \
                            "expected UTF-8 text\n"


def test_budget_below_what_must_be_kept_is_a_usage_error(llama_dir, target_dir, input_file):
    result = runner.invoke(app, ["compress", str(input_file), *options(llama_dir, target_dir, "-n", "3")])
    assert result.exit_code == 2 and result.stdout == ""
    assert "smaller than what must be kept" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unloadable_models_are_errors(target_dir, input_file, tmp_path, llama_dir):
    missing = runner.invoke(app, ["compress", str(input_file), "-d", str(tmp_path / "nope"),
                                  "-t", str(target_dir)])
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == f"crossprefill: error: draft {tmp_path / 'nope'}: no such directory\n"
    empty = runner.invoke(app, ["compress", str(input_file), "-d", str(tmp_path), "-t", str(target_dir)])
    assert (empty.exit_code, empty.stderr) == (
        1, f"crossprefill: error: draft {tmp_path}: not a model directory (it has no config.json)\n")
    broken = tmp_path / "broken"  # a model's config, but no tokenizer beside it
    broken.mkdir()
    (broken / "config.json").write_bytes((llama_dir / "config.json").read_bytes())
    no_tokenizer = runner.invoke(app, ["compress", str(input_file), "-d", str(broken),
                                       "-t", str(target_dir)])
    assert no_tokenizer.exit_code == 1
    assert no_tokenizer.stderr.startswith(f"crossprefill: error: cannot load draft {broken}: ")
    assert no_tokenizer.stderr.count("\n") == 1 and not no_tokenizer.stderr.rstrip().endswith(":")
    bad_target = runner.invoke(app, ["compress", str(input_file), "-d", str(llama_dir),
                                     "-t", str(tmp_path / "tok")])
    assert bad_target.exit_code == 1 and "target tokenizer" in bad_target.stderr


def test_an_unreachable_hub_id_is_one_error_line(unreachable_hub, target_dir, input_file):
    result = runner.invoke(app, ["compress", str(input_file), "-d", "nobody/no-such-draft",
                                 "-t", str(target_dir), "--no-cache"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("crossprefill: error: cannot load draft nobody/no-such-draft: ")
    assert "cannot be reached" in result.stderr and result.stderr.count("\n") == 1


def test_query_file_is_read(llama_dir, target_dir, input_file, tmp_path):
    query = tmp_path / "q.txt"
    query.write_text("Which entry mentions a falcon?\n")
    by_file = runner.invoke(app, ["compress", str(input_file), "--query-file", str(query),
                                  "--json", "--no-cache", *options(llama_dir, target_dir)])
    by_flag = runner.invoke(app, ["compress", str(input_file), "-q", "Which entry mentions a falcon?",
                                  "--json", "--no-cache", *options(llama_dir, target_dir)])
    assert by_file.exit_code == 0 and by_file.stdout == by_flag.stdout


def test_no_input_on_a_terminal_is_a_usage_error_not_a_hang(llama_dir, target_dir):
    env = Environment(stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=io.StringIO(),
                      stdin_isatty=True, stderr_isatty=True)
    result = runner.invoke(app, ["compress", *options(llama_dir, target_dir)], obj=env)
    assert result.exit_code == 2
    assert env.stderr.getvalue() == "crossprefill: error: no input: give a file, or pipe text on stdin\n"


def test_missing_input_file(llama_dir, target_dir, tmp_path):
    result = runner.invoke(app, ["compress", str(tmp_path / "absent.md"), *options(llama_dir, target_dir)])
    assert (result.exit_code, result.stderr) == (1, f"crossprefill: error: {tmp_path / 'absent.md'}: no such file\n")


def cli_process(args, stdin: bytes, **extra_env: str) -> subprocess.CompletedProcess:
    """Run the real command; a dead proxy makes any stray download fail at once."""
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           **extra_env}
    return subprocess.run([sys.executable, "-m", "crossprefill_cli", *args], input=stdin,
                          capture_output=True, env=env, timeout=120)


def test_real_process_pipes_bytes_through_unchanged(llama_dir, target_dir):
    text = "Título: notas\r\nLa reunión empezó tarde.\r\n" + long_text(30).replace("\n", "\r\n")
    done = cli_process(["compress", *options(llama_dir, target_dir, "-r", "0.5")], text.encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8").startswith("Título: notas\r\n")
    assert done.stderr == b""


def test_real_process_exit_codes(llama_dir, target_dir):
    assert cli_process(["compress", *options(llama_dir, target_dir)], b"").returncode == 1
    usage = cli_process(["compress", *options(llama_dir, target_dir, "-r", "abc")], b"text")
    assert usage.returncode == 2 and usage.stdout == b"" and b"Traceback" not in usage.stderr


def test_default_target_fallback_warns_on_stderr(llama_dir, tmp_path):
    empty_cache = str(tmp_path)  # neither tiktoken's file nor a kept copy of its tables
    done = cli_process(["compress", "-d", str(llama_dir)], TEXT.encode(),
                       TIKTOKEN_CACHE_DIR=empty_cache, CROSSPREFILL_CACHE_DIR=empty_cache)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().startswith("crossprefill: warning: the default target encoding "
                                           "o200k_base cannot be loaded")
    quiet = cli_process(["compress", "-d", str(llama_dir), "--quiet"], TEXT.encode(),
                        TIKTOKEN_CACHE_DIR=empty_cache, CROSSPREFILL_CACHE_DIR=empty_cache)
    assert quiet.returncode == 0 and quiet.stderr == b"" and quiet.stdout == done.stdout


def test_broken_pipe_ends_quietly(llama_dir, target_dir, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(long_text(1500))  # well over a pipe buffer when kept whole
    command = (f"{sys.executable} -m crossprefill_cli compress {big} -r 1 "
               f"-d {llama_dir} -t {target_dir} | head -c 100 > {tmp_path / 'head.out'}; "
               "echo \"status=${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=300,
                          env={**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert done.stderr.decode().strip() == "status=141"
    assert (tmp_path / "head.out").read_text() == big.read_text()[:100]


def test_every_warning_is_in_the_json_report(llama_dir, tmp_path):
    done = cli_process(["compress", "-d", str(llama_dir), "--json"], TEXT.encode(),
                       TIKTOKEN_CACHE_DIR=str(tmp_path), CROSSPREFILL_CACHE_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    warnings = json.loads(done.stdout)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("the default target encoding o200k_base")
    assert done.stderr.decode() == f"crossprefill: warning: {warnings[0]}\n"


@pytest.mark.parametrize("args, start, command", [
    (["compress", "--no-such-option"], "No such option", "crossprefill compress"),
    (["inspect", "-r", "abc"], "Invalid value for '--keep-rate' / '-r'", "crossprefill inspect"),
    (["no-such-command"], "No such command", "crossprefill"),
])
def test_usage_errors_are_one_line(args, start, command):
    done = cli_process(args, b"text")
    assert (done.returncode, done.stdout) == (2, b"")
    message = done.stderr.decode()  # Click's own wording varies between its releases
    assert message.startswith(f"crossprefill: error: {start}") and message.count("\n") == 1
    assert message.endswith(f" (see '{command} --help')\n")


@pytest.fixture
def scoring_forbidden(monkeypatch):
    from crossprefill_cli.models.draft import Draft

    def refuse(*args, **kwargs):
        raise AssertionError("the draft read the input before the error was found")

    monkeypatch.setattr(Draft, "score", refuse)


def test_a_budget_below_what_must_be_kept_fails_before_the_draft_reads(
        llama_dir, target_dir, input_file, scoring_forbidden):
    result = runner.invoke(app, ["compress", str(input_file), "--no-cache",
                                 *options(llama_dir, target_dir, "-n", "3")])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("crossprefill: error: the budget of 3 target tokens is smaller "
                                    "than what must be kept")


def test_a_target_that_cannot_load_fails_before_the_draft_reads(
        llama_dir, input_file, unreachable_hub, scoring_forbidden):
    for command in ("compress", "estimate"):
        result = runner.invoke(app, [command, str(input_file), "--no-cache", "-d", str(llama_dir),
                                     "-t", "nobody/no-such-tokenizer"])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.startswith("crossprefill: error: cannot load target tokenizer "
                                        "nobody/no-such-tokenizer: ")


@pytest.fixture()
def draft_never_runs(monkeypatch):
    """Fail the test if the draft tokenises or loads: what it guards is checked before."""
    from crossprefill_cli.pipeline.draft_source import DraftSource

    def refuse(self, *args):
        raise AssertionError("the draft ran before the check")

    monkeypatch.setattr(DraftSource, "encode", refuse)
    monkeypatch.setattr(DraftSource, "load", refuse)


def test_an_output_that_cannot_be_written_fails_before_the_draft(llama_dir, target_dir, input_file,
                                                                 tmp_path, draft_never_runs):
    nowhere = tmp_path / "nodir" / "x.txt"
    result = runner.invoke(app, ["compress", str(input_file), "-o", str(nowhere),
                                 *options(llama_dir, target_dir)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        1, "", f"crossprefill: error: cannot write {nowhere}: no such directory\n")
    folder = runner.invoke(app, ["compress", str(input_file), "-o", str(tmp_path),
                                 *options(llama_dir, target_dir)])
    assert (folder.exit_code, folder.stderr) == (
        1, f"crossprefill: error: cannot write {tmp_path}: is a directory\n")


def test_an_output_that_is_the_input_is_refused(llama_dir, target_dir, input_file,
                                                draft_never_runs):
    result = runner.invoke(app, ["compress", str(input_file), "-o", str(input_file),
                                 *options(llama_dir, target_dir)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", f"crossprefill: error: --output {input_file} is the input file; write the "
        "result elsewhere\n")
    assert input_file.read_text(encoding="utf-8") == TEXT


def test_unknown_targets_and_uncached_drafts_fail_before_the_draft(
        llama_dir, target_dir, input_file, unreachable_hub, draft_never_runs):
    unknown = runner.invoke(app, ["compress", str(input_file), "-d", str(llama_dir),
                                  "-t", "gpt-99"])
    assert (unknown.exit_code, unknown.stdout) == (1, "")
    assert unknown.stderr == (
        "crossprefill: error: unknown target 'gpt-99': not a tiktoken encoding (o200k_base, "
        "o200k_harmony, cl100k_base, p50k_base, p50k_edit, r50k_base) or an OpenAI model name "
        "tiktoken knows (gpt-4o, gpt-4, ...), nor a local folder or a Hugging Face tokenizer "
        "id (owner/name)\n")
    for option, what in (("-d", "draft"), ("-t", "target tokenizer")):
        other = "-t" if option == "-d" else "-d"
        result = runner.invoke(app, ["compress", str(input_file), option, "nobody/nothing",
                                     other, str(target_dir if other == "-t" else llama_dir)])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"crossprefill: error: cannot load {what} "
                                        "nobody/nothing: nobody/nothing is not in the local "
                                        "Hugging Face cache and huggingface.co cannot be reached")


def test_a_budget_below_what_must_be_kept_fails_before_the_draft_loads(
        llama_dir, target_dir, input_file, monkeypatch):
    from crossprefill_cli.models import target_process
    from crossprefill_cli.pipeline.draft_source import DraftSource

    def refuse(self):
        raise AssertionError("the model loaded before the budget check")

    monkeypatch.setattr(DraftSource, "load", refuse)
    monkeypatch.setattr(target_process, "usable_cores", lambda: 1)  # the target builds here
    result = runner.invoke(app, ["compress", str(input_file), "--no-cache",
                                 *options(llama_dir, target_dir, "-n", "3")])
    assert result.exit_code == 2 and "smaller than what must be kept" in result.stderr


def test_a_target_still_building_stops_the_draft_at_its_next_window(
        llama_dir, target_dir, monkeypatch):
    """With the target building in its process, the budget is checked while the draft
    reads; a budget below what must be kept stops the draft after the windows it is on
    (the first, and those read beside it, one per core), and none of the others start."""
    from crossprefill_cli.models import numpy_draft, target_process
    from crossprefill_cli.models.numpy_draft import NumpyDraft
    from crossprefill_cli.models.target import load_target
    from crossprefill_cli.pipeline.job import Job
    from crossprefill_cli.settings import Settings

    built = threading.Event()

    class Building(target_process.PendingTarget):
        def ready(self) -> bool:
            return False

        def result(self):
            target = load_target(str(target_dir))
            built.set()
            return target

    windows, total = [], []
    generating, forced = NumpyDraft._score_generating, NumpyDraft._score_forced
    windows_of = NumpyDraft._windows

    def slow_first_window(self, *args, **kwargs):
        # the check (milliseconds once the target is built) is done by the end of this
        # window, however long the build took on a busy machine
        assert built.wait(60)
        time.sleep(0.5)
        windows.append("generating")
        return generating(self, *args, **kwargs)

    def other_window(self, *args, **kwargs):
        windows.append("other")
        # as long as a real window takes, so that a freed core cannot run through the
        # tiny ones before the reading thread (slow on a busy machine) stops them
        time.sleep(0.2)
        return forced(self, *args, **kwargs)

    def counted(self, window_list, *args):
        total.append(len(window_list))
        return windows_of(self, window_list, *args)

    monkeypatch.setattr(numpy_draft, "usable_cores", lambda: 2)
    monkeypatch.setattr(NumpyDraft, "_score_generating", slow_first_window)
    monkeypatch.setattr(NumpyDraft, "_score_forced", other_window)
    monkeypatch.setattr(NumpyDraft, "_windows", counted)
    job = Job(Settings(draft=str(llama_dir), target_tokens=3, window=60, no_cache=True),
              target=Building(None, None))
    with pytest.raises(UsageError, match="smaller than what must be kept"):
        job.analyse(long_text(6))
    assert windows.count("generating") == 1
    # the window beside the first, and at most one more per core (2) that a freed core
    # took up before the reading thread stopped the rest
    assert 1 <= windows.count("other") <= 3 < total[0] - 1


@pytest.mark.parametrize("args", [["serve", "--host", "0.0.0.0"], ["wrap", "--", "true"]])
def test_a_missing_extra_exits_1_with_advice_that_works_here(monkeypatch, args):
    from crossprefill_cli import extras

    for name in [name for name in sys.modules if name.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)  # each: a loaded submodule imports alone
    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.delitem(sys.modules, "crossprefill_cli.apps.http.server", raising=False)
    # (were serve importable, this bind without a key would fail at once, not serve)
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"crossprefill: error: crossprefill {args[0]} needs the 'serve' extra "
                             f"(starlette is not installed): {extras.install_advice('serve')}\n")


def test_install_advice_names_the_clone_or_the_packages():
    from crossprefill_cli import extras

    clone = Path(extras.__file__).resolve().parents[1]
    assert extras.install_advice("serve") == f"pip install -e '{clone}[serve]'"
    listed = extras.extra_requirements("serve")
    assert any(r.startswith("starlette>=") for r in listed)
    assert any(r.startswith("uvicorn>=") for r in listed) and not any(";" in r for r in listed)
    assert extras.extra_requirements("ray") == ["ray[data]>=2.40"]


def test_help_lists_one_line_per_command_and_points_to_no_missing_file():
    listed = subprocess.run([sys.executable, "-m", "crossprefill_cli", "--help"],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    commands = listed.stdout.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in commands] == ["compress", "inspect", "estimate", "expand",
                                                      "serve", "batch", "wrap", "mcp"]
    assert all(not line.endswith("...") and len(line) <= 80 for line in commands)
    serve_help = runner.invoke(app, ["serve", "--help"]).stdout
    assert "docs/" not in serve_help and "/v1/compress" in serve_help


def test_kind_yaml_reads_yaml_that_auto_takes_for_a_list(llama_dir, target_dir, tmp_path):
    hosts = "".join(f"- host{i}.example.org\n" for i in range(60))  # a list: prose to auto
    compose = "".join(f"svc{i}:\n  image: app:{i}\n  restart: always\n" for i in range(30))
    for name, text, kind, expected in [("hosts.txt", hosts, [], []),
                                       ("hosts.txt", hosts, ["--kind", "yaml"], ["yaml"]),
                                       ("compose.txt", compose, [], ["yaml"]),
                                       ("compose.txt", compose, ["--kind", "text"], [])]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["compress", str(path), "--json", *kind,
                                     *options(llama_dir, target_dir, "-r", "0.4")])
        assert result.exit_code == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["kinds"] == [{"kind": k, "start": 0, "end": len(text)} for k in expected]
        counted = "more items ...]" in report["text"] or "more records ...]" in report["text"]
        assert counted == bool(expected), report["text"]
