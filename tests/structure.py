"""An independent check of the output contract, shared by pipeline and CLI tests."""

import re

SEPARATOR = re.compile(r" |\r?\n")  # what a marker may add between itself and a span


def assert_verbatim_structure(text: str, result, delimiter: str | tuple[str, ...]) -> None:
    """Output = the reported spans, verbatim and in order, with one delimiter per gap.

    `delimiter` may be several: each gap must then be marked by one of them.
    """
    delimiters = (delimiter,) if isinstance(delimiter, str) else delimiter
    marker = re.compile(r"(?: |\r?\n)?(?:" + "|".join(map(re.escape, delimiters)) + ")")
    output, position, previous_end = result.text, 0, 0
    spans = [(span.start, span.end) for span in result.spans]
    assert spans, "something must be kept"
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert start == 0 or start > previous_end, "adjacent spans must be merged"
        if start > previous_end:
            position = _skip_marker(output, position, marker)
        piece = text[start:end]
        if not output.startswith(piece, position):
            separator = SEPARATOR.match(output, position)
            assert separator and output.startswith(piece, separator.end()), \
                f"span {start}:{end} is not verbatim at output offset {position}"
            position = separator.end()
        position += len(piece)
        previous_end = end
    if previous_end < len(text):
        position = _skip_marker(output, position, marker)
    assert position == len(output), "unexplained text at the end of the output"


def _skip_marker(output: str, position: int, marker: re.Pattern) -> int:
    match = marker.match(output, position)
    assert match, f"expected the delimiter at output offset {position}: {output[position:position + 40]!r}"
    return match.end()


def assert_pieces_verbatim(original: str, compressed: str, delimiter: str) -> None:
    """Seen from the output alone: what lies between the delimiters are substrings of
    `original`, in its order."""
    position = 0
    for piece in compressed.split(delimiter):
        piece = piece.strip(" \n")
        if piece:
            found = original.find(piece, position)
            assert found >= 0, f"not verbatim, or out of order: {piece[:60]!r}"
            position = found + len(piece)
