"""JSON tool output: is the one record a question asks about kept?

Material: real JSON written by real tools (pip inspect, cyclonedx-py, pipdeptree, coverage,
pytest-json-report, npm ls, package-lock.json, webpack --json, ruff) and API-shaped JSON
built from fetched repositories' git metadata, stored gzipped under `bench/data/json/`
(SOURCES.md there says where each came from and how it was made). Pretty-printed (indent
2 and 4), one-line, minified and JSON Lines documents, 7k-39k o200k tokens.

Split by tool, so that no kind of document is in both:

- dev: `pip inspect` (two venvs), a CycloneDX SBOM and a `pipdeptree --json-tree` of a
  third venv, `coverage json` and `pytest --json-report` of boltons' test suite, commit
  logs of psf/requests (JSON, indent 4), of pallets/click (JSON Lines) and of tqdm/tqdm
  (GitHub REST-shaped, minified);
- test: `npm ls --json --all` (two projects), their `package-lock.json`, webpack's
  `--json` stats (minified), a `git ls-tree` listing of pytest-dev/pytest (JSON Lines)
  and `ruff check --output-format json` on a structlog module.

A case is one document followed by one question in plain words about ONE record (a
package, a commit, a lockfile entry, a bundled module, a file), e.g. "Which version of
requests is installed?". The record is drawn with a seeded RNG among those lying wholly
between 10% and 90% of the document, so neither truncation nor the question's position
gives it away; each document yields up to `PER_DOCUMENT` cases, each about a different
record, with a question type drawn at random among the kind's templates.

`checks` are verbatim slices of the document: the record's identifying member and the
asked member(s), each as it is written there, `"key": value` (or `"key":value` when
minified; a nested value spans its lines and indentation). A JSON parser that keeps
offsets finds them; no check is retyped. A check must prove that the asked record was
kept: every occurrence of it in the prompt must lie inside that record. A member that
repeats elsewhere (`"overridden": false`, a version shared by two packages) is widened to
the shortest run of adjacent members of the same object, or the run from the record's
identifying member to it, that satisfies this; a keyed record (`"node_modules/x": {...}`,
a dependency in `npm ls`) is identified by its key's opening `"x": {`. A check longer than
`record_cases.MAX_CHECK` characters, or one that no widening makes provable, makes the question type
unusable for that record, and another is tried; a check contained in another is dropped.
"""

import re
from json.decoder import scanstring
from pathlib import Path

from bench import record_cases
from bench.record_cases import Member, Node, Record, objects, proves
from bench.tasks import TaskCase

DATA = Path(__file__).resolve().parent / "data" / "json"
PER_DOCUMENT = 6

# --- a JSON parser that keeps offsets ---------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def parse(text: str, start: int = 0) -> Node:
    return _value(text, _WS.match(text, start).end())


def _value(text: str, i: int) -> Node:
    char = text[i]
    if char == "{":
        node = Node("object", i, i)
        j = _WS.match(text, i + 1).end()
        if text[j] == "}":
            node.end = j + 1
            return node
        while True:
            if text[j] != '"':
                raise ValueError(f"expected a key at {j}")
            key, k = scanstring(text, j + 1)
            k = _WS.match(text, k).end()
            if text[k] != ":":
                raise ValueError(f"expected ':' at {k}")
            child = _value(text, _WS.match(text, k + 1).end())
            node.members.append(Member(key, j, child, node.members, len(node.members)))
            k = _WS.match(text, child.end).end()
            if text[k] == "}":
                node.end = k + 1
                return node
            if text[k] != ",":
                raise ValueError(f"expected ',' or '}}' at {k}")
            j = _WS.match(text, k + 1).end()
    if char == "[":
        node = Node("array", i, i)
        j = _WS.match(text, i + 1).end()
        if text[j] == "]":
            node.end = j + 1
            return node
        while True:
            child = _value(text, j)
            node.items.append(child)
            k = _WS.match(text, child.end).end()
            if text[k] == "]":
                node.end = k + 1
                return node
            if text[k] != ",":
                raise ValueError(f"expected ',' or ']' at {k}")
            j = _WS.match(text, k + 1).end()
    if char == '"':
        value, end = scanstring(text, i + 1)
        return Node("scalar", i, end, value)
    for literal, value in _LITERALS.items():
        if text.startswith(literal, i):
            return Node("scalar", i, i + len(literal), value)
    match = _NUMBER.match(text, i)
    if not match:
        raise ValueError(f"unexpected {char!r} at {i}")
    number = match.group()
    return Node("scalar", i, match.end(), float(number) if any(c in number for c in ".eE")
                else int(number))


def parse_document(text: str, lines: bool) -> list[Node]:
    """A JSON Lines document's lines, or a JSON document as one node."""
    if not lines:
        return [parse(text)]
    nodes, offset = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            nodes.append(parse(text, offset))
        offset += len(line)
    return nodes


# --- records and questions --------------------------------------------------------------


def _pip_inspect(root):
    for node in objects(root[0].get("installed").node.items):
        yield Record(node, node.get("metadata.name").node.value, ids=("metadata.name",))


def _commits(root):
    nodes = root[0].items if len(root) == 1 and root[0].kind == "array" else root
    for node in objects(nodes):
        yield Record(node, node.get("sha").node.value[:10], ids=("sha", "html_url"))


def _npm_ls(root):
    def walk(node, parent):
        deps = node.get("dependencies")
        if deps is None or deps.node.kind != "object":
            return
        for member in deps.node.members:
            if member.node.kind == "object" and member.node.get("version"):
                yield Record(member.node, f"{member.key} (a dependency of {parent})",
                             keyed=member)
                yield from walk(member.node, member.key)

    yield from walk(root[0], root[0].get("name").node.value)


def _package_lock(root):
    for member in root[0].get("packages").node.members:
        if member.key and member.node.kind == "object":
            names = member.key.split("node_modules/")[1:]
            label = names[-1].rstrip("/")
            if len(names) > 1:
                label += f" (the copy nested under {names[-2].rstrip('/')})"
            yield Record(member.node, label, keyed=member)


def _webpack(root):
    for node in objects(root[0].get("modules").node.items):
        yield Record(node, node.get("name").node.value,
                     ids=("name", "nameForCondition", "identifier"))


def _tree(root):
    for node in objects(root):
        yield Record(node, node.get("path").node.value, ids=("path",))


def _sbom(root):
    for node in objects(root[0].get("components").node.items):
        yield Record(node, node.get("name").node.value, ids=("bom-ref", "purl", "name"))
    for node in objects(root[0].get("dependencies").node.items):
        yield Record(node, node.get("ref").node.value.split("==")[0], ids=("ref",),
                     questions=SBOM_DEPENDS)


def _pipdeptree(root):
    def walk(nodes, parent):
        for node in objects(nodes):
            name = node.get("package_name").node.value
            label = f"{name} (a dependency of {parent})" if parent else name
            yield Record(node, label, ids=("key", "package_name"))
            deps = node.get("dependencies")
            if deps is not None and deps.node.kind == "array":
                yield from walk(deps.node.items, name)

    yield from walk(root[0].items, None)


def _coverage(root):
    for file in root[0].get("files").node.members:
        for part, what in (("functions", "the function {}() in {}"), ("classes", "the class {} in {}")):
            table = file.node.get(part)
            for member in table.node.members if table is not None else ():
                if member.key and member.node.kind == "object":
                    yield Record(member.node, what.format(member.key, file.key), keyed=member)


def _pytest_report(root):
    for node in objects(root[0].get("tests").node.items):
        yield Record(node, node.get("nodeid").node.value, ids=("nodeid",))


def _ruff(root):
    where = [(n.get("code").node.value, n.get("location.row").node.value)
             for n in objects(root[0].items)]
    for node, (code, row) in zip(objects(root[0].items), where):
        if where.count((code, row)) == 1:  # "the E501 issue on line 12" names one
            yield Record(node, f"the {code} issue on line {row}",
                         ids=("location", "end_location", "noqa_row"))


# (question, asked member paths); "{x}" is the record's label, "{what}" the document
PIP = [("Which version of {x} is installed?", ("metadata.version",)),
       ("In the pip inspect output, what version is the {x} package?", ("metadata.version",)),
       ("What does package {x} require?", ("metadata.requires_dist",)),
       ("List the dependencies that {x} declares.", ("metadata.requires_dist",)),
       ("What is the one-line summary of {x}?", ("metadata.summary",)),
       ("Which Python versions does {x} support?", ("metadata.requires_python",)),
       ("Where on disk is the metadata of {x}?", ("metadata_location",)),
       ("Which optional extras can {x} be installed with?", ("metadata.provides_extra",)),
       ("Who maintains {x}, and at what email address?", ("metadata.author_email",)),
       ("What license is {x} under?", ("metadata.license",)),
       ("What keywords describe {x}?", ("metadata.keywords",))]
GIT_LOG = [("Who authored commit {x} and when?", ("author", "date")),
           ("Who wrote commit {x}?", ("author",)),
           ("What is the subject line of commit {x}?", ("subject",)),
           ("What was commit {x} about?", ("subject",)),
           ("Which files did commit {x} change?", ("files_changed",)),
           ("Which files did commit {x} touch?", ("files",)),
           ("How many files did commit {x} change in total?", ("files_total",)),
           ("What email address did the author of commit {x} use?", ("email",)),
           ("How many lines did commit {x} insert and delete?", ("insertions", "deletions")),
           ("On what date was commit {x} authored?", ("date",))]
GITHUB = [("Who authored commit {x} and when?", ("commit.author.name", "commit.author.date")),
          ("What is the commit message of {x}?", ("commit.message",)),
          ("What is the parent of commit {x}?", ("parents",)),
          ("How many lines did commit {x} add and remove?", ("stats",)),
          ("Who committed {x}, and with what email?", ("commit.committer",)),
          ("Which files does commit {x} modify?", ("files",))]
NPM_LS = [("Which version of {x} does npm ls show?", ("version",)),
          ("What version of {x} is installed in this npm project?", ("version",)),
          ("Is {x} overridden in the npm dependency tree?", ("overridden",)),
          ("What does {x} depend on in the npm ls tree?", ("dependencies",))]
LOCK = [("What version of {x} is pinned in package-lock.json?", ("version",)),
        ("Which version of {x} does the lockfile record?", ("version",)),
        ("What is the integrity hash recorded for {x}?", ("integrity",)),
        ("Under which license is {x} published, according to the lockfile?", ("license",)),
        ("What are the dependencies of {x} in the lockfile?", ("dependencies",)),
        ("Which Node.js versions does {x} support?", ("engines",)),
        ("What peer dependencies does {x} declare?", ("peerDependencies",)),
        ("Where can one fund the maintainers of {x}?", ("funding",)),
        ("Which executables does {x} install?", ("bin",))]
WEBPACK = [("How many bytes is the module {x} in the webpack build?", ("size",)),
           ("Which module pulled {x} into the bundle?", ("issuerName",)),
           ("What module id did webpack assign to {x}?", ("id",)),
           ("What exports does {x} provide?", ("providedExports",)),
           ("How deep below the entry point is {x}?", ("depth",)),
           ("Why could webpack not optimise {x} further?", ("optimizationBailout",))]
TREE = [("What is the size in bytes of {x} in the pytest repository?", ("size",)),
        ("How large is the file {x}?", ("size",)),
        ("What is the git blob hash of {x}?", ("object",)),
        ("What file mode does {x} have in git?", ("mode",))]


def _wordings(by_member: dict) -> list:
    """(question, asked member paths) for each wording of each asked member."""
    return [(question, paths) for paths, questions in by_member.items() for question in questions]


SBOM = _wordings({
    ("version",): ["Which version of {x} is listed in the SBOM?"],
    ("licenses",): ["What license is {x} released under?"],
    ("description",): ["What is {x} for?", "In one sentence, what does {x} do?"],
    ("purl",): ["What is the package URL of {x}?"]})
SBOM_DEPENDS = _wordings({("dependsOn",): [
    "Which packages does {x} depend on, according to the SBOM?",
    "What does {x} need installed alongside it?"]})
PIPDEPTREE = _wordings({
    ("installed_version",): ["Which version of {x} is installed?",
                             "What version of {x} is actually in the environment?"],
    ("required_version",): ["Which versions of {x} are acceptable?",
                            "What version constraint applies to {x}?"],
    ("dependencies",): ["What does {x} pull in?"]})
COVERAGE = _wordings({
    ("summary.percent_covered",): ["How much of {x} did the tests run?",
                                   "What percentage of {x} is covered?"],
    ("missing_lines",): ["Which lines of {x} were never run by the tests?"],
    ("start_line",): ["On which line does {x} start?"],
    ("summary.num_statements",): ["How many statements are in {x}?"],
    ("missing_branches",): ["Which branches in {x} were never taken?"]})
PYTEST_REPORT = _wordings({
    ("call.duration",): ["How long did the test {x} take to run?"],
    ("setup.duration",): ["How long did setting up {x} take?"],
    ("teardown.duration",): ["How much time went into tearing down {x}?"],
    ("lineno",): ["On which line is the test {x} written?"],
    ("keywords",): ["What markers and keywords does {x} carry?"],
    ("outcome",): ["Did {x} pass?"]})
RUFF = _wordings({
    ("message",): ["What does ruff say about {x}?", "What is the message for {x}?"],
    ("fix",): ["Can ruff fix {x} on its own, and how?"],
    ("end_location",): ["Where does the code flagged by {x} end?"],
    ("name",): ["Which rule is behind {x}, by name?"],
    ("url",): ["Where is the rule behind {x} documented?"]})

KINDS = {  # file-name part: (records, questions)
    "pip-inspect": (_pip_inspect, PIP),
    "git-log": (_commits, GIT_LOG),
    "github-commits": (_commits, GITHUB),
    "npm-ls": (_npm_ls, NPM_LS),
    "package-lock": (_package_lock, LOCK),
    "webpack-stats": (_webpack, WEBPACK),
    "git-tree": (_tree, TREE),
    "cyclonedx-sbom": (_sbom, SBOM),
    "pipdeptree": (_pipdeptree, PIPDEPTREE),
    "coverage-json": (_coverage, COVERAGE),
    "pytest-report": (_pytest_report, PYTEST_REPORT),
    "ruff-check": (_ruff, RUFF),
}


# --- checks -----------------------------------------------------------------------------


def _member_check(text: str, member: Member, record: Record):
    """The member's text, or the shortest widening of it that proves the record."""
    plain = text[member.start:member.end]
    if proves(text, plain, record):
        return plain
    runs, siblings, i = [], member.siblings, member.index
    if record.keyed and member in record.node.members:
        runs.append(text[record.keyed.start:member.end])
    for path in record.ids:
        ident = record.node.get(path)
        if ident is not None and ident.siblings is siblings:
            lo, hi = sorted((ident.index, i))
            runs.append(text[siblings[lo].start:siblings[hi].end])
    for lo, hi in ((i, i + 1), (i - 1, i), (i, i + 2), (i - 2, i)):
        if 0 <= lo and hi < len(siblings):
            runs.append(text[siblings[lo].start:siblings[hi].end])
    return next((run for run in sorted(runs, key=len) if proves(text, run, record)), None)


# --- cases (`bench.record_cases`) --------------------------------------------------------

FORMAT = record_cases.Format(
    "json", DATA, KINDS, lambda doc, name: parse_document(doc, name.endswith(".jsonl")),
    lambda text, record: record.keyed.node.start + 1,
    _member_check, per_document=PER_DOCUMENT)


def _kind(path: Path):
    return next(value for part, value in KINDS.items() if part in path.name)


def cases(split: str, seed: int = 0) -> list[TaskCase]:
    """Up to PER_DOCUMENT cases per document of the split, the same for the same seed."""
    return [case for path in FORMAT.documents(split)
            for case in FORMAT.document_cases(path, seed, _kind(path))]


if __name__ == "__main__":
    import sys

    record_cases.show(cases, sys.argv[1:])
