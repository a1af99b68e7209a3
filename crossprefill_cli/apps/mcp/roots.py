"""The folders an MCP client may read through the server, and reading files in them.

An agent names files by path or glob; the server reads only inside its roots (the
`--root` folders, by default the working directory). A path is checked where it really
leads: it is resolved (symbolic links followed, `..` applied) and must then lie in a
root, so `../x`, an absolute path elsewhere and a link that points outside are all
refused, each with a message that says which. A relative path is looked up in each
root in turn. Reading is bounded: a request may pull in at most `MAX_FILES` files and
`MAX_INPUT_BYTES` bytes in all (sizes are checked before anything is read), and a file
must be UTF-8 text (a NUL byte or an invalid byte is a clear error, as for any input).
"""

import glob
import os
import re
from pathlib import Path

from crossprefill_cli.errors import InputError, UsageError
from crossprefill_cli.text.source import MAX_INPUT_BYTES, decode_input

MAX_FILES = 1000
GLOB_CHARACTERS = re.compile(r"[*?[]")
LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


class Roots:
    """The folders files may be read from, resolved once."""

    def __init__(self, folders: list[Path]):
        self.folders = []
        for folder in folders:
            resolved = folder.expanduser().resolve()
            if not resolved.is_dir():
                raise UsageError(f"--root {folder} is not a folder")
            self.folders.append(resolved)

    def __str__(self) -> str:
        return ", ".join(map(str, self.folders))

    def root_of(self, real: Path) -> Path | None:
        return next((root for root in self.folders if real.is_relative_to(root)), None)

    def shown(self, real: Path) -> str:
        """How a file is named to the client: its path in its root, with `/`."""
        return real.relative_to(self.root_of(real)).as_posix()

    def checked(self, name: str, candidate: Path) -> Path:
        """The real path `candidate` (what `name` names) leads to, if it is in a root."""
        real = candidate.resolve()
        if self.root_of(real) is not None:
            return real
        lexical = Path(os.path.normpath(candidate))
        if self.root_of(lexical) is not None:
            raise UsageError(f"{name} resolves to {real}, outside the roots ({self}): a "
                             "symbolic link out of them is not followed")
        raise UsageError(f"{name} is outside the roots ({self})")

    def file(self, name: str) -> Path:
        """The real path of the file `name` names (relative: in the first root holding it)."""
        path = Path(name).expanduser()
        candidates = [path] if path.is_absolute() else [root / path for root in self.folders]
        candidate = next((c for c in candidates if os.path.lexists(c)), candidates[0])
        real = self.checked(name, candidate)
        if not real.exists():
            raise InputError(f"no such file: {name} (looked in {self})" if not path.is_absolute()
                             else f"no such file: {name}")
        if not real.is_file():
            raise InputError(f"{name} is not a file; name files, or a glob such as "
                             f"{name.rstrip('/')}/**/*.py")
        return real

    def files(self, names: list[str]) -> list[Path]:
        """The real paths of the files `names` (paths and globs) name, each once, in the
        order named (a glob's matches sorted); at most `MAX_FILES`."""
        found: dict[Path, None] = {}
        for name in names:
            matches = self._glob(name) if GLOB_CHARACTERS.search(name) else [self.file(name)]
            found.update(dict.fromkeys(matches))
            if len(found) > MAX_FILES:
                raise UsageError(f"the paths name more than {MAX_FILES:,} files (at {name}); "
                                 "name fewer")
        return list(found)

    def _glob(self, pattern: str) -> list[Path]:
        expanded = os.path.expanduser(pattern)
        if os.path.isabs(expanded):
            candidates = [Path(match) for match in glob.glob(expanded, recursive=True)]
        else:
            candidates = [root / match for root in self.folders
                          for match in glob.glob(expanded, root_dir=root, recursive=True)]
        matches = sorted({self.checked(str(candidate), candidate) for candidate in candidates
                          if candidate.is_file()})
        if not matches:
            raise InputError(f"no file matches {pattern} (in {self})")
        return matches

    def read(self, paths: list[Path]) -> list[tuple[str, str]]:
        """(shown path, text) of each file; `InputError` past `MAX_INPUT_BYTES` in all, or
        for a file that is not UTF-8 text."""
        sizes = {path: path.stat().st_size for path in paths}
        total = sum(sizes.values())
        if total > MAX_INPUT_BYTES:
            raise InputError(f"the files are {total:,} bytes, more than the limit of "
                             f"{MAX_INPUT_BYTES:,} bytes")
        return [(self.shown(path), read_text(path, self.shown(path))) for path in paths]

    def lines(self, name: str, start: int, end: int | None) -> tuple[str, int, int, int]:
        """Lines `start` to `end` (1-based, inclusive; None: to the last) of the file
        `name`, exactly as they are: the text, the lines given and the file's line count."""
        path = self.file(name)
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{name} is more than the limit of {MAX_INPUT_BYTES:,} bytes")
        lines = LINE.findall(read_text(path, name))
        last = len(lines) if end is None else min(end, len(lines))
        if start < 1 or (end is not None and end < start):
            raise UsageError(f"lines {start}-{end} are no range; lines count from 1")
        if start > len(lines):
            raise UsageError(f"{name} has {len(lines):,} lines; line {start} is past its end")
        return "".join(lines[start - 1:last]), start, last, len(lines)


def read_text(path: Path, shown: str) -> str:
    """The text of a file, or the `InputError` of any input that is not UTF-8 text (an
    empty file is an empty text: in a set of files it is a header alone)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {shown}: {error.strerror}") from None
    if not data.strip():
        return data.decode("ascii")
    try:
        return decode_input(data)
    except InputError as error:
        raise InputError(f"{shown}: {error}") from None
