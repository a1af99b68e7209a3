"""LLMLingua (v1) on benchmark items; run by bench.compare inside bench/.venv-llmlingua.

    bench/.venv-llmlingua/bin/python -m bench.llmlingua_runner MODE DRAFT_DIR ITEMS.json OUT.json

It runs in LLMLingua's own environment (transformers 4.46.3, see setup_llmlingua.sh)
and takes from the project only `bench.worker.serve` (standard library only), the
protocol every benchmarked method speaks: items in, `{text, seconds}` per item out,
timed the same way. It loads `PromptCompressor(model_name=DRAFT_DIR, device_map="cpu")`
once, then compresses each item in one of two modes, never appending the question to
the output (crossprefill does not print it either):

- `llmlingua`: `compress_prompt(text, question=query, target_token=N)`, the plain
  call; with one context the question plays no part in what is kept.
- `longllmlingua`: the question-aware recipe of LLMLingua's README (LongLLMLingua),
  with the text split into paragraphs at blank lines as its contexts:
  `rank_method="longllmlingua"`, `condition_in_question="after_condition"`,
  `condition_compare=True`, `dynamic_context_compression_ratio=0.3`,
  `context_budget="+100"`, and `reorder_context="original"` so the kept text stays in
  input order, as every other method's does.

Budgets: an item asks for `budget` *target* tokens of an input of `tokens_in` target
tokens; LLMLingua counts in the draft's tokens, so N = budget x (draft tokens of the
input / target tokens of the input), the input's own ratio. Whether LLMLingua then
meets the budget is measured by the caller.

Drafts saved by transformers 5.x name some fields differently from 4.46.3
(`rope_parameters` for `rope_theta`, `dtype` for `torch_dtype`, tokenizer class
`TokenizersBackend`); such a draft is loaded from a translated copy in a temporary
folder (weights linked, not copied).
"""

import json
import sys
import tempfile
from pathlib import Path

from bench.worker import serve


def compatible_copy(folder: Path, into: Path) -> Path:
    """`folder` itself when transformers 4.x reads it as is, else a translated copy."""
    config = json.loads((folder / "config.json").read_text())
    tokenizer_file = folder / "tokenizer_config.json"
    tokenizer = json.loads(tokenizer_file.read_text()) if tokenizer_file.exists() else {}
    rope = config.get("rope_parameters")
    if (not rope or "rope_theta" in config) and "dtype" not in config \
            and tokenizer.get("tokenizer_class") != "TokenizersBackend":
        return folder
    config = dict(config)
    if rope and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        if scaling.get("rope_type", "default") != "default":
            config["rope_scaling"] = scaling
        del config["rope_parameters"]
    if "dtype" in config:
        config.setdefault("torch_dtype", config.pop("dtype"))
    if tokenizer.get("tokenizer_class") == "TokenizersBackend":
        tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
    for path in folder.iterdir():
        if path.name not in ("config.json", "tokenizer_config.json"):
            (into / path.name).symlink_to(path.resolve())
    (into / "config.json").write_text(json.dumps(config, indent=2))
    if tokenizer:
        (into / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2))
    return into


QUESTION_AWARE = dict(rank_method="longllmlingua", condition_in_question="after_condition",
                      condition_compare=True, dynamic_context_compression_ratio=0.3,
                      context_budget="+100", reorder_context="original")


def main() -> None:
    mode, draft, items_path, out_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    if mode not in ("llmlingua", "longllmlingua"):
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory(prefix="llmlingua-draft-") as scratch:
        from llmlingua import PromptCompressor

        compressor = PromptCompressor(model_name=str(compatible_copy(draft, Path(scratch))),
                                      device_map="cpu")

        def compress_one(item: dict) -> str:
            draft_tokens = compressor.get_token_length(item["text"], add_special_tokens=False)
            budget = max(1, round(item["budget"] * draft_tokens / item["tokens_in"]))
            if mode == "llmlingua":
                context, options = item["text"], {}
            else:
                context, options = item["text"].split("\n\n"), QUESTION_AWARE
            return compressor.compress_prompt(context, question=item["query"], target_token=budget,
                                              concate_question=False, **options)["compressed_prompt"]

        serve(compress_one, items_path, out_path)


if __name__ == "__main__":
    main()
