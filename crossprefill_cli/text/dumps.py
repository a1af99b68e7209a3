"""Repository dumps: recognise the format, find every file's header, body and footer.

Tools that pack a repository into one prompt write each file as a header line (or
a few), the file's text, and sometimes closing markup:

    repomix xml          <file path="P">  ...  </file>        inside <files> ... </files>
    repomix markdown     ## File: P  + a fence  ...  the fence
    repomix plain        ====  File: P  ====  ...  blank lines
                           inside ====(64) Files ====(64) ... the next such row (End of Codebase)
    files-to-prompt      P  ---  ...  blank line  ---
    files-to-prompt      <document index="N"><source>P</source><document_content> ...
      --cxml               </document_content></document>    inside <documents> ... </documents>
    files-to-prompt      P  + a fence  ...  the fence
      --markdown
    gitingest            blank line  ====(48)  FILE: P  ====(48)  ...  two newlines
    code2prompt (Rust)   `P`:  + a fence  ...  the fence
    code2prompt (PyPI)   ## File: P  "- Key: value" lines  ### Code  + a fence  ...  the fence

`detect` tries every format and takes the one that finds the most files (at least
one); an input no format recognises is one anonymous file. A file's region runs from
its header to the next file's header; its footer is the *last* closing markup in that
region (file contents may themselves contain such markup), and blank lines after the
footer belong to it, so nothing droppable sits between two files. Tools print a newline
after a file's text: when the text ends with one already, the tool's makes a blank line
that opens the footer, so a body is exactly the file's text (a text without a final
newline keeps the tool's: bodies are whole lines). Containers (`<files>`, `<documents>`,
repomix plain's rows) are reported as frame spans, and the directory tree some tools
print before the files (repomix, gitingest, code2prompt) as a `DirectoryTree` whose
entries know their depth. Headers, footers and frames are what compression must always
keep (but for blank lines at their start, which are no unit of their own: see `chunks`). A header that is a path alone on its line (files-to-prompt)
needs a path that looks like one, so prose before a fence or a `---` opens no file.

The language of a file comes from its path (extension or well-known file name); the gaps
in a file of unknown language get a marker that guesses no comment syntax (see `layout`).
"""

import ast
import fnmatch
import re
from dataclasses import dataclass

from crossprefill_cli.text.outline import parse_python

# Languages by extension; `PROSE` ones are read as text, every other known one as code.
EXTENSIONS = {
    "py": "python", "pyi": "python", "pyw": "python", "sh": "shell", "bash": "shell",
    "zsh": "shell", "fish": "shell", "yml": "yaml", "yaml": "yaml", "toml": "toml",
    "rb": "ruby", "pl": "perl", "pm": "perl", "r": "r", "mk": "make", "cmake": "cmake",
    "c": "c", "h": "c", "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp",
    "hxx": "cpp", "cs": "csharp", "java": "java", "js": "javascript", "mjs": "javascript",
    "cjs": "javascript", "jsx": "javascript", "ts": "typescript", "tsx": "typescript",
    "mts": "typescript", "cts": "typescript", "go": "go", "rs": "rust", "kt": "kotlin",
    "kts": "kotlin", "swift": "swift", "scala": "scala", "dart": "dart", "php": "php",
    "zig": "zig", "proto": "protobuf", "groovy": "groovy", "gradle": "groovy",
    "sql": "sql", "lua": "lua", "hs": "haskell", "elm": "elm", "json": "json",
    "jsonl": "jsonl", "ndjson": "jsonl", "log": "log", "diff": "diff", "patch": "diff",
    "html": "html", "htm": "html", "xml": "xml", "css": "css", "scss": "css",
    "ini": "ini", "cfg": "ini",
    "md": "markdown", "markdown": "markdown", "rst": "restructuredtext", "txt": "text",
}
# Languages by file name, in lower case: build files, dotfiles (shell start-up files,
# settings in INI syntax, environment files) and the prose a repository carries without
# an extension. A name not listed is looked up by its extension, then by its first part
# ("Dockerfile.dev", ".env.local", "LICENSE-MIT").
FILE_NAMES = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "containerfile": "dockerfile", "cmakelists.txt": "cmake", "gemfile": "ruby",
    "rakefile": "ruby", "vagrantfile": "ruby", "jenkinsfile": "groovy",
    ".bashrc": "shell", ".bash_profile": "shell", ".bash_logout": "shell",
    ".profile": "shell", ".zshrc": "shell", ".zprofile": "shell", ".zshenv": "shell",
    ".envrc": "shell", ".env": "dotenv", ".gitattributes": "gitattributes",
    ".editorconfig": "ini", ".gitconfig": "ini", ".gitmodules": "ini", ".npmrc": "ini",
    ".flake8": "ini", ".pylintrc": "ini", ".coveragerc": "ini",
    "readme": "text", "license": "text", "licence": "text", "copying": "text",
    "notice": "text", "authors": "text", "contributors": "text", "changelog": "text",
}
# .gitignore, .dockerignore, .npmignore, ...: every tool's ignore list is gitignore-like.
IGNORE_LIST = "ignore"
LANGUAGES = frozenset(EXTENSIONS.values()) | frozenset(FILE_NAMES.values()) | {IGNORE_LIST}
PROSE = frozenset({"markdown", "restructuredtext", "text"})


@dataclass(frozen=True)
class FileRegion:
    """One file of a dump: header [start, body_start), body, footer [body_end, end)."""

    path: str
    start: int
    body_start: int
    body_end: int
    end: int
    language: str | None


@dataclass(frozen=True)
class DirectoryTree:
    """A dump's directory tree: the lines around its entries (title, rule, fence, tags)
    and each entry line with its depth (0: the least indented entries)."""

    markup: tuple[tuple[int, int], ...]
    entries: tuple[tuple[int, int, int], ...]  # (start, end, depth)


@dataclass(frozen=True)
class Dump:
    """The recognised format (None: not a dump), its files, its frame spans and the
    directory tree printed before the files, if any."""

    format: str | None
    files: tuple[FileRegion, ...]
    frame: tuple[tuple[int, int], ...] = ()
    tree: DirectoryTree | None = None


@dataclass(frozen=True)
class DumpFormat:
    name: str
    header: re.Pattern        # group "path"; group "fence" when the footer repeats it
    footer: str               # regex of the closing markup ("{fence}" filled in)
    frame: tuple[str, str] | None = None  # container open and close lines


def _crlf(pattern: str) -> str:
    r"""Let every `\n` of `pattern` outside a character class also match `\r\n`."""
    out, in_class, index = [], False, 0
    while index < len(pattern):
        piece = pattern[index:index + 2]
        if piece in ("\\[", "\\]") or (piece[0] == "\\" and piece != "\\n"):
            out.append(piece)
            index += 2
            continue
        if piece == "\\n" and not in_class:
            out.append(r"\r?\n")
            index += 2
            continue
        in_class = (in_class or pattern[index] == "[") and pattern[index] != "]"
        out.append(pattern[index])
        index += 1
    return "".join(out)


def _line(pattern: str) -> str:
    """A pattern for whole lines: starts at a line start, ends after its newline."""
    return _crlf(r"(?m:^)" + pattern + r"(?:\n|\Z)")


def _closing(pattern: str) -> str:
    """Closing markup on its own line, and the blank line before it that the tool's
    newline after a file's text makes (see the module docstring)."""
    return _crlf(r"(?m:^)(?:\n)?" + pattern + r"(?:\n|\Z)")


def _after(*line_ends: str) -> str:
    r"""The input's start, or right after a line ending in one of `line_ends` (lookbehinds
    are fixed-width, so `\r\n` gets its own)."""
    return "(?:\\A|" + "|".join(f"(?<={re.escape(end + newline)})" for end in line_ends
                               for newline in ("\n", "\r\n")) + ")"


FENCE = r"(?P<fence>`{3,}|~{3,})[^\n]*\n"
FENCE_FOOTER = _closing(r"{fence}[ \t]*")
# A path alone on its line: no spaces, no URL, a name after a slash or an extension with
# a letter ("src/LICENSE", "a.py", "C:\x.py"; not "e.g.", "v1.0" or "https://x.org/").
PATH = r"(?P<path>(?:[A-Za-z]:)?[^\s<>`:]*(?:[/\\][^\s<>`:/\\]+|\.\w*[A-Za-z]\w*))"
FORMATS = (
    DumpFormat("repomix-xml", re.compile(_line(r'<file path="(?P<path>[^"\n]+)">')),
               _line(r"</file>"), (_line(r"<files>"), _line(r"</files>"))),
    DumpFormat("files-to-prompt-cxml", re.compile(_line(
        r'<document index="\d+">\n<source>(?P<path>[^<\n]+)</source>\n<document_content>')),
        _closing(r"</document_content>\n</document>"),
        (_line(r"<documents>"), _line(r"</documents>"))),
    DumpFormat("repomix-markdown", re.compile(_crlf(
        r"(?m:^)## File: (?P<path>[^\n]+)\n(?:[ \t]*\n)*" + FENCE)), FENCE_FOOTER),
    DumpFormat("code2prompt", re.compile(_crlf(
        r"(?m:^)`(?P<path>[^`\n]+)`:[ \t]*\n(?:[ \t]*\n)*" + FENCE)), FENCE_FOOTER),
    # The PyPI code2prompt does not lengthen its fence for files holding fences: the
    # last fence before the next header is the closing one.
    DumpFormat("code2prompt-pypi", re.compile(_crlf(
        r"(?m:^)## File: (?P<path>[^\n]+)\n\n(?:- [^\n]*\n)*\n### Code\n\n" + FENCE)),
        FENCE_FOOTER),
    # gitingest writes a file's text and two newlines, and a newline between files: that
    # one opens the next header, so the footer is exactly the two newlines.
    DumpFormat("gitingest", re.compile(_line(
        r"(?:\n)?={48}\nFILE: (?P<path>[^\n]+)\n={48}")), _crlf(r"(?m:^)\n(?:\n)?\Z")),
    # repomix trims every file's text: the blank lines after it are all the tool's.
    DumpFormat("repomix-plain", re.compile(_line(r"={3,}\nFile: (?P<path>[^\n]+)\n={3,}")),
               _crlf(r"(?m:^)(?:\n)+\Z"),
               (_line(r"={64}\nFiles\n={64}"),
                _line(r"={64}\n(?:Git Diffs|Git Logs|Instruction|End of Codebase)\n={64}"))),
    # files-to-prompt writes files back to back: a header sits at the start of the input,
    # after a blank line or right after the previous file's closing "---" or fence.
    DumpFormat("files-to-prompt", re.compile(
        _after("---", "\n") + _crlf(PATH + r"\n---\n")), _closing(r"\n---")),
    DumpFormat("files-to-prompt-markdown", re.compile(
        _after("```", "~~~", "\n") + _crlf(PATH + r"\n" + FENCE)), FENCE_FOOTER),
)
ANONYMOUS = Dump(None, ())
# The title of a directory tree before the files: repomix's (xml, markdown, plain: between
# rows of "="), gitingest's and code2prompt's; then maybe blank lines and a fence.
TREE_TITLE = re.compile(_crlf(
    r"(?m:^)(?:={3,}\n)?"
    r"(?:<directory_structure>|#{1,6} directory structure|directory structure:?|source tree:)"
    r"[ \t]*\n(?:={3,}\n)?(?:[ \t]*\n)*(?:(?P<fence>`{3,}|~{3,})[^\n]*\n)?"), re.IGNORECASE)
# What indents a tree's entry: spaces, and the branches tree-drawing tools print.
TREE_INDENT = re.compile(r"[ \t│├└┬─|`+\\-]*")
LINE = re.compile(r"[^\n]*\n?")


def language_of(path: str) -> str | None:
    """The language a file's path names (see `FILE_NAMES`); None when it names none."""
    name = re.split(r"[/\\]", path.strip())[-1].lower()
    if name.startswith(".") and name.endswith("ignore"):
        return IGNORE_LIST
    extension = name.rpartition(".")[2] if "." in name.lstrip(".") else ""
    first_part = re.match(r"\.?[^.-]*", name).group()
    return FILE_NAMES.get(name) or EXTENSIONS.get(extension) or FILE_NAMES.get(first_part)


def detect(text: str) -> Dump:
    """The format that finds the most files in `text`, or `ANONYMOUS` (see module doc)."""
    best = ANONYMOUS
    for dump_format in FORMATS:
        found = parse(text, dump_format)
        if len(found.files) > len(best.files):
            best = found
    return best


def parse(text: str, dump_format: DumpFormat) -> Dump:
    """Read `text` as a dump of `dump_format` (no files found: an empty dump)."""
    headers = list(dump_format.header.finditer(text))
    if not headers:
        return Dump(dump_format.name, ())
    frame = _frame(text, dump_format, headers[0].start(), headers[-1].end())
    limit = frame[-1][0] if len(frame) == 2 else len(text)
    files = []
    for index, header in enumerate(headers):
        region_end = headers[index + 1].start() if index + 1 < len(headers) else limit
        body_end = end = region_end
        footer = _last_footer(text, dump_format, header, region_end)
        if footer is not None:
            body_end = footer.start()
            end = footer.end() + len(text[footer.end():region_end]) - len(
                text[footer.end():region_end].lstrip())
        path = header.group("path").strip()
        files.append(FileRegion(path, header.start(), header.end(), body_end, end,
                                language_of(path)))
    return Dump(dump_format.name, tuple(files), frame,
                directory_tree(text, min([files[0].start, *(start for start, _ in frame)])))


def _last_footer(text: str, dump_format: DumpFormat, header: re.Match, region_end: int):
    fence = re.escape(header.groupdict().get("fence") or "")
    pattern = re.compile(dump_format.footer.replace("{fence}", fence))
    matches = list(pattern.finditer(text, header.end(), region_end))
    return matches[-1] if matches else None


def _frame(text: str, dump_format: DumpFormat, first: int, last: int) -> tuple[tuple[int, int], ...]:
    """The container's open line before the first header and close line after the last."""
    if dump_format.frame is None:
        return ()
    opening = list(re.finditer(dump_format.frame[0], text[:first]))
    closing = re.search(dump_format.frame[1], text[last:])
    if not opening or closing is None:
        return ()
    return ((opening[-1].start(), opening[-1].end()),
            (last + closing.start(), last + closing.end()))


def directory_tree(text: str, end: int) -> DirectoryTree | None:
    """The first directory tree before `end` (where the files start), or None: its title
    (with an opening fence) and its closing fence or tag are its markup; its entries run
    up to a blank line or that closing line."""
    title = TREE_TITLE.search(text, 0, end)
    if title is None:
        return None
    closing = title.group("fence") or "</directory_structure>"
    markup, entries = [title.span()], []
    for line in LINE.finditer(text, title.end(), end):
        content = line.group().strip()
        if not content or content == closing:
            if content:
                markup.append(line.span())
            break
        entries.append((*line.span(), TREE_INDENT.match(line.group()).end()))
    if not entries:
        return None
    indents = sorted({indent for *_, indent in entries})
    return DirectoryTree(tuple(markup), tuple((start, stop, indents.index(indent))
                                              for start, stop, indent in entries))


# Where a repository keeps what is about its code rather than the code: tests, docs,
# examples, benchmarks, changelogs (by folder or by file name).
SECONDARY_FOLDER = re.compile(r"(?:^|/)(?:tests?|testing|spec|specs|__tests__|docs?|documentation|"
                              r"examples?|samples?|benchmarks?|bench)/", re.IGNORECASE)
SECONDARY_FILE = re.compile(r"(?:^|/)(?:test_[^/]*|[^/]*_tests?\.\w+|[^/]*\.(?:test|spec)\.\w+|"
                            r"conftest\.py|(?:changelog|changes|history|news)(?:\.\w+)?)$",
                            re.IGNORECASE)


def dropped_files(dump: "Dump", include: str | None, exclude: str | None) -> tuple[str, ...]:
    """The paths of the dump's files that `include` (comma-separated globs: keep only
    those) and `exclude` (drop those) leave out, as repomix's --include and --ignore."""
    def matches(path: str, globs: str) -> bool:
        patterns = [glob.strip() for glob in globs.split(",") if glob.strip()]
        # `**/x` matches `x` at the top too, as in repomix
        return any(fnmatch.fnmatch(path, pattern) or (pattern.startswith("**/") and
                   fnmatch.fnmatch(path, pattern[3:])) for pattern in patterns)

    return tuple(file.path for file in dump.files
                 if (include is not None and not matches(file.path, include))
                 or (exclude is not None and matches(file.path, exclude)))


def is_secondary(path: str, language: str | None) -> bool:
    """A test, a doc (any prose file) or a changelog, rather than the code itself."""
    return language in PROSE or bool(SECONDARY_FOLDER.search(path) or SECONDARY_FILE.search(path))


def anonymous_language(text: str) -> str | None:
    """An undelimited input is Python when it parses as Python and defines something."""
    try:
        tree = parse_python(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return "python" if any(isinstance(node, defines) for node in tree.body) else None
