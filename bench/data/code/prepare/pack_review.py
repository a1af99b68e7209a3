"""review.json (from build_review.py) -> <out>/review.json.xz."""
import json, lzma, sys
KEEP = ("repo", "sha", "parent", "path", "name", "qual", "new_name", "kind", "breaking", "old_params",
        "new_params", "format", "command", "diff", "dump", "call_sites", "headers", "site_headers", "tokens")
rows = [{k: r[k] for k in KEEP} for r in json.load(open("review.json"))]
with lzma.open(f"{sys.argv[1]}/review.json.xz", "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
    json.dump(rows, f, ensure_ascii=False)
print(len(rows))
