"""The files of `crossprefill batch`: the input, read twice, and the output, appended
record by record, with progress and a summary on stderr.

The input is read once to check it (duplicate ids are a usage error before any work)
and once to compress it, so a file of any size is never held in memory; stdin is kept
to be read twice. Each output record is one line written and flushed as soon as it is
done, so an interrupted run loses at most the records in flight and `--resume` goes on
from what is there (`batch.finished_ids`); `--retry-failed` also takes the failed
records out of it first, so they are done again. An output file that exists is never
overwritten: without `--resume` it is a usage error, and a run that fails before its first record creates none. Progress is a transient bar on a
terminal; the summary line always ends the run (unless --quiet).
"""

import json
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from crossprefill_cli.apps.batch.records import Line, finished_ids, line_key, read_lines
from crossprefill_cli.apps.cli.environment import Environment, write_atomically
from crossprefill_cli.errors import CrossprefillError, UsageError


def input_lines(env: Environment, input_path: str) -> Callable[[], Iterator[Line]]:
    """A function giving the input's lines afresh each time it is called."""
    if input_path == "-":
        if env.stdin_isatty:
            raise UsageError("no input: give a JSONL file, or pipe records on stdin")
        data = env.stdin.read().splitlines(keepends=True)
        return lambda: read_lines(iter(data))
    path = Path(input_path).expanduser()
    if not path.is_file():
        raise UsageError(f"{input_path}: no such file")

    def lines() -> Iterator[Line]:
        with open(path, "rb") as stream:
            yield from read_lines(stream)
    return lines


def drop_failed(path: Path) -> None:
    """Take the failed records (those with an "error") out of an output file, atomically,
    so that they are done again; a last line left half-written stays for `finished_ids`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as error:
        raise CrossprefillError(f"cannot read {path}: {error.strerror}") from None
    lines = data.splitlines(keepends=True)
    kept = [line for line in lines if not _failed(line)]
    if len(kept) < len(lines):
        try:
            write_atomically(path, b"".join(kept))
        except OSError as error:
            raise CrossprefillError(f"cannot write {path}: {error.strerror}") from None


def _failed(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "error" in record


class BatchOutput:
    """Where output records go, which are there already, and how the run went."""

    def __init__(self, env: Environment, path: Path | None, *, resume: bool,
                 retry_failed: bool = False):
        resume = resume or retry_failed
        if resume and path is None:
            raise UsageError(f"--{'retry-failed' if retry_failed else 'resume'} needs --output "
                             "(the file to go on with)")
        if path is not None and path.expanduser().exists() and not resume:
            raise UsageError(f"{path} exists; --resume goes on with it, or remove it first")
        self.env, self.path = env, None if path is None else path.expanduser()
        if retry_failed:
            drop_failed(self.path)
        self.done = finished_ids(self.path) if resume else set()
        self.stream = None
        self.failed = 0

    def __enter__(self) -> "BatchOutput":
        return self

    def __exit__(self, *exc) -> None:
        if self.stream is not None:
            self.stream.close()

    def has(self, line: Line) -> bool:
        # without --resume nothing is done yet, and no line need be parsed to say so
        return bool(self.done) and line_key(line) in self.done

    def write_all(self, outputs: Iterable[dict], total: int, *, skipped: int,
                  quiet: bool) -> None:
        from crossprefill_cli.apps.cli.render import batch_progress, stderr_console

        started, records, tokens = time.perf_counter(), 0, 0
        with batch_progress(stderr_console(self.env.stderr), total,
                            enabled=self.env.stderr_isatty and not quiet) as advance:
            for record in outputs:
                self._write(record)
                records += 1
                tokens += record.get("tokens_before", 0)
                self.failed += "error" in record
                advance(record.get("tokens_before", 0))
        if not quiet:
            seconds = time.perf_counter() - started
            rates = (f" ({records / seconds:.2f} records/s, {tokens / seconds:,.0f} tokens/s)"
                     if records and seconds > 0 else "")
            resumed = f"; {skipped} were done already" if skipped else ""
            failed = f"; {self.failed} failed (see their \"error\")" if self.failed else ""
            self.env.say(f"crossprefill: {records} records in {seconds:.1f} s{rates}"
                         f"{resumed}{failed}")

    def _write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self.path is None:
            self.env.write_stdout(line)
            return
        if self.stream is None:  # opened at the first record: a run that fails first leaves none
            try:
                self.stream = open(self.path, "ab")
            except OSError as error:
                raise CrossprefillError(f"cannot write {self.path}: {error.strerror}") from None
        self.stream.write(line.encode("utf-8"))
        self.stream.flush()
