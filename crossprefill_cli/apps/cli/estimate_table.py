"""The `estimate` report as a table for stdout: plain data in, text out.

The report is what `estimate.estimate` returns or a server's `/v1/estimate` answers;
this module imports only Rich, so a `--server` client draws the table without numpy
or the pipeline.
"""

import functools
import io

from rich.console import Console
from rich.table import Table

from crossprefill_cli.apps.cli.render import without_trailing_spaces


def render_estimate(report: dict, *, color: bool, width: int = 80) -> str:
    """The report as a table with a short header and footer, for stdout, `width` columns wide."""
    console = Console(file=io.StringIO(), force_terminal=color, no_color=not color,
                      width=width, highlight=False)
    # two short lines, each whole however long a path in it: a name wrapped in its
    # middle helps nobody
    console.print(f"{report['tokens_before']:,} target tokens ({report['target']})",
                  soft_wrap=True)
    console.print(f"draft {report['draft']}, profile {report['profile']}"
                  f"{', scores from cache' if report['scores_cached'] else ''}", soft_wrap=True)
    # Headers of two short lines over cells that never wrap, one space apart, keep a report
    # with every option inside 80 columns.
    table = Table(box=None, padding=(0, 0, 0, 1), pad_edge=False, header_style="bold")
    column = functools.partial(table.add_column, vertical="bottom", no_wrap=True)
    for title in ("keep\nrate", "tokens\nafter", "share", "prefill\nsaved", "attn\nsaved"):
        column(title, justify="right")
    if report["context_window"] is not None:
        column(f"fits\n{report['context_window']:,}")
    if report["price_per_mtok"] is not None:
        column("cost\nafter", justify="right")
        column("cost\nsaved", justify="right")
    strings = report.get("must_keep", [])
    for index in range(1, len(strings) + 1):
        column(f"#{index}")
    for row in report["rows"]:
        if row["tokens_after"] is None:
            table.add_row(f"{row['keep_rate']:g}", "too low")
            continue
        cells = [f"{row['keep_rate']:g}", f"{row['tokens_after']:,}", f"{100 * row['share']:.1f}%",
                 f"{row['prefill_tokens_saved']:,}", f"{100 * row['attention_work_saved']:.0f}%"]
        if "fits" in row:
            cells.append("yes" if row["fits"] else "no")
        if "money_saved" in row:
            cells += [f"${row['cost_after']:.4f}", f"${row['money_saved']:.4f}"]
        cells += ["kept" if row["survives"][text] else "lost" for text in strings]
        table.add_row(*cells)
    console.print(table)
    console.print(_legend(report), style="dim")
    if any(row["tokens_after"] is None for row in report["rows"]):
        console.print("too low = a budget below what must always be kept")
    for index, text in enumerate(strings, start=1):
        console.print(f"#{index} = {text!r}")
    if strings:
        if report["missing_from_input"]:
            console.print("not in the input at all: " + ", ".join(map(repr, report["missing_from_input"])))
        elif report["smallest_keep_rate"] is None:
            console.print("no keep rate keeps all of them")
        else:
            console.print(f"smallest keep rate that keeps all of them: "
                          f"{report['smallest_keep_rate']:g}")
    return without_trailing_spaces(console.file.getvalue())


def _legend(report: dict) -> Table:
    """What each column means, for the columns shown."""
    legend = Table.grid(padding=(0, 1))
    legend.add_column(no_wrap=True)
    legend.add_column()
    legend.add_row("tokens after", "the result's target tokens, gap markers included")
    legend.add_row("share", "tokens after / the input's target tokens")
    legend.add_row("prefill saved", "input tokens the model no longer reads")
    legend.add_row("attn saved", "share of the prefill's attention work saved (grows with "
                   "length²)")
    if report["context_window"] is not None:
        legend.add_row("fits", "whether the result fits in --context-window tokens")
    if report["price_per_mtok"] is not None:
        legend.add_row("cost", "the result's input cost at --price-per-mtok, and what is saved")
    return legend
