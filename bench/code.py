"""Code debugging on repository dumps: does the broken line survive compression?

A case is a dump of real Python files from one installed package the bundled draft
never saw (site-packages, not the standard library it is trained on): consecutive
files of the package from a random start, about N target tokens in all, written in a
dump format drawn at random among those `crossprefill_cli.text.dumps` reads. One function
gets an obvious bug, a flipped comparison (`<` becomes `>=`, `is` becomes `is not`,
...), at a random site between 10% and 90% of the dump (the always-kept head and
tail would flatter every method). The query names four functions of the dump, the
broken one and three others, in random order.

Each case is compressed at every keep rate with the `code` profile, and counted:

- broken line: the whole broken line (indentation included) is in the output;
- signatures: the `def` line of all four named functions is in the output;
- headers: every file header the dump writer wrote is in the output.

The `code` profile takes the definitions a query names before anything else
(`favour_named_definitions`), whatever the scorer; the rows marked "scores alone"
turn that off, to show what the scores themselves keep.

    python -m bench.code --tokens 6000 --rates 0.15,0.2,0.3 --cases 20
"""

import argparse
import ast
import random
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from crossprefill_cli import compress
from crossprefill_cli.models.loading import draft_defaults
from crossprefill_cli.pipeline.draft_source import DraftSource
from crossprefill_cli.pipeline.profiles import load_profile

from .methods import bench_cache, random_scorer
from .targets import bench_target

# the environment running the benchmark: these packages are dependencies of crossprefill
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
PACKAGES = ["click", "jinja2", "packaging", "markdown_it", "h11", "requests", "rich",
            "filelock", "anyio", "yaml", "idna", "pygments"]
FLIPS = {ast.Lt: ("<", ">="), ast.LtE: ("<=", ">"), ast.Gt: (">", "<="), ast.GtE: (">=", "<"),
         ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="), ast.Is: ("is", "is not"),
         ast.IsNot: ("is not", "is"), ast.In: ("in", "not in"), ast.NotIn: ("not in", "in")}
QUESTION = ("One of these functions has a deliberate bug, a flipped comparison: {names}. "
            "Which function is it, and which line is wrong?")


# Dump writers, after the tools' own output (header, file text, closing markup).
def _fence_language(path: str) -> str:
    return "python" if path.endswith(".py") else ""


def repomix_xml(files):
    body = "".join(f'<file path="{p}">\n{c}\n</file>\n\n' for p, c in files)
    return ("This file is a merged representation of a subset of the codebase, combined "
            "into a single document by Repomix.\n\n<files>\nThis section contains the contents "
            f"of the repository's files.\n\n{body}</files>\n")


def repomix_markdown(files):
    return ("This file is a merged representation of a subset of the codebase.\n\n# Files\n\n"
            + "".join(f"## File: {p}\n````{_fence_language(p)}\n{c}\n````\n\n" for p, c in files))


def repomix_plain(files):
    rule = "=" * 64
    return (f"This file is a merged representation of a subset of the codebase.\n\n{rule}\n"
            f"Files\n{rule}\n\n" + "".join(f"{'=' * 16}\nFile: {p}\n{'=' * 16}\n{c}\n\n"
                                           for p, c in files))


def files_to_prompt(files):
    return "".join(f"{p}\n---\n{c}\n\n---\n" for p, c in files)


def files_to_prompt_cxml(files):
    return ("<documents>\n" + "".join(
        f'<document index="{i}">\n<source>{p}</source>\n<document_content>\n{c}\n'
        "</document_content>\n</document>\n" for i, (p, c) in enumerate(files, 1))
        + "</documents>\n")


def gitingest(files):
    rule = "=" * 48
    tree = "".join(f"    ├── {p.rsplit('/', 1)[-1]}\n" for p, _ in files)
    return ("Directory structure:\n└── package/\n" + tree + "\n"
            + "".join(f"{rule}\nFILE: {p}\n{rule}\n{c}\n\n" for p, c in files))


def code2prompt(files):
    return ("Project Path: package\n\n"
            + "".join(f"`{p}`:\n\n```{_fence_language(p)}\n{c}\n```\n\n" for p, c in files))


WRITERS = [repomix_xml, repomix_markdown, repomix_plain, files_to_prompt, files_to_prompt_cxml,
           gitingest, code2prompt]
HEADERS = {  # the header each writer puts before a file's text
    repomix_xml: lambda p: f'<file path="{p}">\n',
    repomix_markdown: lambda p: f"## File: {p}\n````{_fence_language(p)}\n",
    repomix_plain: lambda p: f"{'=' * 16}\nFile: {p}\n{'=' * 16}\n",
    files_to_prompt: lambda p: f"{p}\n---\n",
    files_to_prompt_cxml: lambda p: f"<source>{p}</source>\n<document_content>\n",
    gitingest: lambda p: f"{'=' * 48}\nFILE: {p}\n{'=' * 48}\n",
    code2prompt: lambda p: f"`{p}`:\n\n```{_fence_language(p)}\n",
}


@dataclass
class Case:
    text: str
    query: str
    broken_line: str
    signatures: list[str]
    headers: list[str]
    writer: str


@dataclass
class Site:
    """A function, the first line of its signature, and a comparison that can be flipped."""

    file: int
    name: str
    signature: str
    line: int | None = None      # 0-based line of the comparison in its file
    old: str = ""
    new: str = ""


def package_files(package: str) -> list[tuple[str, str]]:
    root = SITE_PACKAGES / package
    files = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text("utf-8", errors="replace")
        if source.isascii() and source.strip():
            files.append((str(path.relative_to(SITE_PACKAGES)), source.rstrip("\n")))
    return files


def sites(index: int, source: str) -> list[Site]:
    """Every function of a file, with its first flippable comparison if it has one."""
    lines = source.split("\n")
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        site = Site(index, node.name, lines[node.lineno - 1])
        for inner in ast.walk(node):
            if isinstance(inner, ast.Compare) and len(inner.ops) == 1 \
                    and type(inner.ops[0]) in FLIPS and inner.left.end_lineno == inner.lineno \
                    and inner.comparators[0].lineno == inner.lineno:
                line = lines[inner.lineno - 1]
                old, new = FLIPS[type(inner.ops[0])]
                between = line[inner.left.end_col_offset:inner.comparators[0].col_offset]
                if between.strip() == old:
                    site.line = inner.lineno - 1
                    site.new = (line[:inner.left.end_col_offset] + between.replace(old, new, 1)
                                + line[inner.comparators[0].col_offset:])
                    site.old = line
                    break
        found.append(site)
    return found


def make_case(rng: random.Random, tokens: int, count) -> Case:
    while True:
        files = [f for f in package_files(rng.choice(PACKAGES))
                 if 150 <= count(f[1]) <= tokens // 2]
        if len(files) < 2:
            continue
        start = rng.randrange(len(files))
        chosen, total = [], 0
        while total < tokens and len(chosen) < len(files):
            chosen.append(files[(start + len(chosen)) % len(files)])
            total += count(chosen[-1][1])
        case = _inject(rng, chosen)
        if case is not None:
            return case


def _inject(rng: random.Random, files: list[tuple[str, str]]) -> Case | None:
    writer = rng.choice(WRITERS)
    original = writer(files)
    found = [s for i, (_, source) in enumerate(files) for s in sites(i, source)]
    unique = [s for s in found if original.count(s.signature) == 1
              and sum(t.name == s.name for t in found) == 1]
    broken = [s for s in unique if s.line is not None and original.count(s.old) == 1
              and 0.1 <= original.index(s.old) / len(original) <= 0.9]
    if not broken or len(unique) < 4:
        return None
    target = rng.choice(broken)
    others = rng.sample([s for s in unique if s is not target], 3)
    path, source = files[target.file]
    lines = source.split("\n")
    lines[target.line] = target.new
    files = files[:target.file] + [(path, "\n".join(lines))] + files[target.file + 1:]
    text = writer(files)
    if text.count(target.new) != 1:
        return None
    named = [target, *others]
    rng.shuffle(named)
    return Case(text, QUESTION.format(names=", ".join(s.name for s in named)), target.new,
                [s.signature for s in named], [HEADERS[writer](p) for p, _ in files],
                writer.__name__)


def run(args) -> None:
    # the engine a user's compress gets (numpy for the bundled draft)
    draft = DraftSource(args.draft, device=args.device, dtype="auto").load()
    target = bench_target(draft)
    code, alone = load_profile("code"), load_profile("code").with_overrides(
        favour_named_definitions=False)
    # name: (scorer, profile); None: random chunks, seeded per case
    methods = {f"crossprefill ({args.draft})": ("evidence", code),
               f"crossprefill ({args.draft}), scores alone": ("evidence", alone),
               f"attention ({args.draft}, the paper's scorer), scores alone": ("attention", alone),
               "lexical (BM25), scores alone": ("lexical", alone),
               "random chunks": (None, code),
               "random chunks, scores alone": (None, alone)}
    measures = ("broken line", "signatures", "headers")
    counts = {(m, r, k): 0 for m in methods for r in args.rates for k in measures}
    rng = random.Random(f"code-{args.tokens}")
    seconds = 0.0
    formats: dict[str, int] = {}
    for index in range(args.cases):
        case = make_case(rng, args.tokens, target.count)
        formats[case.writer] = formats.get(case.writer, 0) + 1
        for name, (scorer, profile) in methods.items():
            for rate in args.rates:
                started = time.perf_counter()
                result = compress(case.text, draft=draft, target=target, query=case.query,
                                  profile=profile, keep_rate=rate, lookahead=args.lookahead,
                                  scorer=scorer or random_scorer(index), cache=bench_cache())
                if name == f"crossprefill ({args.draft})":
                    seconds += time.perf_counter() - started
                counts[name, rate, "broken line"] += case.broken_line in result.text
                counts[name, rate, "signatures"] += all(s in result.text for s in case.signatures)
                counts[name, rate, "headers"] += all(h in result.text for h in case.headers)
        print(f"  case {index + 1}/{args.cases} done ({case.writer})", flush=True)
    print(f"\nCode debugging on repository dumps, {args.cases} cases of ~{args.tokens} target "
          f"tokens, target {target.name}, draft {args.draft}, profile code, lookahead "
          f"{args.lookahead or draft_defaults(args.draft)['lookahead']}")
    print("formats: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())) + "\n")
    header = [f"{k} @ {r:g}" for k in measures for r in args.rates]
    print("| method | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name in methods:
        cells = [f"{100 * counts[name, r, k] / args.cases:.0f}%" for k in measures
                 for r in args.rates]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nmean crossprefill time per compress (first rate scores, others reuse): "
          f"{seconds / (args.cases * len(args.rates)):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lookahead", type=int, help="lookahead queries (default: the draft's)")
    parser.add_argument("--tokens", type=int, default=6000)
    parser.add_argument("--rates", default="0.15,0.2,0.3",
                        type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--cases", type=int, default=20)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
