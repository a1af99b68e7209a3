"""questions.json and questions_dumps.json.xz from the frozen pick and the written questions."""
import json, lzma, re, subprocess, sys
from common import gitdir
OUT = sys.argv[1]
pool = json.load(open("questions_pool.json"))
rows = []
for line in open("questions.txt", encoding="utf-8"):
    if not line.strip():
        continue
    repo, idx, question = line.rstrip("\n").split("|", 2)
    e = pool[repo]
    p = e["picks"][int(idx)]
    text = subprocess.run(["git", "--git-dir", gitdir(repo), "show", f"{e['commit']}:{p['path']}"],
                          capture_output=True, check=True).stdout.decode()
    definition = "\n".join(text.splitlines()[p["start"] - 1:p["end"]])
    assert e["dump"].count(definition) == 1, (repo, idx)
    name = p["name"].lstrip("#")
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
    forms = {name.lower(), name.replace("_", " ").strip().lower(), words.replace("_", " ").strip()}
    assert not any(f in question.lower() for f in forms), (repo, idx, forms)
    rows.append(dict(repo=repo, commit=e["commit"], path=p["path"], function=p["function"], name=p["name"],
                     lines=[p["start"], p["end"]], question=question, definition=definition))
json.dump(rows, open(f"{OUT}/questions.json", "w", encoding="utf-8"), indent=1, ensure_ascii=False)
dumps = {r: {k: e[k] for k in ("commit", "format", "command", "files", "tokens", "headers", "dump")}
         for r, e in pool.items()}
with lzma.open(f"{OUT}/questions_dumps.json.xz", "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
    json.dump(dumps, f, ensure_ascii=False)
from collections import Counter
print(len(rows), Counter(r["repo"] for r in rows))
