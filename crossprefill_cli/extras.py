"""Optional parts of the package (`serve`, `ray`), and how to install one where the
user is.

No distribution named `crossprefill` is published on a package index, so advice such as
`pip install 'crossprefill[serve]'` cannot work as printed. From a clone (an editable
install, the README's) the extra is installed from that folder; anywhere else the
packages the extra lists in the installed metadata are named directly, with their
version bounds, which works wherever pip can reach an index.
"""

import re
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from crossprefill_cli.errors import MissingExtraError

DISTRIBUTION = "crossprefill"


def missing(extra: str, what: str, module: str | None) -> MissingExtraError:
    """The error for `what` (a command or option) needing the extra `extra`, whose module
    `module` could not be imported."""
    name = f" ({module.split('.')[0]} is not installed)" if module else ""
    return MissingExtraError(f"{what} needs the '{extra}' extra{name}: {install_advice(extra)}")


@contextmanager
def needed(extra: str, what: str) -> Iterator[None]:
    """Around the imports `what` (a command or option) needs: their failure is the error
    that it needs the extra `extra`."""
    try:
        yield
    except ImportError as error:
        raise missing(extra, what, error.name) from None


def install_advice(extra: str) -> str:
    clone = Path(__file__).resolve().parent.parent
    if (clone / "pyproject.toml").is_file():
        return f"pip install -e {shlex.quote(f'{clone}[{extra}]')}"
    return "pip install " + " ".join(shlex.quote(r) for r in extra_requirements(extra))


def extra_requirements(extra: str) -> list[str]:
    """The requirements the installed metadata lists for `extra` (markers dropped)."""
    import importlib.metadata  # here: 30 ms of every command's start-up otherwise

    try:
        listed = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return [f"{DISTRIBUTION}[{extra}]"]
    marker = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""")
    return [requirement.split(";")[0].strip().replace(" ", "")
            for requirement in listed if marker.search(requirement)]
