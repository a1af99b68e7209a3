"""Find commits that change a function's parameters or rename it: candidates.json."""
import difflib
import json
import sys
from common import REPOS, Blobs, git, in_pool, lang_of, defs_calls

out = {}
for repo in (sys.argv[1:] or REPOS):
    blobs = Blobs(repo)
    cands = []
    log = git(repo, "log", "--no-merges", "--format=%H %P", "HEAD").splitlines()
    for line in log:
        parts = line.split()
        if len(parts) != 2:
            continue
        sha, parent = parts
        changed = []
        for row in git(repo, "diff-tree", "-r", "--no-commit-id", parent, sha).splitlines():
            meta, path = row.split("\t", 1)
            a, b, ob, nb, status = meta.split()
            if status == "M" and in_pool(repo, path) and lang_of(path):
                changed.append((path, ob, nb))
        for path, ob, nb in changed:
            old, new = blobs.get(ob), blobs.get(nb)
            if old is None or new is None:
                continue
            r1, r2 = defs_calls(path, old), defs_calls(path, new)
            if r1 is None or r2 is None:
                continue
            d1 = {d.qual: d for d in r1[0]}
            d2 = {d.qual: d for d in r2[0]}
            if len(d1) != len(r1[0]) or len(d2) != len(r2[0]):
                # overloads/duplicate names in one file: keep only unique ones
                pass
            for q, d in d1.items():
                if q in d2 and d2[q].params != d.params:
                    n = d2[q]
                    removed = [p for p in d.params if p not in n.params]
                    added = [p for p in n.params if p not in d.params]
                    breaking = bool(removed) or any(p in n.required for p in added) or \
                        [p for p in d.params if p in n.params] != [p for p in n.params if p in d.params]
                    cands.append(dict(sha=sha, parent=parent, path=path, name=d.name, qual=q,
                                      new_name=d.name, kind="signature", old_params=list(d.params),
                                      new_params=list(n.params), breaking=breaking))
            gone = [q for q in d1 if q not in d2]
            born = [q for q in d2 if q not in d1]
            for q in gone:
                d = d1[q]
                prefix = q[: len(q) - len(d.name)]
                best, score = None, 0.0
                for q2 in born:
                    n = d2[q2]
                    if q2[: len(q2) - len(n.name)] != prefix:
                        continue
                    s = difflib.SequenceMatcher(None, d.body.replace(d.name, "@"),
                                                n.body.replace(n.name, "@")).ratio()
                    if s > score:
                        best, score = n, s
                if best is not None and score >= 0.8 and len(d.body.splitlines()) >= 2:
                    cands.append(dict(sha=sha, parent=parent, path=path, name=d.name, qual=q,
                                      new_name=best.name, kind="rename", old_params=list(d.params),
                                      new_params=list(best.params), breaking=True))
    print(repo, len(log), "commits,", len(cands), "candidates", flush=True)
    out[repo] = cands
json.dump(out, open("candidates.json" if not sys.argv[1:] else f"cand-{sys.argv[1].replace('/', '+')}.json", "w"), indent=1)
