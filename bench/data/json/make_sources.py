"""Rebuild the JSON documents of this folder from the raw tool outputs (see SOURCES.md).

Not imported by the benchmark. Run it with the raw outputs under RAW (the commands that
made them are in SOURCES.md) and the fetched bare repositories under MIRROR:

    python bench/data/json/make_sources.py /tmp/jraw /work/.mirror [NAME ...]

(with NAMEs, only those documents are rebuilt).
Each document is the tool's own text when it fits the size window; when it does not, an
array (or object) is cut and the document is re-serialised with the tool's own settings,
which is checked first to reproduce the untrimmed text byte for byte.
"""

import gzip
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW, MIRROR = Path(sys.argv[1]), Path(sys.argv[2])


def write(name, text):
    with gzip.open(HERE / f"{name}.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(text)
    print(f"{name}: {len(text.encode()):,} bytes", file=sys.stderr)


def pretty(data, indent):  # pip (rich print_json), npm (JSON.stringify(x, null, 2)) + newline
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def minified(data):  # JSON.stringify(x)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def same_serialiser(raw, dump):
    assert dump(json.loads(raw)) == raw, "re-serialising would change the tool's text"


def cut(items, dump_with, limit):
    """The longest prefix of items whose document stays under limit bytes."""
    keep = len(items)
    while keep and len(dump_with(items[:keep]).encode()) > limit:
        keep -= 1
    return items[:keep]


def pip_inspect(raw_name, name, limit=120_000, entry_limit=12_000):
    raw = (RAW / raw_name).read_text(encoding="utf-8")
    same_serialiser(raw, lambda d: pretty(d, 2))
    data = json.loads(raw)
    # whole READMEs in "description" make a few entries 30-200 kB: those are left out
    entries = [e for e in data["installed"] if len(pretty(e, 2)) <= entry_limit]
    data["installed"] = cut(entries, lambda es: pretty({**data, "installed": es}, 2), limit)
    write(name, pretty(data, 2))


def verbatim(raw_name, name):  # the tool's own text, under the size window as it is
    write(name, (RAW / raw_name).read_text(encoding="utf-8"))


def package_lock(raw_name, name, limit=100_000):
    raw = (RAW / raw_name).read_text(encoding="utf-8")
    same_serialiser(raw, lambda d: pretty(d, 2))
    data = json.loads(raw)
    items = list(data["packages"].items())
    keep = cut(items, lambda it: pretty({**data, "packages": dict(it)}, 2), limit)
    data["packages"] = dict(keep)
    write(name, pretty(data, 2))


def webpack_stats(raw_name, name, limit=110_000):
    raw = (RAW / raw_name).read_text(encoding="utf-8")
    same_serialiser(raw, minified)
    data = json.loads(raw)
    for chunk in data["chunks"]:  # the same module objects again, per chunk
        chunk["modules"] = []
    data["modules"] = cut(data["modules"], lambda ms: minified({**data, "modules": ms}), limit)
    write(name, minified(data))


def git(repo, *args):
    return subprocess.run(["git", "--git-dir", str(MIRROR / repo / "repo"), *args], check=True,
                          capture_output=True, text=True, encoding="utf-8", errors="replace").stdout


def commits(repo, skip):
    """Non-merge commits from HEAD~skip back: sha, author, dates, subject, numstat."""
    fmt = "%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%s%x1f"
    out = git(repo, "log", "--no-merges", f"--skip={skip}", "-n", "400", "--numstat",
              f"--format={fmt}", "HEAD")
    for block in out.split("\x1e")[1:]:
        *head, stat = block.split("\x1f")
        sha, parents, an, ae, ad, cn, ce, cd, subject = head
        files = []
        for line in stat.strip().splitlines():
            added, deleted, path = line.split("\t", 2)
            files.append({"path": path, "additions": None if added == "-" else int(added),
                          "deletions": None if deleted == "-" else int(deleted)})
        yield dict(sha=sha, parents=parents.split(), author=an, email=ae, date=ad,
                   committer=cn, committer_email=ce, committer_date=cd, subject=subject,
                   files=files)


def git_log_json(repo, name, skip, limit=110_000):
    records = [{"sha": c["sha"], "author": c["author"], "email": c["email"], "date": c["date"],
                "subject": c["subject"], "files_changed": c["files"][:25],
                "files_total": len(c["files"])} for c in commits(repo, skip)]
    write(name, json.dumps(cut(records, lambda rs: json.dumps(rs, indent=4, ensure_ascii=False),
                               limit), indent=4, ensure_ascii=False) + "\n")


def git_log_jsonl(repo, name, skip, limit=110_000):
    lines = [json.dumps({"sha": c["sha"], "author": c["author"], "email": c["email"],
                         "date": c["date"], "subject": c["subject"],
                         "files": [f["path"] for f in c["files"][:25]],
                         "insertions": sum(f["additions"] or 0 for f in c["files"]),
                         "deletions": sum(f["deletions"] or 0 for f in c["files"])},
                        ensure_ascii=False) for c in commits(repo, skip)]
    write(name, "\n".join(cut(lines, lambda ls: "\n".join(ls) + "\n", limit)) + "\n")


def github_commits(repo, name, skip, limit=110_000):
    """Shaped like GitHub's REST `GET /repos/{owner}/{repo}/commits/{sha}`, as a list, minified."""
    owner_repo = repo.replace("+", "/")
    records = []
    for c in commits(repo, skip):
        adds = sum(f["additions"] or 0 for f in c["files"])
        dels = sum(f["deletions"] or 0 for f in c["files"])
        records.append({
            "sha": c["sha"],
            "commit": {"author": {"name": c["author"], "email": c["email"], "date": c["date"]},
                       "committer": {"name": c["committer"], "email": c["committer_email"],
                                     "date": c["committer_date"]},
                       "message": c["subject"]},
            "html_url": f"https://github.com/{owner_repo}/commit/{c['sha']}",
            "parents": [{"sha": p} for p in c["parents"]],
            "stats": {"total": adds + dels, "additions": adds, "deletions": dels},
            "files": [{"filename": f["path"], "additions": f["additions"],
                       "deletions": f["deletions"]} for f in c["files"][:25]]})
    write(name, minified(cut(records, minified, limit)))


def git_tree_jsonl(repo, name, limit=110_000):
    lines = []
    for line in git(repo, "ls-tree", "-r", "-l", "HEAD").splitlines():
        meta, path = line.split("\t", 1)
        mode, kind, obj, size = meta.split()
        lines.append(json.dumps({"path": path, "mode": mode, "type": kind, "object": obj,
                                 "size": None if size == "-" else int(size)},
                                separators=(",", ":"), ensure_ascii=False))
    write(name, "\n".join(cut(lines, lambda ls: "\n".join(ls) + "\n", limit)) + "\n")


DOCUMENTS = {
    # dev
    "dev-pip-inspect-web.json": lambda n: pip_inspect("pipinspect_web.json", n),
    "dev-pip-inspect-devtools.json": lambda n: pip_inspect("pipinspect_dev.json", n),
    "dev-git-log-requests.json": lambda n: git_log_json("psf+requests", n, skip=0),
    "dev-git-log-click.jsonl": lambda n: git_log_jsonl("pallets+click", n, skip=0, limit=95_000),
    "dev-github-commits-tqdm.min.json":
        lambda n: github_commits("tqdm+tqdm", n, skip=0, limit=95_000),
    "dev-cyclonedx-sbom-docs.json": lambda n: verbatim("cyclonedx_docs.json", n),
    "dev-pipdeptree-docs.json": lambda n: verbatim("pipdeptree_docs.json", n),
    "dev-coverage-json-boltons.json": lambda n: verbatim("coverage_boltons_5.json", n),
    "dev-pytest-report-boltons.json": lambda n: verbatim("pytest_boltons_7.json", n),
    # test
    "test-npm-ls-web.json": lambda n: verbatim("npmls_web.json", n),
    "test-npm-ls-tooling.json": lambda n: verbatim("npmls_tool.json", n),
    "test-package-lock-web.json": lambda n: package_lock("lock_web.json", n),
    "test-package-lock-tooling.json": lambda n: package_lock("lock_tool.json", n),
    "test-webpack-stats-tooling.min.json":
        lambda n: webpack_stats("webpack_stats.json", n),
    "test-git-tree-pytest.jsonl":
        lambda n: git_tree_jsonl("pytest-dev+pytest", n, limit=90_000),
    "test-ruff-check-structlog.json": lambda n: verbatim("ruff_structlog_processors.json", n),
}

if __name__ == "__main__":
    for name in sys.argv[3:] or DOCUMENTS:
        DOCUMENTS[name](name)
