"""Turning input bytes into text, or refusing them with a clear reason.

The input is read as bytes and decoded strictly as UTF-8 so that character offsets in
the report point into exactly the text the user gave (no newline translation, no
replacement characters). Binary data is recognised by a NUL byte before decoding.
"""

import re

from crossprefill_cli.errors import InputError

# Far beyond any context window (a 128k-token prompt is ~0.5 MB): a larger input is
# almost certainly a mistake (a tarball, a log directory) and would only burn time.
MAX_INPUT_BYTES = 64 * 1024 * 1024
SURROGATE = re.compile("[\ud800-\udfff]")


def decode_input(data: bytes, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """Return the input as text; raise `InputError` for empty, binary or huge input."""
    if len(data) > max_bytes:
        raise InputError(
            f"input is {len(data):,} bytes, more than the limit of {max_bytes:,} bytes"
        )
    nul = data.find(b"\0")
    if nul != -1:
        raise InputError(f"input looks binary (NUL byte at offset {nul}); expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"input is not valid UTF-8 (invalid byte at offset {error.start})"
        ) from None
    check_text(text)
    return text


def check_text(text: str) -> None:
    """Refuse text with nothing to compress, and text no UTF-8 can carry (a lone
    surrogate, which a JSON request can spell as `\\ud800`)."""
    if not text.strip():
        raise InputError("input is empty" if not text else "input is only whitespace")
    surrogate = SURROGATE.search(text)
    if surrogate is not None:
        raise InputError(f"input holds a lone surrogate (U+{ord(surrogate[0]):04X} at "
                         f"character {surrogate.start()}), which is no Unicode text")
