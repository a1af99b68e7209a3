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

from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.pipeline.analysis import Analysis, Result, finish

RESOLUTION = 0.01


def estimate(analysis: Analysis, counter: TargetTokenizer, rates: list[float], *,
             context_window: int | None = None, price_per_mtok: float | None = None,
             must_keep: list[str] = (), reference: str | None = None) -> dict:
    """The report for each rate; `reference` marks the gaps as `finish` does."""
    tokens_before = counter.count(analysis.text)
    rows = []
    for rate in rates:
        try:
            result = finish(analysis, keep_rate=rate, target=counter, reference=reference)
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
                                        else smallest_keep_rate(analysis, counter, must_keep,
                                                                  reference))
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


def keeps_all(analysis: Analysis, counter: TargetTokenizer, rate: float, strings,
              reference: str | None = None) -> bool:
    try:
        output = finish(analysis, keep_rate=rate, target=counter, reference=reference).text
    except UsageError:
        return False
    return all(text in output for text in strings)


def smallest_keep_rate(analysis: Analysis, counter: TargetTokenizer, strings,
                       reference: str | None = None) -> float | None:
    """The lowest keep rate (multiple of 0.01) keeping every string; None if even 1 fails."""
    if not keeps_all(analysis, counter, 1.0, strings, reference):
        return None
    low, high = 0, round(1 / RESOLUTION)  # in steps: low fails (or is 0), high keeps
    while high - low > 1:
        middle = (low + high) // 2
        if keeps_all(analysis, counter, middle * RESOLUTION, strings, reference):
            high = middle
        else:
            low = middle
    return round(high * RESOLUTION, 2)
