"""Where the command line reads and writes: stdin, stdout, stderr and their kinds.

Modelled on httpie's Environment: commands never touch `sys.std*` directly, so tests
can hand in byte buffers and claim a terminal (or not) without a pseudo-terminal.
stdout is written as bytes, so the compressed text reaches the next program exactly
as its spans appear in the input (no newline translation, no encoding surprises).
"""

import errno
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from crossprefill_cli.errors import CrossprefillError, InputError, UsageError
from crossprefill_cli.text.source import decode_input

WRITE_PIECE_BYTES = 64 * 1024


@dataclass
class Environment:
    stdin: BinaryIO
    stdout: BinaryIO
    stderr: TextIO
    stdin_isatty: bool
    stderr_isatty: bool
    stdout_isatty: bool = False
    terminal_width: int = 80  # what tables on stdout must fit

    @classmethod
    def from_sys(cls) -> "Environment":
        return cls(stdin=sys.stdin.buffer, stdout=sys.stdout.buffer, stderr=sys.stderr,
                   stdin_isatty=sys.stdin.isatty(), stderr_isatty=sys.stderr.isatty(),
                   stdout_isatty=sys.stdout.isatty(),
                   terminal_width=shutil.get_terminal_size().columns)

    def write_stdout(self, text: str) -> None:
        # In pieces, flushing each: when the reader goes away mid-write the kernel
        # returns a short count that BufferedWriter swallows silently, so only the
        # next piece's write reports the broken pipe.
        data = memoryview(text.encode("utf-8"))
        for offset in range(0, len(data), WRITE_PIECE_BYTES):
            self.stdout.write(data[offset:offset + WRITE_PIECE_BYTES])
            self.stdout.flush()

    def say(self, message: str) -> None:
        """A line for people, on stderr."""
        print(message, file=self.stderr, flush=True)

    def read_input(self, input_path: str | None) -> str:
        """The input text: a file, or stdin for None and `-` (not a terminal)."""
        if input_path is None or input_path == "-":
            if self.stdin_isatty:
                raise UsageError("no input: give a file, or pipe text on stdin")
            return decode_input(self.stdin.read())
        path = Path(input_path).expanduser()
        try:
            return decode_input(path.read_bytes())
        except FileNotFoundError:
            raise InputError(f"{input_path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{input_path}: is a directory") from None
        except OSError as error:
            raise InputError(f"{input_path}: {error.strerror}") from None

    @staticmethod
    def check_output(output: Path, input_path: str | None) -> None:
        """Fail before any work on an output that cannot be written, or that is the input
        (compression drops text: replacing the input would lose it for good)."""
        if input_path not in (None, "-") and os.path.exists(input_path) and output.exists() \
                and os.path.samefile(input_path, output):
            raise UsageError(f"--output {output} is the input file; write the result elsewhere")
        try:
            check_writable(output)
        except OSError as error:
            raise CrossprefillError(f"cannot write {output}: {error.strerror}") from None

    def emit(self, payload: str, output: Path | None) -> None:
        """The product: to stdout, or atomically to `output`."""
        if output is None:
            self.write_stdout(payload)
            return
        try:
            write_atomically(output, payload)
        except OSError as error:
            raise CrossprefillError(f"cannot write {output}: {error.strerror}") from None


def check_writable(path: Path) -> None:
    """Raise the `OSError` that writing `path` atomically would meet for its folder (none,
    not a folder, not writable) or for itself (a folder), before any work is done."""
    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, "no such directory", str(folder))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(folder))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "permission denied", str(folder))


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
