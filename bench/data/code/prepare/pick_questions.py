"""One dump per repository at HEAD and a seeded random pick of functions to ask about."""
import json
import random
import sys
from common import FORMATS, REPOS, Blobs, defs_calls, git, header_line, lang_of, pool, select, write_dump
from tok import count

PER_REPO = int(sys.argv[1]) if len(sys.argv) > 1 else 8
out = {}
for i, repo in enumerate(REPOS):
    blobs = Blobs(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    files = pool(repo, head, blobs, count)
    rng = random.Random(f"questions:{repo}")
    chosen, total = select(files, [], count, rng)
    fmt = FORMATS[(i + 3) % len(FORMATS)]
    cmd, dump = write_dump(chosen, fmt, repo.split("/")[1])
    cands = []
    for path in sorted(chosen):
        if lang_of(path) is None:
            continue
        r = defs_calls(path, chosen[path])
        if r is None:
            continue
        lines = chosen[path].splitlines()
        for d in r[0]:
            n = d.end - d.start + 1
            if not 5 <= n <= 60 or len(d.name) < 5 or d.name.startswith("test") or \
                    (d.name.startswith("__") and d.name.endswith("__")):
                continue
            text = "\n".join(lines[d.start - 1:d.end])
            if "<locals>" in d.qual or sum(x.qual == d.qual for x in r[0]) > 1:
                continue
            code = [x.strip() for x in text.splitlines()[1:]]
            code = [x for x in code if x and not x.startswith(("#", "//", '"""', "*", "/*"))]
            if len(code) < 4 or text.count('"""') > 2:
                continue
            if text not in dump or dump.count(text) > 1:
                continue
            cands.append(dict(repo=repo, commit=head, path=path, function=d.qual, name=d.name,
                              start=d.start, end=d.end, is_test=path.startswith("test")))
    src = [c for c in cands if not c["is_test"]]
    rng.shuffle(src)
    picks = src[:PER_REPO]
    out[repo] = dict(commit=head, format=fmt, command=cmd, files=sorted(chosen), tokens=count(dump),
                     headers=[header_line(fmt, p) for p in sorted(chosen)], picks=picks, dump=dump)
    print(repo, head[:8], fmt, len(chosen), "files", count(dump), "tokens", len(cands), "candidates",
          flush=True)
json.dump(out, open("questions_pool.json", "w"))
