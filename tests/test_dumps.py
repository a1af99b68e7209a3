"""Repository dumps and code: formats, structure, and what compression keeps of them."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from property_settings import examples
from structure import assert_verbatim_structure

from crossprefill_cli import compress
from crossprefill_cli.errors import UsageError
from crossprefill_cli.pipeline.profiles import load_profile
from crossprefill_cli.text import dumps, outline, query
from crossprefill_cli.units import cutting, layout

PYTHON = '''\
import os


class Store:
    """Keeps records."""

    def __init__(self, root):
        self.root = root
        self.items = {}

    def put(self, key, value):
        if key in self.items:
            raise KeyError(key)
        self.items[key] = value

    def get(self, key):
        return self.items[key]


def largest(values):
    best = None
    for value in values:
        if best is None or value > best:
            best = value
    return best
'''

GO = '''\
package main

func Add(a int, b int) int {
    total := a + b
    return total
}

func main() {
    println(Add(1, 2))
}
'''

SQL = "SELECT id, name\nFROM users\nWHERE active = 1;\n"


# The writers print what the tools print (see the real dumps in data/dumps/): a file's
# text (these end with a newline) and, but for repomix, which trims it, one more newline.
def repomix_xml(files):
    body = "".join(f'<file path="{p}">\n{c}</file>\n\n' for p, c in files)
    return ("This file is a merged representation of the entire codebase.\n\n"
            "<directory_structure>\nsrc/\n</directory_structure>\n\n<files>\n"
            "This section contains the contents of the repository's files.\n\n"
            f"{body}</files>\n")


def repomix_markdown(files):
    return "# Files\n\n" + "".join(f"## File: {p}\n```{p.rsplit('.', 1)[-1]}\n{c}```\n\n"
                                   for p, c in files)


def repomix_plain(files):
    return ("=" * 64 + "\nFiles\n" + "=" * 64 + "\n\n"
            + "".join(f"{'=' * 16}\nFile: {p}\n{'=' * 16}\n{c}\n" for p, c in files))


def files_to_prompt(files):
    return "".join(f"{p}\n---\n{c}\n\n---\n" for p, c in files)


def files_to_prompt_cxml(files):
    return ("<documents>\n" + "".join(
        f'<document index="{i}">\n<source>{p}</source>\n<document_content>\n{c}\n'
        "</document_content>\n</document>\n" for i, (p, c) in enumerate(files, 1))
        + "</documents>\n")


def gitingest(files):
    return ("Directory structure:\n└── repo/\n    ├── store.py\n\n"
            + "\n".join(f"{'=' * 48}\nFILE: {p}\n{'=' * 48}\n{c}\n\n" for p, c in files))


def code2prompt(files):
    return ("Project Path: repo\n\nSource Tree:\n\n```\nrepo\n```\n\n"
            + "".join(f"`{p}`:\n\n```{p.rsplit('.', 1)[-1]}\n{c}\n```\n\n" for p, c in files))


def code2prompt_pypi(files):
    stamp = "2024-05-01 10:00:00"
    return ("# Table of Contents\n" + "".join(f"- {p}\n" for p, _ in files) + "\n" + "".join(
        f"## File: {p}\n\n- Extension: .{p.rsplit('.', 1)[-1]}\n"
        f"- Language: {p.rsplit('.', 1)[-1]}\n- Size: {len(c)} bytes\n- Created: {stamp}\n"
        f"- Modified: {stamp}\n\n### Code\n\n```{p.rsplit('.', 1)[-1]}\n{c}\n```\n\n"
        for p, c in files))


def files_to_prompt_markdown(files):
    return "".join(f"{p}\n```{p.rsplit('.', 1)[-1]}\n{c}\n```\n" for p, c in files)


FILES = [("src/store.py", PYTHON), ("cmd/main.go", GO), ("db/users.sql", SQL)]
WRITERS = {"repomix-xml": repomix_xml, "repomix-markdown": repomix_markdown,
           "repomix-plain": repomix_plain, "files-to-prompt": files_to_prompt,
           "files-to-prompt-cxml": files_to_prompt_cxml, "gitingest": gitingest,
           "code2prompt": code2prompt, "code2prompt-pypi": code2prompt_pypi,
           "files-to-prompt-markdown": files_to_prompt_markdown}
HEADERS = {  # each format's header of src/store.py, written out by hand
    "repomix-xml": '<file path="src/store.py">\n',
    "repomix-markdown": "## File: src/store.py\n```py\n",
    "repomix-plain": f"{'=' * 16}\nFile: src/store.py\n{'=' * 16}\n",
    "files-to-prompt": "src/store.py\n---\n",
    "files-to-prompt-cxml": '<document index="1">\n<source>src/store.py</source>\n<document_content>\n',
    "gitingest": f"\n{'=' * 48}\nFILE: src/store.py\n{'=' * 48}\n",
    "code2prompt": "`src/store.py`:\n\n```py\n",
    "code2prompt-pypi": (f"## File: src/store.py\n\n- Extension: .py\n- Language: py\n"
                         f"- Size: {len(PYTHON)} bytes\n- Created: 2024-05-01 10:00:00\n"
                         "- Modified: 2024-05-01 10:00:00\n\n### Code\n\n```py\n"),
    "files-to-prompt-markdown": "src/store.py\n```py\n",
}


@pytest.mark.parametrize("name", WRITERS)
def test_every_format_is_detected_with_its_files(name):
    text = WRITERS[name](FILES)
    dump = dumps.detect(text)
    assert dump.format == name
    assert [(f.path, f.language) for f in dump.files] == [
        ("src/store.py", "python"), ("cmd/main.go", "go"), ("db/users.sql", "sql")]
    store = dump.files[0]
    assert text[store.start:store.body_start] == HEADERS[name]
    assert text[store.body_start:store.body_end] == PYTHON
    assert all(a.end <= b.start for a, b in zip(dump.files, dump.files[1:]))


@pytest.mark.parametrize("name, footer", [
    ("repomix-xml", "</file>\n\n"), ("repomix-markdown", "```\n\n"), ("repomix-plain", "\n"),
    ("files-to-prompt", "\n\n---\n"),
    ("files-to-prompt-cxml", "\n</document_content>\n</document>\n"),
    ("files-to-prompt-markdown", "\n```\n"), ("gitingest", "\n\n"),
    ("code2prompt", "\n```\n\n"), ("code2prompt-pypi", "\n```\n\n")])
def test_footers_are_the_closing_markup_and_the_blank_lines_after_it(name, footer):
    text = WRITERS[name](FILES)
    store = dumps.detect(text).files[0]
    assert text[store.body_end:store.end] == footer


@pytest.mark.parametrize("name", WRITERS)
def test_windows_line_endings_are_read_too(name):
    text = WRITERS[name](FILES).replace("\n", "\r\n")
    dump = dumps.detect(text)
    assert dump.format == name
    assert [f.path for f in dump.files] == ["src/store.py", "cmd/main.go", "db/users.sql"]
    store = dump.files[0]
    assert text[store.start:store.body_start] == HEADERS[name].replace("\n", "\r\n")


def test_the_xml_frame_is_found():
    text = repomix_xml(FILES)
    assert [text[a:b] for a, b in dumps.detect(text).frame] == ["<files>\n", "</files>\n"]


def test_closing_markup_inside_a_file_does_not_end_it():
    inner = 'html = """\n</file>\n"""\n'
    text = repomix_xml([("a.py", inner), ("b.py", "x = 1\n")])
    first = dumps.detect(text).files[0]
    assert text[first.body_start:first.body_end] == inner


def test_unrecognised_input_is_one_anonymous_file():
    assert dumps.detect("Just some notes.\nNothing else here.\n") == dumps.ANONYMOUS
    assert dumps.anonymous_language(PYTHON) == "python"
    assert dumps.anonymous_language("Just some notes.\n") is None
    # CPython's parser gives up on this with a MemoryError: not Python, not a crash
    assert dumps.anonymous_language("x " * 3000) is None


# --- real dumps of data/dumps/sample/, written by the tools themselves (see its README) ---

REAL = Path(__file__).parent / "data" / "dumps"
SAMPLE = {path.relative_to(REAL / "sample").as_posix(): path.read_text("utf-8")
          for path in sorted((REAL / "sample").rglob("*")) if path.is_file()}
FENCE_TAGS = {"README.md": "markdown", "src/cli.js": "javascript", "src/store.py": "python"}
REPOMIX_ORDER = ["src/cli.js", "src/store.py", "README.md"]  # the order repomix chose
SORTED = ["sample/README.md", "sample/src/cli.js", "sample/src/store.py"]
STAMP = "2026-12-01 08:59:17"  # code2prompt prints the sample's file times


def code2prompt_pypi_header(path):
    name = path.removeprefix("sample/")
    return (f"## File: {path}\n\n- Extension: .{name.rsplit('.', 1)[-1]}\n"
            f"- Language: {FENCE_TAGS[name]}\n- Size: {len(SAMPLE[name])} bytes\n"
            f"- Created: {STAMP}\n- Modified: {STAMP}\n\n### Code\n\n```{FENCE_TAGS[name]}\n")


REAL_DUMPS = {  # fixture: format, paths, header and footer of a path, frame
    "repomix.xml": ("repomix-xml", REPOMIX_ORDER, lambda p: f'<file path="{p}">\n',
                    lambda p: "</file>\n\n", ["<files>\n", "</files>\n"]),
    "repomix.md": ("repomix-markdown", REPOMIX_ORDER,
                   lambda p: f"## File: {p}\n````{FENCE_TAGS[p]}\n",
                   lambda p: "````\n" if p == "README.md" else "````\n\n", []),
    "repomix.txt": ("repomix-plain", REPOMIX_ORDER,
                    lambda p: f"{'=' * 16}\nFile: {p}\n{'=' * 16}\n",
                    lambda p: "\n\n\n\n\n" if p == "README.md" else "\n",
                    [f"{'=' * 64}\nFiles\n{'=' * 64}\n",
                     f"{'=' * 64}\nEnd of Codebase\n{'=' * 64}\n"]),
    "files-to-prompt.txt": ("files-to-prompt", SORTED, lambda p: f"{p}\n---\n",
                            lambda p: "\n\n---\n", []),
    "files-to-prompt-cxml.xml": (
        "files-to-prompt-cxml", SORTED,
        lambda p: (f'<document index="{SORTED.index(p) + 1}">\n<source>{p}</source>\n'
                   "<document_content>\n"),
        lambda p: "\n</document_content>\n</document>\n", ["<documents>\n", "</documents>\n"]),
    # README.md holds a ``` fence: files-to-prompt fences it with four backticks
    "files-to-prompt-markdown.md": (
        "files-to-prompt-markdown", SORTED,
        lambda p: (f"{p}\n````\n" if p.endswith(".md")
                   else f"{p}\n```{FENCE_TAGS[p.removeprefix('sample/')]}\n"),
        lambda p: "\n````\n" if p.endswith(".md") else "\n```\n", []),
    "gitingest.txt": ("gitingest", ["README.md", "src/cli.js", "src/store.py"],
                      lambda p: f"\n{'=' * 48}\nFILE: {p}\n{'=' * 48}\n", lambda p: "\n\n", []),
    # code2prompt from PyPI does not lengthen its fence around README.md's own fence
    "code2prompt-pypi.md": ("code2prompt-pypi",
                            ["sample/README.md", "sample/src/store.py", "sample/src/cli.js"],
                            code2prompt_pypi_header, lambda p: "\n```\n\n", []),
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("fixture", REAL_DUMPS)
def test_real_dumps_are_read_exactly(fixture, newline):
    name, paths, header, footer, frame = REAL_DUMPS[fixture]
    text = (REAL / fixture).read_text("utf-8").replace("\n", newline)

    def lf(start, end):
        return text[start:end].replace(newline, "\n")

    dump = dumps.detect(text)
    assert dump.format == name
    assert [f.path for f in dump.files] == paths
    assert [f.language for f in dump.files] == [
        {"md": "markdown", "js": "javascript", "py": "python"}[p.rsplit(".", 1)[-1]] for p in paths]
    for file in dump.files:
        assert lf(file.start, file.body_start) == header(file.path)
        assert lf(file.body_start, file.body_end) == SAMPLE[file.path.removeprefix("sample/")]
        assert lf(file.body_end, file.end) == footer(file.path)
    assert [lf(start, end) for start, end in dump.frame] == frame


REPOMIX_TREE = [("src/", 0), ("  cli.js", 1), ("  store.py", 1), ("README.md", 0)]
REAL_TREES = {  # fixture: the directory tree's markup, and its entries with their depths
    "repomix.xml": (["<directory_structure>\n", "</directory_structure>\n"], REPOMIX_TREE),
    "repomix.md": (["# Directory Structure\n```\n", "```\n"], REPOMIX_TREE),
    "repomix.txt": ([f"{'=' * 64}\nDirectory Structure\n{'=' * 64}\n"], REPOMIX_TREE),
    "gitingest.txt": (["Directory structure:\n"], [
        ("└── sample/", 0), ("    ├── README.md", 1), ("    └── src/", 1),
        ("        ├── cli.js", 2), ("        └── store.py", 2)]),
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("fixture", REAL_DUMPS)
def test_real_dumps_directory_trees_are_found(fixture, newline):
    text = (REAL / fixture).read_text("utf-8").replace("\n", newline)
    tree = dumps.detect(text).tree
    if fixture not in REAL_TREES:  # files-to-prompt and code2prompt print no tree
        assert tree is None
        return
    markup, entries = REAL_TREES[fixture]
    assert [text[start:end].replace(newline, "\n") for start, end in tree.markup] == markup
    assert [(text[start:end].rstrip("\r\n"), depth)
            for start, end, depth in tree.entries] == entries


@pytest.mark.parametrize("name", ["files-to-prompt", "files-to-prompt-cxml",
                                  "files-to-prompt-markdown", "gitingest", "code2prompt",
                                  "code2prompt-pypi"])
def test_a_text_without_a_final_newline_keeps_the_tools_newline(name):
    text = WRITERS[name]([("a.py", "x = 1"), ("b.py", "y = 2\n")])
    first, second = dumps.detect(text).files
    assert text[first.body_start:first.body_end] == "x = 1\n"  # bodies are whole lines
    assert text[second.body_start:second.body_end] == "y = 2\n"


@pytest.mark.parametrize("text", [
    "Here is the fix.\n```python\nx = 1\n```\n",
    "Install it:\n\nhttps://example.org/install.sh\n```sh\ncurl -O x\n```\n",
    "Notes, e.g.\n\ne.g.\n```\nx\n```\n",
    "Release\n\nv1.0\n---\nFirst version.\n\n---\n",
    "Compare the two:\n\nand so\n```\na\n```\n",
    "The table\n---\nname | value\n",
    "def f():\n    return 1\n\n\nx = f()\n",
])
def test_prose_or_code_before_a_fence_or_rule_is_no_dump(text):
    assert dumps.detect(text) == dumps.ANONYMOUS
    assert dumps.detect(text.replace("\n", "\r\n")) == dumps.ANONYMOUS


@pytest.mark.parametrize("line", ["src/LICENSE", "app.py", ".gitignore", "pkg\\mod.rs",
                                  "C:\\work\\main.go"])
def test_a_path_alone_on_its_line_opens_a_file(line):
    dump = dumps.detect(f"{line}\n```\nx = 1\n```\n")
    assert dump.format == "files-to-prompt-markdown" and [f.path for f in dump.files] == [line]


@pytest.mark.parametrize("path, language", [
    ("a/b.py", "python"), ("x.TS", "typescript"), ("Makefile", "make"), ("deploy.sh", "shell"),
    ("README.md", "markdown"), ("data.unknownext", None), ("bin/run", None),
    # names without an extension, dotfiles, and names known by their first part
    ("LICENSE", "text"), ("COPYING", "text"), ("docs/NOTICE", "text"), ("AUTHORS", "text"),
    ("README", "text"), ("LICENSE-MIT", "text"), (".gitignore", "ignore"),
    ("web/.dockerignore", "ignore"), (".gitattributes", "gitattributes"),
    (".editorconfig", "ini"), ("setup.cfg", "ini"), (".env", "dotenv"), (".env.local", "dotenv"),
    (".bashrc", "shell"), ("Dockerfile.dev", "dockerfile"), ("C:\\repo\\Makefile", "make")])
def test_language_comes_from_the_path(path, language):
    assert dumps.language_of(path) == language


def test_python_definitions_come_from_ast():
    found = outline.definitions(PYTHON, "python")
    signatures = [PYTHON[a:b] for a, b in (d.signature for d in found)]
    assert signatures == ["class Store:\n", "    def __init__(self, root):\n",
                          "    def put(self, key, value):\n", "    def get(self, key):\n",
                          "def largest(values):\n"]
    put = found[2]
    assert PYTHON[put.body[0]:put.body[1]].startswith("        if key in self.items:")
    assert PYTHON[put.body[0]:put.body[1]].endswith("self.items[key] = value\n")


def test_python_decorators_belong_to_the_signature():
    code = "class A:\n    @property\n    @cached(\n        3)\n    def size(self):\n        return 1\n"
    inner = outline.definitions(code, "python")[1]
    assert code[slice(*inner.signature)] == "    @property\n    @cached(\n        3)\n    def size(self):\n"


def test_multiline_python_signatures_are_kept_whole():
    code = "def f(\n    a,\n    b,\n):\n    # body\n    return a + b\n"
    (definition,) = outline.definitions(code, "python")
    assert code[slice(*definition.signature)] == "def f(\n    a,\n    b,\n):\n"


def test_other_languages_use_indentation_and_braces():
    found = outline.definitions(GO, "go")
    assert [GO[slice(*d.signature)] for d in found] == ["func Add(a int, b int) int {\n",
                                                        "func main() {\n"]
    allman = "int main(void)\n{\n    return 0;\n}\n"
    (definition,) = outline.definitions(allman, "c")
    assert allman[slice(*definition.signature)] == "int main(void)\n{\n"
    broken = "def f(:\n    return 1\n"  # no ast: indentation still finds it
    assert len(outline.definitions(broken, "python")) == 1


@pytest.mark.parametrize("line, expected", [
    ("public static void main(String[] args) {", True), ("fn parse(input: &str) -> u32 {", True),
    ("if (x > 1) {", False), ("} else {", False), ("foo(bar);", False), ("// def nothing", False),
    ("struct Point {", True), ("return compute(x)", False)])
def test_definition_heuristic(line, expected):
    assert outline.looks_like_definition(line, "java") is expected


def test_layout_marks_headers_and_footers_required_and_code_as_code():
    text = repomix_xml(FILES)
    structure = layout.describe(text, line_mode=False)
    required = [text[p.start:p.end] for p in structure.parts if p.required]
    assert required[:3] == ["<files>\n", '<file path="src/store.py">\n', "</file>\n\n"]
    assert required[-1] == "</files>\n"
    sql = next(p for p in structure.parts if p.language == "sql" and not p.required)
    assert sql.code and text[sql.start:sql.end] == SQL
    assert not structure.part_at(0).code  # the preamble is prose for the text profile


def test_signatures_are_units_that_body_units_need():
    starts = np.arange(0, len(PYTHON), 3)
    structure = layout.describe(PYTHON, line_mode=True)
    planned = cutting.units(PYTHON, starts, structure, head=0, tail=len(PYTHON),
                            profile=load_profile("code").with_overrides(chunk_size=10))
    units, needs = planned.units, planned.needs
    text_of = [PYTHON[u.start:u.end] for u in units]
    put = text_of.index("    def put(self, key, value):\n")
    store = text_of.index("class Store:\n")
    assert all(t.strip() for t in text_of)  # blank lines join the unit before them
    raise_line = next(i for i, t in enumerate(text_of) if "raise KeyError" in t)
    assert needs[raise_line] == (store, put) and needs[put] == (store,)
    assert needs[store] == ()
    covered = cutting.cover_definitions(np.eye(len(units))[put], needs)
    assert covered[raise_line] == 1.0 and covered[store] == 0.0
    named = "".join(text_of[i] for i in sorted(cutting.named_units(units, planned.definitions,
                                                                   {"put", "absent"})))
    assert named == PYTHON[PYTHON.index("    def put"):PYTHON.index("    def get")]


def test_definitions_know_their_names():
    assert [d.name for d in outline.definitions(PYTHON, "python")] == [
        "Store", "__init__", "put", "get", "largest"]
    assert [d.name for d in outline.definitions(GO, "go")] == ["Add", "main"]
    method = "func (s *Server) Serve(l net.Listener) error {\n    return nil\n}\n"
    assert [d.name for d in outline.definitions(method, "go")] == ["Serve"]
    java = ("class Shape {\n    public static int area(int w, int h) {\n"
            "        return w * h;\n    }\n}\n")
    assert [d.name for d in outline.definitions(java, "java")] == ["Shape", "area"]
    assert outline.identifiers("Why does `get_item` fail in Store.put()? See Store.") == {
        "Why", "does", "get_item", "fail", "in", "put", "See", "Store"}


@pytest.mark.parametrize("line, name", [
    ("int main(void) {", "main"), ("function load(path) {", "load"),
    ("std::vector<int> Graph::neighbours(int v) const {", "neighbours"),
    ("impl Display for Point {", "Display"),
    ("const handler = function(request) {", ""), ("export default function () {", ""),
    ('describe("parser", function () {', ""), ('it("parses", () => {', "")])
def test_definition_names_and_anonymous_definitions(line, name):
    assert outline.definition_name(line) == name


# --- what compression keeps (tiny random draft, so which chunks win is arbitrary) ---

def big_python(functions: int = 40) -> str:
    return "".join(
        f"def handler_{i}(request, limit={i}):\n"
        + "".join(f"    value_{j} = request.get('field_{i}_{j}', {j}) * limit\n" for j in range(8))
        + "    return value_0 + value_7\n\n\n" for i in range(functions))


def dump_of(name: str) -> str:
    return WRITERS[name]([("pkg/handlers.py", big_python(25)), ("cmd/main.go", GO * 6),
                          ("db/users.sql", SQL * 8), ("pkg/store.py", PYTHON)])


CODE_DELIMITERS = ("# ... omitted", "// ... omitted", "-- ... omitted", "// omitted",
                   "[...]")  # the last: a gap in a dump's prose (the preamble)


def markup(text, start, end):
    """A header or footer without its leading blank lines: blank lines alone are no unit
    (chunks joins them to the unit before), so they go with the text before them when the
    tail's cut leaves them alone or a footer is nothing else."""
    return end - len(text[start:end].lstrip("\r\n")), end


@pytest.mark.parametrize("name, newline", [(name, "\n") for name in WRITERS]
                         + [("repomix-xml", "\r\n")])
def test_every_header_and_footer_survives_and_the_budget_holds(llama_draft, target, name,
                                                               newline):
    text = dump_of(name).replace("\n", newline)
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15)
    assert result.tokens_after == target.count(result.text) <= result.budget
    assert result.tokens_after >= 0.9 * result.budget
    assert_verbatim_structure(text, result, CODE_DELIMITERS)
    kept = [(span.start, span.end) for span in result.spans]
    for file in dumps.detect(text).files:
        for part in ((file.start, file.body_start), (file.body_end, file.end)):
            start, end = markup(text, *part)
            assert start == end or any(a <= start and end <= b for a, b in kept), text[start:end]
    assert [(f.path, f.language) for f in result.files] == [
        ("pkg/handlers.py", "python"), ("cmd/main.go", "go"), ("db/users.sql", "sql"),
        ("pkg/store.py", "python")]


def test_xml_dumps_stay_well_formed(llama_draft, target):
    text = dump_of("repomix-xml")
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15)
    tags = re.findall(r"(?m)^<(/?)(files?)\b", result.text)
    depth = 0
    for closing, _ in tags:
        depth += -1 if closing else 1
        assert depth >= 0
    assert depth == 0 and len(tags) == 2 + 2 * 4


@pytest.mark.parametrize("profile", ["code", "text"])
def test_code_spans_are_whole_lines(llama_draft, target, profile):
    text = dump_of("gitingest")
    result = compress(text, draft=llama_draft, target=target, profile=profile, keep_rate=0.2)
    for span in result.spans:
        assert span.start == 0 or text[span.start - 1] == "\n"
        assert span.end == len(text) or text[span.end - 1] == "\n"


def test_text_spans_never_cut_a_word(llama_draft, target):
    prose = " ".join(f"Sentence number {i} talks about harbours and lanterns." for i in range(200))
    result = compress(prose, draft=llama_draft, target=target, profile="text", keep_rate=0.2)
    for span in result.spans:
        for edge in (span.start, span.end):
            assert edge in (0, len(prose)) or not (prose[edge - 1].isalnum() and prose[edge].isalnum())


def test_gaps_speak_the_language_of_their_file(llama_draft, target):
    text = dump_of("repomix-markdown")
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15)
    structure = layout.describe(text, line_mode=True)
    previous_end = 0
    expected = []
    for span in result.spans:
        if span.start > previous_end:
            language = structure.part_at(previous_end).language
            expected.append({"python": "# ... omitted", "go": "// ... omitted",
                             "sql": "-- ... omitted"}.get(language, "// omitted"))
        previous_end = span.end
    found = re.findall(r"(?m)^(# \.\.\. omitted|// \.\.\. omitted|-- \.\.\. omitted|// omitted)$",
                       result.text)
    assert found == expected
    assert {"# ... omitted", "// ... omitted"} <= set(found)


def test_markup_and_stylesheet_gaps_are_their_block_comments(llama_draft, target):
    """HTML and XML gaps read `<!-- ... omitted -->`, CSS ones `/* ... omitted */`; with
    references the words go inside the comment, which stays one."""
    page = "<ul>\n" + "".join(f'  <li class="item-{i}">Entry {i}: lantern notes</li>\n'
                               for i in range(120)) + "</ul>\n"
    sheet = "".join(f".item-{i} {{ color: #{i:06x}; margin: {i}px; }}\n" for i in range(120))
    text = WRITERS["repomix-xml"]([("web/index.html", page), ("web/site.css", sheet)])
    structure = layout.describe(text, line_mode=True)
    for refs in (False, True):
        result = compress(text, draft=llama_draft, target=target, profile="code",
                          keep_rate=0.2, refs=refs)
        gaps = [(previous.end, span.start) for previous, span in
                zip(result.spans, result.spans[1:]) if span.start > previous.end]
        languages = {structure.part_at(start).language for start, _ in gaps}
        assert {"html", "css"} <= languages
        lines = result.text.splitlines()
        html = [line for line in lines if line.startswith("<!-- ... omitted")]
        css = [line for line in lines if line.startswith("/* ... omitted")]
        assert html and css
        assert all(line.endswith(" -->") for line in html)
        assert all(line.endswith(" */") for line in css)
        assert all((" · ref " in line) == refs for line in html + css)


MIT_LICENSE = """\
MIT License

Copyright (c) 2025 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
GITIGNORE = "".join(f"# {tool} output\n{tool}/\n*.{tool[:3]}\n\n" for tool in (
    "build", "dist", "coverage", "node_modules", "__pycache__", "target", "vendor", "logs",
    "tmp", "cache"))
VUE = "<template>\n" + "".join(f'  <li class="row-{i}">{{{{ items[{i}] }}}}</li>\n'
                                for i in range(30)) + "</template>\n"


def test_gaps_in_prose_files_dotfiles_and_unknown_files_claim_no_wrong_syntax(llama_draft,
                                                                               target):
    files = [("LICENSE", MIT_LICENSE), (".gitignore", GITIGNORE), ("web/App.vue", VUE)]
    text = repomix_xml(files)
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.2,
                      chunk_size=16, scorer="lexical")
    marker = {"LICENSE": "[...]", ".gitignore": "# ... omitted", "web/App.vue": "[...]"}
    bounds = [(0, 0)] + [(span.start, span.end) for span in result.spans] + [(len(text),) * 2]
    gaps = [end for (_, end), (start, _) in zip(bounds, bounds[1:]) if start > end]
    paths = [next((f.path for f in result.files if f.start <= gap < f.end), None) for gap in gaps]
    assert set(marker) <= set(paths)  # each file lost something
    expected = [marker.get(path, "[...]") for path in paths]  # outside the files: prose
    assert re.findall(r"\[\.\.\.\]|# \.\.\. omitted|// omitted", result.text) == expected


def test_an_explicit_delimiter_marks_every_gap(llama_draft, target):
    text = dump_of("gitingest")
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15,
                      delimiter="<snip>")
    assert_verbatim_structure(text, result, "<snip>")


def test_kept_code_keeps_its_enclosing_signatures(llama_draft, target):
    text = dump_of("files-to-prompt")
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15,
                      chunk_size=12)
    kept = [(span.start, span.end) for span in result.spans]

    def is_kept(start, end):
        return any(a <= start and end <= b for a, b in kept)

    checked = 0
    for file in dumps.detect(text).files:
        body = text[file.body_start:file.body_end]
        for definition in outline.definitions(body, file.language):
            start, end = (file.body_start + p for p in definition.body)
            body_lines = [m.start() for m in re.finditer(r"(?m)^.+$", text[:end]) if m.start() >= start]
            if any(is_kept(line, line + 1) for line in body_lines):
                checked += 1
                signature = tuple(file.body_start + p for p in definition.signature)
                assert is_kept(*signature), text[slice(*signature)]
    assert checked >= 3


def test_a_file_with_nothing_kept_collapses_to_header_delimiter_footer(llama_draft, target):
    text = repomix_xml([("big.py", big_python(30)), ("small.go", GO)])
    small = text.index('<file path="small.go">')

    def prefer_small(draft, request):  # only the Go file matters
        return (request.token_starts >= small).astype(float)

    expected = ("This file is a merged representation of the entire codebase.\n\n"
                "<directory_structure>\nsrc/\n</directory_structure>\n\n"  # the tree comes first
                '<files>\n[...]\n<file path="big.py">\n# ... omitted\n</file>\n\n'
                f'<file path="small.go">\n{GO}</file>\n\n</files>\n')
    result = compress(text, draft=llama_draft, target=target, profile="code",
                      target_tokens=target.count(expected), scorer=prefer_small)
    assert result.text == expected


# gitingest's tree of a small repository (a real excerpt)
DEEP_TREE = """\
Directory structure:
└── sample_repo/
    ├── pyproject.toml
    ├── crossprefill_cli/
    │   ├── __init__.py
    │   ├── cache.py
    │   ├── chunks.py
    │   └── profiles/
    │       ├── code.yaml
    │       └── text.yaml
    ├── docs/
    │   └── usage.md
    └── tests/
        ├── test_chunks.py
        └── data/
            └── sample/
                └── README.md
"""


@pytest.mark.parametrize("keep_rate, whole", [(0.5, True), (0.2, False)])
def test_the_directory_tree_or_its_top_levels_come_before_the_files(llama_draft, target,
                                                                      keep_rate, whole):
    text = gitingest([("crossprefill_cli/chunks.py", big_python(20)), ("cmd/main.go", GO * 6)])
    text = DEEP_TREE + text[text.index("\n\n"):]
    first_file = dumps.detect(text).files[0].start

    def files_only(draft, request):  # the scores alone would drop the tree
        return (request.token_starts >= first_file).astype(float)

    result = compress(text, draft=llama_draft, target=target, profile="code",
                      keep_rate=keep_rate, scorer=files_only)
    kept = [(span.start, span.end) for span in result.spans]
    tree = dumps.detect(text).tree
    kept_depths = {depth for start, end, depth in tree.entries
                   if any(a <= start and end <= b for a, b in kept)}
    deepest = max(kept_depths)
    assert kept_depths == set(range(deepest + 1))  # whole levels, the top ones first
    assert deepest >= 1 and (deepest == max(depth for *_, depth in tree.entries)) == whole
    assert all(any(a <= start and end <= b for a, b in kept) for start, end in tree.markup)
    assert result.tokens_after <= result.budget


def test_a_tree_share_of_nothing_leaves_the_tree_to_the_scores(llama_draft, target):
    text = gitingest([("crossprefill_cli/chunks.py", big_python(20)), ("cmd/main.go", GO * 6)])
    text = DEEP_TREE + text[text.index("\n\n"):]
    first_file = dumps.detect(text).files[0].start

    def files_only(draft, request):
        return (request.token_starts >= first_file).astype(float)

    result = compress(text, draft=llama_draft, target=target, keep_rate=0.5, scorer=files_only,
                      profile=load_profile("code").with_overrides(tree_share=0.0))
    deeper = [(start, end) for start, end, depth in dumps.detect(text).tree.entries if depth]
    assert not any(span.start <= start and end <= span.end
                   for span in result.spans for start, end in deeper)


@pytest.mark.parametrize("diff_share, reviewed", [(0.5, True), (0.0, False)])
def test_a_diff_that_comes_with_its_code_is_kept_first_within_its_share(llama_draft, target,
                                                                        diff_share, reviewed):
    code = big_python(20)
    diff = ("diff --git a/pkg/core.py b/pkg/core.py\n--- a/pkg/core.py\n+++ b/pkg/core.py\n"
            "@@ -70,3 +70,3 @@ def handler_12(request):\n"
            "     value = request.get('handler_12')\n-    return value\n+    return value or 0\n"
            "     # end of handler_12\n")
    text = gitingest([("fix.patch", diff), ("pkg/core.py", code)])  # the tail is kept anyway
    code_start = text.index(code)

    def code_only(draft, request):  # the scores alone would take the code, not the diff
        return (request.token_starts >= code_start).astype(float)

    result = compress(text, draft=llama_draft, target=target, keep_rate=0.2, scorer=code_only,
                      profile=load_profile("code").with_overrides(diff_share=diff_share))
    assert ("+    return value or 0" in result.text) == reviewed
    assert result.tokens_after <= result.budget


def test_function_level_coverage_keeps_the_body_of_a_function_the_scores_point_at(
        llama_draft, target):
    text = big_python(30)
    signature = text.index("def handler_17(")
    body_end = text.index("def handler_18(")

    def point_at_signature(draft, request):  # the draft looks at one signature only
        return ((request.token_starts >= signature)
                & (request.token_starts < text.index("\n", signature))).astype(float)

    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15,
                      scorer=point_at_signature)
    assert text[signature:body_end] in result.text


def test_definitions_the_query_names_are_kept_before_anything_the_draft_prefers(
        llama_draft, target):
    text = big_python(30)
    named = text[text.index("def handler_23("):text.index("def handler_24(")]

    def point_elsewhere(draft, request):  # the draft looks at the first handlers only
        return (request.token_starts < text.index("def handler_5(")).astype(float)

    def kept(profile):
        return compress(text, draft=llama_draft, target=target, profile=profile, keep_rate=0.15,
                        query="Why does handler_23 return the wrong value?",
                        scorer=point_elsewhere).text

    assert named in kept("code")
    assert named not in kept(load_profile("code").with_overrides(favour_named_definitions=False))
    favoured = [c for c in compress(text, draft=llama_draft, target=target, profile="code",
                                    query="What does handler_23 return?").chunks if c.favoured]
    assert text[favoured[0].start:favoured[-1].end] == named  # the report says which


def test_every_named_signature_is_kept_before_the_bodies(llama_draft, target):
    text = big_python(30)
    names = [f"handler_{i}" for i in (4, 11, 19, 26)]

    def point_at_bodies(draft, request):  # the draft prefers bodies to signatures
        lines = np.cumsum([c == "\n" for c in text])
        in_body = np.array([text.split("\n")[lines[s] - (text[s] == "\n")].startswith("    ")
                            for s in request.token_starts])
        return in_body.astype(float)

    result = compress(text, draft=llama_draft, target=target, profile="code",
                      target_tokens=550, query=f"Which of {', '.join(names)} is broken?",
                      scorer=point_at_bodies)
    assert all(f"def {name}(request, limit=" in result.text for name in names)
    favoured = [c for c in result.chunks if c.favoured]
    assert favoured and not all(c.kept for c in favoured)  # not every body fit


def test_a_dotted_name_favours_the_method_not_its_whole_class(llama_draft, target):
    text = "class Router:\n" + "".join(
        "    " + line + "\n" for line in big_python(30).splitlines())
    named = text[text.index("    def handler_23("):text.index("    def handler_24(")]
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.15,
                      query="Why does Router.handler_23 return the wrong value?",
                      scorer=lambda draft, request: np.zeros(len(request.token_starts)))
    assert "class Router:\n" in result.text and named in result.text
    assert "def handler_12(" not in result.text  # the rest of the class is not favoured


def test_a_budget_below_the_headers_names_them(llama_draft, target):
    text = dump_of("repomix-plain")
    with pytest.raises(UsageError, match="every file header"):
        compress(text, draft=llama_draft, target=target, profile="code", target_tokens=30)


LINES = st.sampled_from(["x = compute(1)", "if x > 2:", "return x", "for item in items:",
                         "def helper(a, b):", "class Box:", "", "# note", "value += 1"])
SOURCES = st.lists(st.tuples(st.integers(0, 3), LINES), min_size=1, max_size=40).map(
    lambda rows: "".join("    " * depth + line + "\n" for depth, line in rows))


# Issue 30: a question detected in code ("return x") was kept from after the indentation.
RETURN_AFTER_BLANK = "x = compute(1)\n" * 5 + "\n    return x\n"


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sources=st.lists(SOURCES, min_size=1, max_size=4), name=st.sampled_from(sorted(WRITERS)),
       rate=st.floats(0.1, 0.9))
@example(sources=[RETURN_AFTER_BLANK], name="repomix-plain", rate=0.5)
def test_property_dumps_keep_headers_lines_and_signatures(llama_draft, target, sources, name,
                                                          rate):
    files = [(f"pkg/mod_{i}.{'py' if i % 2 == 0 else 'go'}", source)
             for i, source in enumerate(sources)]
    text = WRITERS[name](files)
    try:
        result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=rate)
    except UsageError as error:  # too small for the headers
        assert "smaller than what must be kept" in str(error)
        return
    assert result.tokens_after == target.count(result.text) <= result.budget
    assert_verbatim_structure(text, result, CODE_DELIMITERS)
    kept = [(span.start, span.end) for span in result.spans]

    def is_kept(start, end):  # an empty range (a footer of blank lines) is trivially kept
        return start == end or any(a <= start and end <= b for a, b in kept)

    for span in result.spans:  # every part of this dump is code: whole lines only
        assert span.start == 0 or text[span.start - 1] == "\n"
        assert span.end == len(text) or text[span.end - 1] == "\n"
    for file in dumps.detect(text).files:
        assert is_kept(*markup(text, file.start, file.body_start))
        assert is_kept(*markup(text, file.body_end, file.end))
        for definition in outline.definitions(text[file.body_start:file.body_end], file.language):
            body_start, body_end = (file.body_start + p for p in definition.body)
            if any(a < body_end and body_start < b for a, b in kept):
                assert is_kept(*(file.body_start + p for p in definition.signature))


def test_a_kept_stretch_of_code_is_widened_to_whole_lines():
    text = repomix_plain([("pkg/mod_0.py", RETURN_AFTER_BLANK)])
    found = query.detect(text)  # the closing "return x" reads as an instruction
    assert text[found.start:found.end] == "return x"
    planned = cutting.units(text, np.arange(0, len(text), 3),
                            layout.describe(text, line_mode=True), head=0, tail=len(text),
                            profile=load_profile("code"), keep=((found.start, found.end),))
    kept = [(text[u.start:u.end], u.required) for u in planned.units
            if "return" in text[u.start:u.end]]
    assert kept == [("    return x\n\n", True)]  # with the blank line after it
    assert all(u.start == 0 or text[u.start - 1] == "\n" for u in planned.units)


def test_a_question_detected_in_code_keeps_its_indentation(llama_draft, target):
    text = repomix_plain([("pkg/mod_0.py", RETURN_AFTER_BLANK)])
    result = compress(text, draft=llama_draft, target=target, profile="code", keep_rate=0.5)
    assert result.query == "return x"
    assert "\n    return x\n" in result.text
    assert all(span.start == 0 or text[span.start - 1] == "\n" for span in result.spans)


def test_input_that_python_warns_about_raises_no_warning():
    import warnings

    from crossprefill_cli.text.dumps import anonymous_language

    odd = 'x = 1if y else 2\n\ndef pattern():\n    return "\\d+"\n'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert anonymous_language(odd) == "python"
    assert caught == []
