"""The plugin inside the real `llm`: its Click CLI run in-process with the plugin
registered, and the offline `echo` model (llm-echo) showing what a model would receive.

What is checked is what crossprefill promises, seen from the model's side: the fragment
holds only text of the input, in order, within the budget counted in the target's
tokens; a dump keeps every file's header; wrong parameters fail through llm's own
error path with one clear line; and the options are those `Settings` declares.
"""

import json
import re
import sqlite3
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner
from llm.cli import cli
from llm.plugins import pm

import llm_crossprefill
from crossprefill_cli.settings import SETTINGS, Settings
from crossprefill_cli.text.dumps import detect
from structure import assert_pieces_verbatim

from .conftest import DISTRIBUTION, main_conftest

pytest.importorskip("llm_echo", reason="the echo model comes from llm-echo (the test extra)")

QUESTION = "What is the vault code?"
NEEDLE = "The vault code is 4417, kept by the harbour master."
DELIMITER = "[...]"  # the text profile's gap marker
# A value of each type a Settings field may have, as a query string writes it.
SAMPLES = {bool: ("false", False), int: ("7", 7), float: ("0.25", 0.25), str: ("cpu", "cpu")}
SHORT_CHAT = json.dumps([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "What is the capital of France?"}])


@pytest.fixture
def llm_folder(monkeypatch, tmp_path):
    """llm's own files (keys, logs.db) in a fresh folder."""
    folder = tmp_path / "llm"
    monkeypatch.setenv("LLM_USER_PATH", str(folder))
    return folder


@pytest.fixture
def plugin(llm_folder):
    """The plugin registered with llm, its command added to llm's CLI; undone after."""
    pm.register(llm_crossprefill, name="llm-crossprefill")
    others = [plugin for plugin in pm.get_plugins() if plugin is not llm_crossprefill]
    # llm adds the plugins' commands when llm.cli is imported: add this one's now
    pm.subset_hook_caller("register_commands", remove_plugins=others)(cli=cli)
    yield
    cli.commands.pop("compress", None)
    pm.unregister(llm_crossprefill)


@pytest.fixture
def notes(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(main_conftest.long_text(needle=NEEDLE))
    return path


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A folder `repo` of source files in the working folder, with a hidden file, a
    hidden folder and a binary file that a dump leaves out."""
    monkeypatch.chdir(tmp_path)
    root = Path("repo")
    files = {
        "src/vault.py": "def vault_code():\n    # kept by the harbour master\n"
                        "    return 4417\n\n\ndef opening_hours():\n    return '9-17'\n",
        "src/ledger.py": "".join(f"def entry_{n}(book):\n    return book.lines[{n}] * {n}\n\n\n"
                                 for n in range(80)),
        "docs/guide.md": "# Guide\n\n" + main_conftest.long_text(),
        ".env": "SECRET=1\n",
        ".git/config": "[core]\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "src" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    return root


@pytest.fixture
def models(llama_dir, target_dir) -> str:
    """The tiny draft and target as query-string parameters."""
    return f"draft={llama_dir}&target={target_dir}"


def run_llm(*arguments: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(arguments), input=stdin)


def echoed_fragment(result, question: str = QUESTION) -> str:
    """The fragment the echo model received: its prompt less the question after it."""
    assert result.exit_code == 0, result.output
    prompt = json.loads(result.stdout)["prompt"]  # stdout holds the model's answer alone
    assert prompt.endswith("\n" + question)
    return prompt.removesuffix("\n" + question)


def logged_sources(llm_folder) -> list[str]:
    with sqlite3.connect(llm_folder / "logs.db") as db:
        return [source for source, in db.execute("select source from fragments")]


def test_the_fragment_is_the_compressed_input_within_the_budget(plugin, llm_folder, notes,
                                                                models, target):
    result = run_llm("-m", "echo", "-f", f"cp:{notes}?q={QUESTION}&n=150&{models}", QUESTION)
    fragment = echoed_fragment(result)
    original = notes.read_text()
    assert target.count(fragment) <= 150 < target.count(original)
    assert_pieces_verbatim(original, fragment, DELIMITER)
    assert NEEDLE in fragment and DELIMITER in fragment
    assert result.stderr == ""
    # the source llm logs says what the fragment is: the path, tokens before and after
    source, = logged_sources(llm_folder)
    counts = re.fullmatch(rf"cp:{re.escape(str(notes))} \((\d+) -> (\d+) .+ tokens\)", source)
    assert counts, source
    assert [int(n) for n in counts.groups()] == [target.count(original), target.count(fragment)]


def test_aliases_and_field_names_ask_for_the_same_compression(plugin, notes, models):
    short = run_llm("-m", "echo", "-f", f"cp:{notes}?q={QUESTION}&r=0.1&{models}", QUESTION)
    named = run_llm("-m", "echo", "-f",
                    f"cp:{notes}?query={QUESTION}&keep_rate=0.1&{models}&no_cache=1", QUESTION)
    assert echoed_fragment(short) == echoed_fragment(named) != notes.read_text()


def test_a_folder_is_sent_as_a_dump_that_keeps_every_text_files_header(plugin, repository,
                                                                        models, target):
    question = "What does vault_code return?"
    spec = f"cp:repo?q={question}&n=600&profile=code&{models}"
    fragment = echoed_fragment(run_llm("-m", "echo", "-f", spec, question), question)
    sent = llm_crossprefill.read_input(["repo"])
    headers = ["repo/docs/guide.md", "repo/src/ledger.py", "repo/src/vault.py"]
    assert [file.path for file in detect(sent).files] == headers
    assert target.count(fragment) <= 600 < target.count(sent)
    # gaps in Python are marked in its comment syntax, in Markdown with the text marker
    assert_pieces_verbatim(sent, fragment.replace("# ... omitted", DELIMITER), DELIMITER)
    for header in headers:
        assert f'<file path="{header}">' in fragment
    assert "def vault_code():\n    # kept by the harbour master\n    return 4417\n" in fragment
    for left_out in ("SECRET", "[core]", "logo.png", "PNG"):
        assert left_out not in sent


def test_a_glob_and_several_paths_make_one_dump_in_their_order(repository):
    globbed = detect(llm_crossprefill.read_input(["repo/**/*.py"]))
    assert [file.path for file in globbed.files] == ["repo/src/ledger.py", "repo/src/vault.py"]
    named = detect(llm_crossprefill.read_input(["repo/src/vault.py", "repo/docs",
                                                "repo/src/vault.py"]))
    assert named.format == "repomix-xml"
    assert [file.path for file in named.files] == ["repo/src/vault.py", "repo/docs/guide.md"]


def test_one_file_is_compressed_as_it_is(notes):
    assert llm_crossprefill.read_input([str(notes)]) == notes.read_text()


def test_every_settings_field_is_a_parameter_of_its_type():
    for setting in SETTINGS:
        raw, value = SAMPLES[llm_crossprefill.KINDS[setting.name]]
        assert llm_crossprefill.settings_from_query(f"{setting.name}={raw}") == Settings(
            **{setting.name: value})
    assert llm_crossprefill.settings_from_query(
        "q=Is+it%3F&n=8000&r=0.5&detect_query=0&no_cache=TRUE") == Settings(
        query="Is it?", target_tokens=8000, keep_rate=0.5, detect_query=False, no_cache=True)


@pytest.mark.parametrize("spec, message", [
    ("cp:{notes}?colour=red", "unknown parameter 'colour'; known: q, n, r, keep_rate,"),
    ("cp:{notes}?n=many", "target_tokens must be a whole number, got 'many'"),
    ("cp:{notes}?r=half", "keep_rate must be a number, got 'half'"),
    ("cp:{notes}?no_cache=yes", "no_cache must be 1, 0, true or false, got 'yes'"),
    ("cp:{notes}?q=a&query=b", "query is given twice"),
    ("cp:{notes}?q", "cannot read the parameters 'q': write NAME=VALUE&NAME=VALUE"),
    ("cp:{notes}?r=2&{models}", "keep rate must be in (0, 1], got 2.0"),
    ("cp:{notes}?kind=pdf&{models}", "unknown --kind 'pdf'; choose one of auto,"),
    ("cp:{notes}.missing", "notes.txt.missing: no such file or folder, and no file matches"),
    ("cp:{notes}?draft={notes}", "notes.txt: no such directory"),
])
def test_bad_parameters_fail_through_llms_error_path_in_one_line(plugin, notes, models,
                                                                 spec, message):
    spec = spec.format(notes=notes, models=models)
    result = run_llm("-m", "echo", "-f", spec, QUESTION)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: Could not load fragment {spec}: ")
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_stdin_becomes_a_fragment_llm_can_keep_under_an_alias(plugin, llm_folder, notes,
                                                              models, target):
    spec = f"cp:-?q={QUESTION}&n=150&{models}"
    stored = run_llm("fragments", "set", "notes", spec, stdin=notes.read_text())
    assert stored.exit_code == 0, stored.output
    fragment = echoed_fragment(run_llm("-m", "echo", "-f", "notes", QUESTION))
    assert target.count(fragment) <= 150
    assert_pieces_verbatim(notes.read_text(), fragment, DELIMITER)
    assert logged_sources(llm_folder)[0].startswith("cp:- (")


def test_crossprefills_warnings_go_to_stderr_and_the_fragment_stays_clean(plugin, tmp_path,
                                                                          models):
    chat = tmp_path / "chat.json"
    chat.write_text(SHORT_CHAT)
    result = run_llm("-m", "echo", "-f", f"cp:{chat}?n=5&format=messages&{models}", "Well?")
    assert json.loads(echoed_fragment(result, "Well?")) == json.loads(SHORT_CHAT)
    assert result.stderr.startswith(
        "crossprefill: warning: nothing in these messages can be left out")


def test_llm_compress_prints_what_the_fragment_sends(plugin, notes, models, llama_dir,
                                                     target_dir):
    spec = f"cp:{notes}?q={QUESTION}&n=150&{models}"
    fragment = echoed_fragment(run_llm("-m", "echo", "-f", spec, QUESTION))
    options = ["-q", QUESTION, "-n", "150", "-d", str(llama_dir), "-t", str(target_dir)]
    from_file = run_llm("compress", str(notes), *options)
    from_stdin = run_llm("compress", *options, stdin=notes.read_text())
    assert from_file.exit_code == from_stdin.exit_code == 0, from_file.output
    assert from_file.stdout == from_stdin.stdout == fragment
    assert from_file.stderr == ""


def test_llm_compress_reports_crossprefills_errors_with_its_exit_status(plugin, notes):
    usage = run_llm("compress", str(notes), "--keep-rate", "2")
    assert (usage.exit_code, usage.stderr) == (2, "Error: keep rate must be in (0, 1], got 2.0\n")
    empty = run_llm("compress", stdin="  \n")
    assert (empty.exit_code, empty.stderr) == (1, "Error: stdin: input is only whitespace\n")


def test_llm_compress_has_every_settings_option(plugin):
    shown = run_llm("compress", "--help").stdout
    for setting in SETTINGS:
        for flag in setting.metadata["flags"]:
            for name in flag.split("/"):
                assert re.search(rf"(^|[ ,]){re.escape(name)}\b", shown, re.M), name


def test_the_entry_point_loads_this_module_with_both_hooks(plugin):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    project = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())
    assert project["project"]["name"] == "llm-crossprefill"
    assert {re.match(r"[\w-]+", d).group() for d in project["project"]["dependencies"]} == {
        "llm", "crossprefill"}
    (name, value), = project["project"]["entry-points"]["llm"].items()
    assert value in project["tool"]["setuptools"]["py-modules"]
    assert EntryPoint(name, value, "llm").load() is llm_crossprefill
    assert {hook.name for hook in pm.get_hookcallers(llm_crossprefill)} == {
        "register_fragment_loaders", "register_commands"}
