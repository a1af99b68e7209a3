"""What people see on stderr: the saliency heatmap, the counts, progress.

The heatmap has one cell per scored unit in reading order. Colour is the unit's
score as a percentile among all units (so one outlier does not wash the rest out),
on a dark-blue-to-yellow scale; the glyph says what happened to it: `█` kept, `▓`
always kept (head, tail, headers), `░` dropped. Cells wrap at the console width. For
repository dumps, each file gets its own row of cells behind its path. Everything
goes through one Rich console on stderr, which follows Rich's rules for colour
(NO_COLOR, FORCE_COLOR, not a terminal) and width (COLUMNS).
"""

import contextlib
import re
import textwrap
from bisect import bisect_left
from typing import Callable, Iterator, TextIO

from rich.console import Console, Group
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from crossprefill_cli.results import Result

ProgressCallback = Callable[[int, int], None]  # as `pipeline.Progress`: windows done, total

# viridis, from low to high score
PALETTE = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
           "#6ece58", "#b5de2b", "#fde725"]
KEPT, REQUIRED, DROPPED = "█", "▓", "░"
MIN_LABEL_WIDTH = 22
TOP_CHUNKS = 5
# the excerpt column takes what the others leave: score (6), kept (4), line (6 for
# inputs under a million lines), two spaces after each
OTHER_COLUMNS_WIDTH = 24
MIN_EXCERPT_CHARS = 20
TRAILING_SPACES = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def stderr_console(stream: TextIO) -> Console:
    return Console(file=stream, stderr=True, highlight=False)


def percentiles(scores: list[float]) -> list[float]:
    """Each score's rank among all scores, in [0, 1] (ties share the lower rank)."""
    if len(scores) < 2:
        return [1.0] * len(scores)
    ordered = sorted(scores)
    return [bisect_left(ordered, score) / (len(scores) - 1) for score in scores]


def colour(percentile: float) -> str:
    return PALETTE[min(len(PALETTE) - 1, int(percentile * len(PALETTE)))]


def heatmap(result: Result, width: int, *, coloured: bool) -> Group:
    levels = percentiles([chunk.score for chunk in result.chunks])
    cells = [Text(REQUIRED if c.required else KEPT if c.kept else DROPPED, style=colour(level))
             for c, level in zip(result.chunks, levels)]
    rows: list[Text] = []
    if not result.files:
        rows.append(Text.assemble(*cells, overflow="fold"))
    else:
        starts = [chunk.start for chunk in result.chunks]
        label_width = _label_width(result, width)
        for file in result.files:
            first, last = bisect_left(starts, file.start), bisect_left(starts, file.end)
            label = Text(_fit(file.path, label_width).ljust(label_width + 1), style="bold")
            rows.extend(_wrapped_row(label, cells[first:last], width))
    legend = Text.assemble(
        ("cell", "bold"), " = one chunk in reading order   ",
        (KEPT, colour(0.9)), " kept   ", (REQUIRED, colour(0.9)), " always kept   ",
        (DROPPED, colour(0.9)), " dropped")
    if coloured:  # without colour the scale would be a row of identical glyphs
        legend.append_text(Text.assemble("\n", ("colour", "bold"), " = score percentile  low ",
                                         *[(KEPT, hue) for hue in PALETTE], " high"))
    title = Text(f"Saliency of {len(result.chunks)} chunks ({result.draft} draft)", style="bold")
    return Group(title, *rows, legend)


def _label_width(result: Result, width: int) -> int:
    """Room for file paths: what the longest needs, between a floor and a third of the line."""
    longest = max(len(file.path) for file in result.files)
    return max(MIN_LABEL_WIDTH, min(longest, width // 3))


def _wrapped_row(label: Text, cells: list[Text], width: int) -> list[Text]:
    per_line = max(8, width - len(label))
    lines = []
    for offset in range(0, max(1, len(cells)), per_line):
        head = label if offset == 0 else Text(" " * len(label))
        lines.append(Text.assemble(head, *cells[offset:offset + per_line]))
    return lines


def _fit(path: str, width: int) -> str:
    """`path` in `width` characters: the file name whole after as much of the path's
    start as fits (`src/cr…/name.py`), or, for a file name too long for that, the
    name's start and end (`very-lo…f20a.yaml`)."""
    if len(path) <= width:
        return path
    name = path.rsplit("/", 1)[-1]
    if "/" in path and len(name) + 2 < width:
        return path[:width - 2 - len(name)] + "…/" + name
    if len(name) <= width:
        return name
    return name[:width // 2] + "…" + name[len(name) - (width - 1 - width // 2):]


def counts(result: Result) -> Table:
    table = Table(title="Counts", title_justify="left", show_header=False, box=None,
                  padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    kept = sum(chunk.kept for chunk in result.chunks)
    rate = "" if result.keep_rate is None else f" (keep rate {result.keep_rate:g})"
    table.add_row("target", result.target)
    table.add_row("target tokens before", f"{result.tokens_before:,}")
    table.add_row("target tokens after", f"{result.tokens_after:,} "
                  f"({100 * result.tokens_after / result.tokens_before:.1f}%)")
    table.add_row("budget", f"{result.budget:,}{rate}")
    reason = "" if result.backend_reason is None else f" ({result.backend_reason})"
    table.add_row("draft engine", f"{result.backend}{reason}")
    table.add_row("draft tokens", f"{result.draft_tokens:,} in {result.windows} "
                  f"window{'s' if result.windows != 1 else ''}"
                  f"{' (scores from cache)' if result.scores_cached else ''}")
    table.add_row("chunks kept", f"{kept} of {len(result.chunks)} (scored by {result.scorer})")
    query = ("none" if result.query is None
             else f"{result.query_source}: {' '.join(result.query.split())}")
    table.add_row("query", Text(query, overflow="ellipsis", no_wrap=True))
    return table


def top_chunks(result: Result, source_text: str, width: int) -> Table:
    table = Table(title="Highest-scoring chunks", title_justify="left", box=None,
                  padding=(0, 2, 0, 0), caption=f"score: the chunk's weight under the "
                  f"{result.scorer} scorer (higher is likelier kept)\nline: the input line "
                  "where the chunk starts", caption_justify="left")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("kept", no_wrap=True, min_width=4)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("excerpt", overflow="ellipsis", no_wrap=True, ratio=1)
    ranked = sorted(result.chunks, key=lambda chunk: (-chunk.score, chunk.start))[:TOP_CHUNKS]
    for chunk in ranked:
        table.add_row(f"{chunk.score:.4f}", "yes" if chunk.kept else "no",
                      str(source_text.count("\n", 0, chunk.start) + 1),
                      _excerpt(source_text[chunk.start:chunk.end],
                               max(MIN_EXCERPT_CHARS, width - OTHER_COLUMNS_WIDTH)))
    return table


def _excerpt(text: str, chars: int) -> str:
    """The text on one line, cut after a whole word with `…` when longer than `chars`.

    A first word too long for that comes back whole, for the column's ellipsis to cut.
    """
    flat = " ".join(text.split())
    short = textwrap.shorten(flat, chars, placeholder="…", break_on_hyphens=False)
    return flat if short == "…" else short


def show_report(console: Console, result: Result, source_text: str) -> None:
    coloured = console.color_system is not None and not console.no_color
    with console.capture() as captured:
        console.print(heatmap(result, console.width, coloured=coloured))
        console.print()
        console.print(counts(result))
        console.print()
        console.print(top_chunks(result, source_text, console.width))
    console.file.write(without_trailing_spaces(captured.get()))
    console.file.flush()


def without_trailing_spaces(text: str) -> str:
    """Rich pads table cells to their column's width; nothing a reader or a diff wants
    at the end of a line (colour codes after the spaces stay)."""
    return TRAILING_SPACES.sub(r"\1", text)


@contextlib.contextmanager
def draft_progress(console: Console) -> Iterator[ProgressCallback]:
    """A transient progress bar for the draft's windows (the command decides whether one
    is wanted before it imports this module: `commands._draft_progress`)."""
    progress = Progress(SpinnerColumn(), TextColumn("reading with the draft"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("windows"), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("draft", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield advance


@contextlib.contextmanager
def batch_progress(console: Console, total: int,
                   enabled: bool) -> Iterator[Callable[[int], None]]:
    """A transient bar of records done (records/s, input tokens/s, time left); the
    callback takes the input tokens of each record done."""
    if not enabled:
        yield lambda tokens: None
        return
    progress = Progress(SpinnerColumn(), TextColumn("records"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[rates]}"),
                        TimeRemainingColumn(), console=console, transient=True)
    task = progress.add_task("batch", total=total, rates="")
    tokens_done = [0]

    def advance(tokens: int) -> None:
        tokens_done[0] += tokens
        elapsed = progress.tasks[0].elapsed or 0.0
        done = progress.tasks[0].completed + 1
        rates = (f"{done / elapsed:.2f} records/s, {tokens_done[0] / elapsed:,.0f} tokens/s"
                 if elapsed > 0 else "")
        progress.update(task, advance=1, rates=rates)

    with progress:
        yield advance
