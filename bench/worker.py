"""The child-process side of bench.compare: one method, many items, each timed.

    python -m bench.worker METHOD DRAFT TARGET ITEMS.json OUT.json

METHOD is `crossprefill`, `random`, `lexical` (the pipeline with that scorer and
DRAFT), `head` or `head+tail` (truncation in TARGET's tokens). ITEMS is a list of
`{text, query, profile, budget, case, ...}`; OUT gets `{text, seconds}` per item, or
`{error, seconds}` when the method failed on it, `seconds` measured with perf_counter
around the method's work on that item alone.

`serve` is the one implementation of that protocol: it is also what LLMLingua's runner
uses in its own environment, so this module imports only the standard library at the
top, and each method imports what it needs when it is set up. A truncation worker
therefore never pays for torch, as `ttok` would not.
"""

import json
import sys
import time
from pathlib import Path
from typing import Callable


def serve(compress_one: Callable[[dict], str], items_path: str, out_path: str) -> None:
    items = json.loads(Path(items_path).read_text(encoding="utf-8"))
    outputs = []
    for item in items:
        started = time.perf_counter()
        try:
            outputs.append({"text": compress_one(item), "seconds": time.perf_counter() - started})
        except Exception as error:  # reported per item by the caller, counted as a miss
            outputs.append({"error": f"{type(error).__name__}: {error}",
                            "seconds": time.perf_counter() - started})
    Path(out_path).write_text(json.dumps(outputs), encoding="utf-8")


def truncation_method(method: str, target_spec: str) -> Callable[[dict], str]:
    from .truncation import head, head_and_tail, token_starts

    cut, starts = {"head": head, "head+tail": head_and_tail}[method], token_starts(target_spec)
    return lambda item: cut(item["text"], item["budget"], starts)


def pipeline_method(method: str, draft_name: str, target_spec: str) -> Callable[[dict], str]:
    from crossprefill_cli import compress
    from crossprefill_cli.models.draft import load_draft
    from crossprefill_cli.models.target import load_target

    from .methods import random_scorer

    draft, target = load_draft(draft_name, device="cpu"), load_target(target_spec)

    def compress_one(item: dict) -> str:
        scorer = {"crossprefill": None, "lexical": "lexical",
                  "random": random_scorer(item["case"])}[method]
        return compress(item["text"], draft=draft, target=target, query=item["query"],
                        profile=item["profile"], target_tokens=item["budget"],
                        scorer=scorer).text
    return compress_one


def main() -> None:
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    method, draft_name, target_spec, items_path, out_path = sys.argv[1:]
    compress_one = (truncation_method(method, target_spec) if method in ("head", "head+tail")
                    else pipeline_method(method, draft_name, target_spec))
    serve(compress_one, items_path, out_path)


if __name__ == "__main__":
    main()
