"""What a stretch of text is, when nothing around it says: data, a log, Python or prose.

A repository dump names each file's language by its path (`dumps`); an input that
is not a dump, a chat turn's content and a dump's text outside its files name
nothing, so their kind is read from the text itself, cheapest test first:

    json    the whole stretch parses as a JSON object or array
    jsonl   every non-blank line does (JSON Lines)
    diff    a unified diff (`diffs.is_diff`)
    log     enough of its lines look written by a tool (`logs.is_log`)
    python  it parses as Python and defines something
    yaml    it parses as YAML and is mostly keys and entries (`yaml_data.is_yaml`:
            prose is valid YAML too, one scalar; Python can be a YAML mapping)

and None (prose, or code of another language) otherwise. A `--kind` given by the user
wins over all of this (see `pipeline.analysis`).

Data rarely comes alone: a prompt is a tool's JSON and a question after it, or a line
saying what follows before it. `regions` finds data that fills at least `DATA_SHARE`
of a stretch with prose around it (one JSON value, a run of JSON Lines, or a run of
YAML lines: `yaml_data.region`), so the data is read as data and the words around it
as prose.
"""

import json
import re

from crossprefill_cli.text import diffs, dumps, logs, structured, yaml_data


DATA_SHARE = 0.5
DATA_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)


def regions(text: str) -> list[tuple[int, int, str | None]]:
    """Stretches tiling `text`, each with its kind (see the module docstring)."""
    found = _data_region(text) or _yaml_region(text)
    if found is None:
        return [(0, len(text), detect(text))]
    start, end, kind = found
    return [(a, b, k) for a, b, k in ((0, start, None), (start, end, kind), (end, len(text), None))
            if a < b]


def data_span(text: str) -> tuple[int, int] | None:
    """The (start, end) of the JSON or JSON Lines that `regions` finds in `text` with
    prose around it, or None."""
    found = _data_region(text)
    return None if found is None else found[:2]


def _data_region(text: str) -> tuple[int, int, str] | None:
    """One JSON value, or a run of JSON Lines, filling `DATA_SHARE` of `text`, on whole
    lines; None when there is none, or when it is the whole text."""
    first = DATA_START.search(text)
    if first is None or text.count("\n") < 2:
        return None
    start = first.start()
    try:
        _, end = json.JSONDecoder().raw_decode(text, first.end() - 1)
    except ValueError:
        end = start
    lines_end = _json_lines_end(text, start)
    kind = "jsonl" if text.count("\n", start, lines_end) >= 2 and lines_end > end else "json"
    end = max(end, lines_end) if kind == "jsonl" else end
    if text[end - 1:end] != "\n":  # the rest of the value's last line goes with it
        newline = text.find("\n", end)
        end = len(text) if newline == -1 else newline + 1
    if text[end:].strip() == "" and not text[:start].strip():
        return None  # data alone: `detect` says so
    if end - start < DATA_SHARE * len(text):
        return None
    return start, end, kind


def _yaml_region(text: str) -> tuple[int, int, str] | None:
    """A run of YAML lines filling `DATA_SHARE` of `text`, with prose around it."""
    found = yaml_data.region(text, min_chars=int(DATA_SHARE * len(text)))
    if found is None or dumps.anonymous_language(text[found[0]:found[1]]) is not None:
        return None  # YAML alone (`detect` says so), or Python that reads as YAML
    return (*found, "yaml")


def _json_lines_end(text: str, start: int) -> int:
    """The end of the run of JSON Lines that starts at `start`."""
    end = start
    for line in text[start:].splitlines(keepends=True):
        stripped = line.strip()
        if not stripped or stripped[0] not in "[{":
            break
        try:
            json.loads(stripped)
        except ValueError:
            break
        end += len(line)
    return end


def detect(text: str) -> str | None:
    if structured.is_json(text):
        return "json"
    if structured.json_lines(text) is not None:
        return "jsonl"
    if diffs.is_diff(text):
        return "diff"
    if logs.is_log(text):
        return "log"
    language = dumps.anonymous_language(text)
    if language is None and yaml_data.is_yaml(text):
        return "yaml"
    return language
