"""The target tokenizer built in a child process counts exactly as one built here."""

import signal
import subprocess
import sys
import time

import pytest
from conftest import fixture_path

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models import target_process
from crossprefill_cli.models.target import load_target
from crossprefill_cli.models.target_process import PendingTarget, start_target

TEXTS = ["Hello world", "Título: notas\r\nLa reunión empezó tarde.", "def f(x):\n    return x\n",
         "日本語のテキスト", ""]


def test_child_counts_like_this_process(target_dir):
    here = load_target(str(target_dir))
    with start_target(str(target_dir)) as pending:
        assert pending._child is not None  # the test machine has two cores or more
        counter = pending.result()
        assert counter.name == here.name
        assert counter.count_batch(TEXTS) == here.count_batch(TEXTS)
        assert counter.count(TEXTS[1]) == here.count(TEXTS[1])


def test_default_target_in_child():
    fixture_path("tiktoken", "o200k_base.tiktoken")
    with start_target(None) as pending:
        assert pending.spec is None
        assert pending.result().count_batch(TEXTS) == load_target("o200k_base").count_batch(TEXTS)


def test_child_reports_the_load_error(tmp_path):
    empty = str(tmp_path)  # a folder with no tokenizer in it
    with pytest.raises(ModelLoadError) as here:
        load_target(empty)
    with start_target(empty) as pending, pytest.raises(ModelLoadError) as there:
        pending.result()
    assert str(there.value) == str(here.value)


def test_builds_here_when_the_child_dies(target_dir):
    with start_target(str(target_dir)) as pending:
        pending._child.kill()
        pending._child.wait()
        assert pending.result().count_batch(TEXTS) == load_target(str(target_dir)).count_batch(TEXTS)


def test_builds_here_with_one_core_or_no_interpreter(target_dir, monkeypatch):
    expected = load_target(str(target_dir)).count_batch(TEXTS)
    monkeypatch.setattr(target_process, "usable_cores", lambda: 1)
    with start_target(str(target_dir)) as pending:
        assert pending._child is None
        assert pending.result().count_batch(TEXTS) == expected
    monkeypatch.undo()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with start_target(str(target_dir)) as pending:
        assert pending._child is None
        assert pending.result().count_batch(TEXTS) == expected


def test_child_ignores_modules_in_the_working_directory(target_dir, tmp_path, monkeypatch):
    fixture_path("tiktoken", "o200k_base.tiktoken")
    (tmp_path / "tiktoken.py").write_text("raise SystemExit('shadowed')\n")
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed')\n")
    monkeypatch.chdir(tmp_path)
    with start_target(None) as pending:
        assert pending.result().name == "o200k_base"
        assert pending._child is not None


def test_a_path_to_nothing_fails_before_any_child(tmp_path, monkeypatch):
    monkeypatch.setattr(target_process.subprocess, "Popen", None)  # would fail if called
    with pytest.raises(ModelLoadError, match="no such file or directory"):
        start_target(str(tmp_path / "absent"))


def test_closing_stops_a_child_still_building():
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    started = time.monotonic()
    PendingTarget(None, busy).close()
    assert busy.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_closing_does_not_wait_for_an_answered_child_to_exit(target_dir):
    """A child that has answered ends when its pipe closes; freeing its encoding takes a
    while, which this process does not wait for (a thread reaps it)."""
    slow_exit = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; print('{\"name\": \"t\"}', flush=True); "
         "sys.stdin.read(); time.sleep(3)"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pending = PendingTarget(str(target_dir), slow_exit)
    assert pending.result().name == "t"
    started = time.monotonic()
    pending.close()
    assert time.monotonic() - started < 1
    assert slow_exit.wait(timeout=10) == 0


def test_a_garbled_reply_counts_as_a_dead_child(target_dir):
    chatty = subprocess.Popen([sys.executable, "-c", "print('Downloading...')"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pending = PendingTarget(str(target_dir), chatty)
    assert pending.result().count_batch(TEXTS) == load_target(str(target_dir)).count_batch(TEXTS)
    assert pending._child is None
