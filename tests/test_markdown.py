"""Fenced code blocks: which fence lines pair up (CommonMark's rules, the common cases)."""

from crossprefill_cli.text.markdown import fenced_blocks


def spans(text):
    return [(text[b.open_start:b.open_end], text[b.close_start:b.close_end])
            for b in fenced_blocks(text, 0, len(text))]


def test_fences_pair_in_order():
    text = "intro\n```python\nx = 1\n```\nmiddle\n~~~\nraw\n~~~\nend\n"
    assert spans(text) == [("```python\n", "```\n"), ("~~~\n", "~~~\n")]


def test_a_closing_fence_is_the_same_character_at_least_as_long_with_no_info():
    text = "````md\n```js\ninner\n```\n`````\nafter\n"
    assert spans(text) == [("````md\n", "`````\n")]
    assert spans("```\na\n~~~\n```\n") == [("```\n", "```\n")]


def test_an_unclosed_fence_runs_to_the_end():
    text = "text\n```\ncode to the end\n"
    (block,) = fenced_blocks(text, 0, len(text))
    assert not block.closed and block.close_start == len(text)


def test_inline_code_and_deep_indentation_open_nothing():
    assert spans("use ```x``` inline\n```ok``` too\n    ```\nindented code\n") == []


def test_only_blocks_opening_inside_the_range_are_found():
    text = "```\na\n```\n```\nb\n```\n"
    second = text.index("```\nb")
    assert [b.open_start for b in fenced_blocks(text, second, len(text))] == [second]
