"""What each keep rate would leave: tokens, fit, savings and surviving strings.

All rows come from one draft analysis (`pipeline.analyse`), so an estimate costs one
draft pass plus a cheap budgeted selection per keep rate. Prefill savings are given
two ways because a target's prefill cost has a linear part (projections, MLPs:
proportional to tokens) and a quadratic part (attention: proportional to tokens
squared), and which dominates depends on the model and the length.

`smallest_keep_rate` answers the tuning question directly: the lowest keep rate (to
0.01) at which every `--must-keep` string survives. It bisects, assuming survival
grows with the budget, then checks the answer and steps up until it truly holds.
"""

import functools
import io

from rich.console import Console
from rich.table import Table

from .errors import UsageError
from .pipeline import Analysis, Result, finish
from .target import TargetTokenizer

RESOLUTION = 0.01


def estimate(analysis: Analysis, counter: TargetTokenizer, rates: list[float], *,
             context_window: int | None = None, price_per_mtok: float | None = None,
             must_keep: list[str] = ()) -> dict:
    tokens_before = counter.count(analysis.text)
    rows = []
    for rate in rates:
        try:
            result = finish(analysis, keep_rate=rate, target=counter)
        except UsageError as error:  # a budget below what must be kept
            rows.append({"keep_rate": rate, "tokens_after": None, "error": str(error)})
            continue
        rows.append(_row(result, context_window, price_per_mtok, must_keep))
    report = {"target": counter.name, "draft": analysis.source.name,
              "profile": analysis.settings.name, "tokens_before": tokens_before,
              "context_window": context_window, "price_per_mtok": price_per_mtok,
              "scores_cached": analysis.cached, "rows": rows}
    if must_keep:
        report["must_keep"] = list(must_keep)
        report["missing_from_input"] = [s for s in must_keep if s not in analysis.text]
        report["smallest_keep_rate"] = (None if report["missing_from_input"]
                                        else smallest_keep_rate(analysis, counter, must_keep))
    return report


def _row(result: Result, context_window, price_per_mtok, must_keep) -> dict:
    share = result.tokens_after / result.tokens_before
    row = {"keep_rate": result.keep_rate, "budget": result.budget,
           "tokens_after": result.tokens_after, "share": round(share, 4),
           "prefill_tokens_saved": result.tokens_before - result.tokens_after,
           "attention_work_saved": round(1 - share ** 2, 4)}
    if context_window is not None:
        row["fits"] = result.tokens_after <= context_window
    if price_per_mtok is not None:
        row["cost_before"] = round(result.tokens_before * price_per_mtok / 1e6, 6)
        row["cost_after"] = round(result.tokens_after * price_per_mtok / 1e6, 6)
        row["money_saved"] = round(row["cost_before"] - row["cost_after"], 6)
    if must_keep:
        row["survives"] = {text: text in result.text for text in must_keep}
    return row


def keeps_all(analysis: Analysis, counter: TargetTokenizer, rate: float, strings) -> bool:
    try:
        output = finish(analysis, keep_rate=rate, target=counter).text
    except UsageError:
        return False
    return all(text in output for text in strings)


def smallest_keep_rate(analysis: Analysis, counter: TargetTokenizer, strings) -> float | None:
    """The lowest keep rate (multiple of 0.01) keeping every string; None if even 1 fails."""
    if not keeps_all(analysis, counter, 1.0, strings):
        return None
    low, high = 0, round(1 / RESOLUTION)  # in steps: low fails (or is 0), high keeps
    while high - low > 1:
        middle = (low + high) // 2
        if keeps_all(analysis, counter, middle * RESOLUTION, strings):
            high = middle
        else:
            low = middle
    return round(high * RESOLUTION, 2)


def render_estimate(report: dict, *, color: bool, width: int = 80) -> str:
    """The report as a table with a short header and footer, for stdout, `width` columns wide."""
    console = Console(file=io.StringIO(), force_terminal=color, no_color=not color,
                      width=width, highlight=False)
    console.print(f"{report['tokens_before']:,} target tokens ({report['target']}), "
                  f"draft {report['draft']}, profile {report['profile']}"
                  f"{', scores from cache' if report['scores_cached'] else ''}")
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
    return console.file.getvalue()
