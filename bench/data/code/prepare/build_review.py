"""Build the review cases from the candidates: review.json (uncompressed, then packed)."""
import builtins
import json
import random
import sys
from common import (CAP, FLOOR, FORMATS, REPOS, Blobs, defs_calls, git, header_line, lang_of,
                    pool, select, write_dump)
from tok import count

PER_REPO = int(sys.argv[1]) if len(sys.argv) > 1 else 8
STOP = {"get", "set", "run", "send", "close", "read", "write", "format", "append", "update", "copy",
        "items", "keys", "values", "join", "split", "add", "pop", "call", "open", "start", "stop",
        "wait", "next", "iter", "print", "log", "emit", "info", "debug", "warning", "error",
        "exception", "encode", "decode", "load", "loads", "dump", "dumps", "parse", "match", "search",
        "sub", "replace", "strip", "lower", "upper", "sort", "filter", "map", "New", "String",
        "Error", "Errorf", "Name", "len", "push", "unwrap", "clone", "fmt", "then", "catch", "json",
        "text", "main", "init", "setup", "reset", "clear", "check", "invoke", "request", "render",
        "process", "wrap", "context", "new", "from", "into", "as_ref", "build", "execute", "handle",
        "Execute", "Run", "test", "fn", "fetch", "Fatal", "Fatalf", "Println", "Printf", "Sprintf"}
BUILTIN_ATTRS = set()
for t in (dict, list, str, bytes, set, object, int, float, tuple):
    BUILTIN_ATTRS |= set(dir(t))
BUILTIN_ATTRS |= set(dir(builtins))

cands = {}
import glob
for f in glob.glob("cand-*.json"):
    cands.update(json.load(open(f)))

rows = []
for repo in REPOS:
    if repo not in cands:
        continue
    blobs = Blobs(repo)
    rng = random.Random(f"review:{repo}")
    seen, pre = set(), []
    for c in cands[repo]:
        name = c["name"]
        if name.startswith(("test", "Test", "_test")) or (name.startswith("__") and name.endswith("__")):
            continue
        if name in STOP or len(name) < 4 or (lang_of(c["path"]) == "python" and name in BUILTIN_ATTRS):
            continue
        if lang_of(c["path"]) != "python" and c["kind"] == "signature" and \
                len(c["old_params"]) == len(c["new_params"]):
            continue  # positional-only languages: a renamed parameter breaks no caller
        key = (c["sha"], name)
        if key in seen:
            continue
        seen.add(key)
        pre.append(c)
    rng.shuffle(pre)
    pre.sort(key=lambda c: not c["breaking"])  # breaking changes first, random within
    kept = []
    parsed = {}
    for c in pre:
        if len(kept) >= PER_REPO:
            break
        if any(k["sha"] == c["sha"] for k in kept):
            continue
        files = pool(repo, c["parent"], blobs, count)
        lang = lang_of(c["path"])
        if c["path"] not in files:
            continue
        ndefs, sites = 0, []
        for path, text in files.items():
            if lang_of(path) != lang:
                continue
            k = (path, hash(text))
            if k not in parsed:
                parsed[k] = defs_calls(path, text)
            r = parsed[k]
            if r is None:
                continue
            defs, calls = r
            ndefs += sum(d.name == c["name"] for d in defs)
            deflines = {d.start for d in defs if d.name == c["name"]}
            lines = text.splitlines()
            for nm, ln in calls:
                if nm == c["name"] and ln not in deflines:
                    sites.append((path, ln, lines[ln - 1]))
        sites = sorted(set(sites))
        if ndefs != 1 or not 2 <= len(sites) <= 30:
            continue
        diff = git(repo, "diff", c["parent"], c["sha"], "--", c["path"])
        dtok = count(diff)
        if dtok > 6000:
            continue
        must = [c["path"]] + sorted({p for p, _, _ in sites} - {c["path"]})
        sel = select(files, must, count, random.Random(c["sha"]), cap=CAP - dtok)
        if sel is None:
            continue
        chosen, total = sel
        if total < FLOOR:
            continue
        first = (len(rows) + len(kept)) % len(FORMATS)
        for fmt in FORMATS[first:] + FORMATS[:first]:
            # repomix's security check leaves out files it suspects of secrets: next writer
            cmd, dump = write_dump(chosen, fmt, repo.split("/")[1])
            headers = [header_line(fmt, p) for p in sorted(chosen)]
            ok = all(("\n" + h + "\n") in ("\n" + dump) for h in headers) and \
                all(line in dump for _, _, line in sites)
            if ok:
                break
            print("  check failed", repo, c["sha"][:8], c["name"], fmt, file=sys.stderr)
        if not ok:
            continue
        c = dict(c, repo=repo, format=fmt, command=cmd, diff=diff, dump=dump,
                 call_sites=[list(s) for s in sites], headers=headers,
                 site_headers=[header_line(fmt, p) for p in must],
                 tokens=count(diff) + count(dump))
        kept.append(c)
        print(f"  {repo} {c['sha'][:8]} {c['kind']} {c['qual']} sites={len(sites)} files={len(chosen)} "
              f"tokens={c['tokens']} {fmt}", flush=True)
    print(repo, len(pre), "filtered candidates ->", len(kept), "cases", flush=True)
    rows.extend(kept)
json.dump(rows, open("review.json", "w"))
