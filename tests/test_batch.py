"""`crossprefill batch` and `compress_many`: every good record done as `compress` does it,
every bad one reported, order kept, resumable after a kill, and the Ray engine giving
the same bytes as the local one."""

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import long_text
from typer.testing import CliRunner

from crossprefill_cli import compress
from crossprefill_cli.apps.batch.records import BatchSettings, compress_many
from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.errors import UsageError
from crossprefill_cli.extras import install_advice
from crossprefill_cli.pipeline.job import compress_messages

QUESTION = "What was noted on day 31?"


def records() -> list[dict]:
    return [{"id": "first", "text": long_text(50)},
            {"id": 2, "text": long_text(70), "query": QUESTION, "keep_rate": 0.5},
            {"id": "empty", "text": ""},
            {"id": "rate", "text": long_text(30), "keep_rate": 1.5},
            {"id": "fixed", "text": long_text(40), "target_tokens": 200},
            {"text": long_text(20)},
            {"id": "profile", "text": long_text(20), "profile": "nonesuch"},
            {"id": "chat", "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": long_text(60)},
                                        {"role": "assistant", "content": "Read."},
                                        {"role": "user", "content": QUESTION}]}]


def jsonl(tmp_path, rows: list, extra_lines: tuple[bytes, ...] = ()) -> str:
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(row).encode() for row in rows]
    lines[3:3] = extra_lines
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    return str(path)


def args(llama_dir, target_dir, *extra):
    return ["-d", str(llama_dir), "-t", str(target_dir), "--no-cache", *extra]


def run(*arguments, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossprefill_cli", "batch", *arguments],
                          input=stdin, capture_output=True, timeout=300)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_good_records_are_done_as_compress_does_them_and_bad_ones_reported(
        tmp_path, llama_dir, target_dir):
    source = jsonl(tmp_path, records(), (b"{not json", b"\xff\xfe not utf-8"))
    output = tmp_path / "out.jsonl"
    done = run(source, "-o", str(output), *args(llama_dir, target_dir))
    assert done.returncode == 1 and done.stdout == b""
    summary = done.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("crossprefill: 10 records in ") and summary.endswith(
        '6 failed (see their "error")')
    out = read_jsonl(output)
    assert [o["id"] for o in out] == ["first", 2, "empty", None, None, "rate", "fixed", None,
                                      "profile", "chat"]
    common = dict(draft=str(llama_dir), target=str(target_dir))
    for record in (out[0], out[1], out[6]):
        given = next(r for r in records() if r.get("id") == record["id"])
        expected = compress(given["text"], keep_rate=given.get("keep_rate"),
                            target_tokens=given.get("target_tokens"), query=given.get("query"),
                            **common)
        assert record == {"id": given["id"], "text": expected.text,
                          "tokens_before": expected.tokens_before,
                          "tokens_after": expected.tokens_after, "budget": expected.budget,
                          "keep_rate": expected.keep_rate, "query_source": expected.query_source}
    messages, result = compress_messages(records()[-1]["messages"], **common)
    assert out[-1]["messages"] == messages and out[-1]["tokens_after"] == result.tokens_after
    errors = {o["id"] if o["id"] is not None else o["line"]: o["error"]["type"]
              for o in out if "error" in o}
    assert errors == {"empty": "input", 4: "input", 5: "input", "rate": "usage", 8: "input",
                      "profile": "usage"}
    assert out[3]["error"]["message"].startswith("line 4 is not JSON")
    assert out[4]["error"]["message"] == "line 5 is not valid UTF-8"


def test_without_output_records_go_to_stdout_and_all_good_is_exit_0(llama_dir, target_dir):
    rows = [{"id": n, "text": long_text(20 + n)} for n in range(3)]
    stdin = "".join(json.dumps(r) + "\n" for r in rows).encode()
    done = run("-", *args(llama_dir, target_dir), stdin=stdin)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2] and all("text" in o for o in out)
    quiet = run("-", *args(llama_dir, target_dir, "--quiet"), stdin=stdin)
    assert quiet.stdout == done.stdout and quiet.stderr == b""


def test_a_killed_run_resumes_to_the_same_output(tmp_path, llama_dir, target_dir):
    rows = [{"id": f"r{n}", "text": long_text(40 + n)} for n in range(12)]
    source = jsonl(tmp_path, rows)
    whole = tmp_path / "whole.jsonl"
    assert run(source, "-o", str(whole), *args(llama_dir, target_dir)).returncode == 0
    partial = tmp_path / "partial.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "crossprefill_cli", "batch", source, "-o",
                                str(partial), *args(llama_dir, target_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not partial.exists() or partial.read_bytes().count(b"\n") < 2) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    kept = partial.read_bytes().count(b"\n")
    assert 2 <= kept < 12, "the run finished before it could be killed"
    with open(partial, "ab") as stream:
        stream.write(b'{"id": "r11", "te')  # a line cut off mid-write
    refused = run(source, "-o", str(partial), *args(llama_dir, target_dir))
    assert refused.returncode == 2 and b"--resume" in refused.stderr
    resumed = run(source, "-o", str(partial), "--resume", *args(llama_dir, target_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} were done already".encode() in resumed.stderr
    assert partial.read_bytes() == whole.read_bytes()


def test_retry_failed_does_the_failed_records_again(tmp_path, llama_dir, target_dir):
    profile = tmp_path / "mine.yaml"  # missing at first: its record fails
    rows = [{"id": "a", "text": long_text(30)},
            {"id": "b", "text": long_text(31), "profile": str(profile)},
            {"id": "c", "text": long_text(32)}]
    source, output = jsonl(tmp_path, rows), tmp_path / "out.jsonl"
    first = run(source, "-o", str(output), *args(llama_dir, target_dir))
    assert first.returncode == 1
    assert [("error" in o, o["id"]) for o in read_jsonl(output)] == [
        (False, "a"), (True, "b"), (False, "c")]
    resumed = run(source, "-o", str(output), "--resume", *args(llama_dir, target_dir))
    assert resumed.returncode == 0 and b"3 were done already" in resumed.stderr
    profile.write_text("name: mine\nkeep_rate: 0.4\n")
    retried = run(source, "-o", str(output), "--retry-failed", *args(llama_dir, target_dir))
    assert retried.returncode == 0, retried.stderr
    assert b"1 records" in retried.stderr and b"2 were done already" in retried.stderr
    out = read_jsonl(output)
    assert [o["id"] for o in out] == ["a", "c", "b"] and not any("error" in o for o in out)
    assert out[2]["text"] == compress(rows[1]["text"], draft=str(llama_dir),
                                      target=str(target_dir), profile=str(profile)).text
    assert run(source, "--retry-failed", *args(llama_dir, target_dir)).returncode == 2


def test_duplicate_ids_are_a_usage_error_before_any_work(tmp_path, llama_dir, target_dir):
    source = jsonl(tmp_path, [{"id": 1, "text": "a"}, {"id": 2, "text": "b"},
                              {"id": 1, "text": "c"}])
    output = tmp_path / "out.jsonl"
    done = run(source, "-o", str(output), *args(llama_dir, target_dir))
    assert done.returncode == 2 and not output.exists()
    assert done.stderr.decode() == ("crossprefill: error: id 1 is on lines 1 and 3; ids must "
                                    "be unique\n")


@pytest.mark.parametrize("extra, message", [
    (["--engine", "spark"], "unknown --engine 'spark'"),
    (["--resume"], "--resume needs --output"),
    (["--keep-rate", "2"], "keep rate must be in (0, 1]"),
    (["--actors", "0", "--engine", "ray"], "--actors and --batch-size must be positive"),
])
def test_bad_options_are_usage_errors(tmp_path, extra, message):
    source = jsonl(tmp_path, [{"id": 1, "text": "a"}])
    done = CliRunner().invoke(app, ["batch", source, *extra])
    assert done.exit_code == 2 and message in done.stderr
    missing = CliRunner().invoke(app, ["batch", str(tmp_path / "nowhere.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_the_ray_engine_without_ray_is_one_clear_error(tmp_path, monkeypatch, llama_dir,
                                                        target_dir):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    source = jsonl(tmp_path, [{"id": 1, "text": long_text(10)}])
    done = CliRunner().invoke(app, ["batch", source, "--engine", "ray",
                                    *args(llama_dir, target_dir)])
    assert done.exit_code == 1  # the machine lacks a part; the command line is fine
    assert done.stderr == ("crossprefill: error: --engine ray needs the 'ray' extra (ray is "
                           f"not installed): {install_advice('ray')}\n")


def test_compress_many_is_the_library_side_of_batch(tmp_path, llama_dir, target_dir):
    rows = [r for r in records() if "id" in r]
    output = tmp_path / "out.jsonl"
    run(jsonl(tmp_path, rows), "-o", str(output), *args(llama_dir, target_dir))
    settings = BatchSettings(draft=str(llama_dir), target=str(target_dir), no_cache=True)
    assert list(compress_many(rows, settings)) == read_jsonl(output)


def test_error_records_and_compress_many_name_settings_by_field(llama_dir, target_dir):
    """A record's budget is `keep_rate`, not the command line's --keep-rate."""
    settings = BatchSettings(draft=str(llama_dir), target=str(target_dir), no_cache=True)
    [failed] = compress_many([{"id": 1, "text": long_text(30), "keep_rate": 0.0001}], settings)
    assert failed["error"]["type"] == "budget"
    assert failed["error"]["message"].endswith("; raise keep_rate")
    with pytest.raises(UsageError) as raised:
        next(compress_many([{"id": 1, "text": "a"}], BatchSettings(window=0)))
    assert str(raised.value) == "window must be a positive number of draft tokens, got 0"


def test_a_local_ray_gives_the_local_engines_bytes(tmp_path, llama_dir, target_dir):
    pytest.importorskip("ray.data")
    source = jsonl(tmp_path, records(), (b"{not json",))
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    run(source, "-o", str(local), *args(llama_dir, target_dir))
    done = run(source, "-o", str(distributed), "--engine", "ray", "--actors", "2",
               "--batch-size", "2", *args(llama_dir, target_dir))
    assert done.returncode == 1
    assert distributed.read_bytes() == local.read_bytes()
    stderr = done.stderr.decode().strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("crossprefill: 9 records in "), stderr


def test_the_progress_bar_counts_records_and_tokens_per_second():
    from rich.console import Console

    from crossprefill_cli.apps.cli.render import batch_progress

    stream = io.StringIO()
    with batch_progress(Console(file=stream, force_terminal=True, width=150), 3,
                        enabled=True) as advance:
        for _ in range(3):
            time.sleep(0.05)
            advance(1000)
    drawn = stream.getvalue()
    assert "3/3" in drawn and "records/s" in drawn and "tokens/s" in drawn
    silent = io.StringIO()
    with batch_progress(Console(file=silent), 3, enabled=False) as advance:
        advance(1000)
    assert silent.getvalue() == ""
