"""Rules shared by everything that loads a model or tokenizer by name.

A name that can only be a path is never sent to a model hub (a typo in a path should
fail at once, not after the hub client's retries), and transformers' own progress bars
and notices are kept off our stderr while loading, then restored for the caller.
"""

import contextlib
from pathlib import Path
from typing import Iterator


def looks_like_path(spec: str) -> bool:
    """True for names that can only mean a local path (never sent to a model hub)."""
    return (spec.startswith(("/", "./", "../", "~", "."))
            or "\\" in spec or spec.count("/") > 1 or Path(spec).exists())


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
