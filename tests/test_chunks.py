import hashlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.units import chunks


def starts_every(text: str, step: int) -> np.ndarray:
    return np.arange(0, len(text), step, dtype=np.int64)


def test_word_snap_never_cuts_inside_a_word():
    text = "alpha beta gamma delta"
    assert chunks.snap(text, 8, 0, len(text), "word") in (6, 10)   # inside "beta"
    assert chunks.snap(text, 6, 0, len(text), "word") == 6          # already a boundary


def test_line_snap_moves_to_the_nearest_line_start():
    text = "line one\nline two\nline three\n"
    assert chunks.snap(text, 12, 0, len(text), "line") == 9
    assert chunks.snap(text, 16, 0, len(text), "line") == 18


def test_sentence_snap_prefers_sentence_and_line_starts():
    text = "First sentence here. Second one follows! Third\nline starts."
    assert chunks.snap(text, 25, 0, len(text), "sentence") == 21
    assert chunks.snap(text, 44, 0, len(text), "sentence") == 41  # tie: the earlier start
    assert chunks.snap(text, 46, 0, len(text), "sentence") == 47
    assert chunks.snap("no sentence end in sight", 7, 0, 24, "sentence") in (3, 12)


def test_line_snap_is_strict_without_newlines_in_range():
    text = "one long line without breaks"
    assert chunks.snap(text, 10, 0, len(text), "line") is None


def test_line_snap_prefers_top_level_code_after_a_blank_line():
    text = "def a():\n    x = 1\n    y = 2\n\ndef b():\n    z = 3\n"
    # the nearest line start is "    y = 2", but "def b" is a few lines away
    assert chunks.snap(text, 22, 0, len(text), "line") == text.index("def b")
    assert chunks.line_start_rank(text, text.index("def b")) == 0
    assert chunks.line_start_rank(text, text.index("    y")) == 2
    assert chunks.line_start_rank(text, text.index("\ndef b")) == 3  # the blank line


def test_line_snap_keeps_a_closing_bracket_with_its_block():
    text = "int f(int x) {\n    if (x) {\n        g(x);\n    }\n    return x;\n}\n"
    # the nearest line start is the `    }` closing the if; the next line is a better edge
    assert chunks.snap(text, text.index("    }"), 0, len(text), "line") == text.index("    return")
    closers = text + "    end\n"
    for line_start in (text.index("    }"), text.rindex("\n}") + 1, len(text)):
        assert chunks.line_start_rank(closers, line_start) == 3
    assert chunks.line_start_rank(closers + "endpoint = 1\n", len(closers)) == 1  # not `end`


def test_head_in_line_mode_holds_whole_lines_only():
    text = "a very long first line of code\nsecond\n"
    starts = starts_every(text, 2)
    assert chunks.head_end(text, starts, lines=1, max_tokens=4, boundary="line") == 0
    assert chunks.head_end(text, starts, lines=2, max_tokens=18, boundary="line") == 31


def test_head_is_the_first_line_capped_on_a_word_boundary():
    text = "Title line\nbody body body\n"
    starts = starts_every(text, 1)
    assert chunks.head_end(text, starts, lines=1, max_tokens=64, boundary="word") == 11
    capped = chunks.head_end(text, starts, lines=1, max_tokens=3, boundary="word")
    assert capped <= 5 and chunks.is_word_boundary(text, capped)
    assert chunks.head_end(text, starts, lines=0, max_tokens=64, boundary="word") == 0


def test_tail_snaps_to_a_line_start_in_line_mode():
    text = "a = 1\nb = 2\nreturn a + b\n"
    starts = starts_every(text, 2)
    start = chunks.tail_start(text, starts, tokens=4, low=0, boundary="line")
    assert text[start - 1] == "\n"


@given(st.text(alphabet="ab \n.", min_size=1, max_size=400), st.integers(1, 9),
       st.integers(1, 6), st.sampled_from(["token", "word", "sentence", "line"]))
def test_units_tile_the_text_exactly(text, step, chunk_size, boundary):
    starts = starts_every(text, step)
    head = chunks.head_end(text, starts, lines=1, max_tokens=4, boundary=boundary)
    tail = chunks.tail_start(text, starts, tokens=3, low=head, boundary=boundary)
    middle = (head + tail) // 2
    segments = [chunks.Segment(0, head, required=True), chunks.Segment(head, middle, boundary),
                chunks.Segment(middle, tail), chunks.Segment(tail, len(text), required=True)]
    units = chunks.build_units(text, starts, segments, chunk_size=chunk_size)
    assert units[0].start == 0 and units[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(units, units[1:]))
    assert all(u.start < u.end for u in units)
    owners = chunks.token_units(starts, units)
    for token_start, owner in zip(starts, owners):
        assert units[owner].start <= token_start < units[owner].end


def test_line_mode_chunks_start_at_line_starts():
    text = "".join(f"value_{i} = compute({i})\n" for i in range(60))
    starts = starts_every(text, 3)
    units = chunks.build_units(text, starts, [chunks.Segment(0, len(text), "line")], chunk_size=20)
    assert len(units) > 3
    assert all(u.start == 0 or text[u.start - 1] == "\n" for u in units)


def test_a_line_longer_than_a_chunk_is_cut_at_word_boundaries():
    text = "x = [" + ", ".join(map(str, range(200))) + "]\ny = 1\n"
    units = chunks.build_units(text, starts_every(text, 3), [chunks.Segment(0, len(text), "line")],
                               chunk_size=10)
    assert len(units) > 20 and units[-1].start == text.index("y")
    assert all(chunks.is_word_boundary(text, u.start) for u in units)
    assert max(u.end - u.start for u in units) <= 2 * 30


def test_minified_code_is_cut_at_word_boundaries():
    text = "".join(f"function f{i}(a){{return a*{i}}};" for i in range(300))  # no newline at all
    units = chunks.build_units(text, starts_every(text, 4), [chunks.Segment(0, len(text), "line")],
                               chunk_size=16)
    assert len(units) > 100 and all(chunks.is_word_boundary(text, u.start) for u in units)


def test_a_line_without_word_boundaries_is_cut_at_token_starts():
    text = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(40))  # one "word"
    starts = starts_every(text, 4)
    units = chunks.build_units(text, starts, [chunks.Segment(0, len(text), "line")], chunk_size=16)
    assert len(units) == len(text) // 64
    assert {u.start for u in units} <= set(starts.tolist())
    assert "".join(text[u.start:u.end] for u in units) == text


def test_a_line_a_little_longer_than_a_chunk_stays_whole():
    lines = [f"result_{i} = transform(alpha_{i}, beta_{i}, gamma_{i})\n" for i in range(30)]
    text = "".join(lines)  # each line about 1.5 chunks of 10 tokens x 3 characters
    units = chunks.build_units(text, starts_every(text, 3), [chunks.Segment(0, len(text), "line")],
                               chunk_size=10)
    assert all(u.start == 0 or text[u.start - 1] == "\n" for u in units)


def test_sentence_edges_never_leave_a_sliver_of_a_chunk():
    text = "Release 1.6.1 2.0 2.0.1 2.1 2.1.1 2.2 and so on. " * 40
    starts = starts_every(text, 4)  # 32 "tokens" = 128 characters per chunk
    units = chunks.build_units(text, starts, [chunks.Segment(0, len(text), "sentence")],
                               chunk_size=32)
    assert min(u.end - u.start for u in units[:-1]) >= 64
