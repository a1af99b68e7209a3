"""Where code sits: the definitions (functions, classes, ...) that enclose each line.

A kept piece of a function body reads better with the function's signature above
it, so compression keeps the signature line(s) of every definition that encloses a
kept line. This module finds those definitions in one file's text:

- Python through `ast` (exact: the signature runs from the first decorator, or the
  `def`/`class` line, to the line before the first body statement, comment lines at
  its end left out);
- the languages `syntax` has a grammar for (JavaScript/TypeScript, Go, Rust, Java,
  C/C++, Ruby, C#, PHP, Kotlin, Scala), and Python that `ast` cannot parse, through
  tree-sitter (`syntax`);
- everything else by indentation: a line that looks
  like a definition encloses the following lines indented deeper than itself and the
  closing `}`/`end` line (a lone `{` on the next line belongs to the signature,
  Allman style). "Looks like a
  definition" is a keyword (`def`, `fn`, `func`, `class`, `struct`, ...) or a call-like
  line opening a block (`int main(void) {`), and not a control statement.

`symbols` adds the identifiers the code writes (tree-sitter's, else every
identifier-shaped word), for the symbol graph (`units.graph`). Offsets are character
offsets into the given text.
"""

import ast
import re
import warnings

from crossprefill_cli.text import syntax
from crossprefill_cli.text.syntax import Definition, Symbols, line_starts

PYTHON_DEFINITION = re.compile(r"\s*(?:async\s+def|def|class)\s")
KEYWORD_DEFINITION = re.compile(
    r"\b(?:def|class|function|func|fun|fn|struct|impl|interface|enum|trait|module|namespace|"
    r"protocol|extension|procedure|macro_rules!)\b")
IDENTIFIER = r"[A-Za-z_$][\w$]*"
CALL_LIKE = re.compile(IDENTIFIER + r"\s*\(")
# The name a keyword introduces, past a Go method's receiver: `func (s *Server) Serve(`.
KEYWORD_NAME = re.compile(KEYWORD_DEFINITION.pattern + rf"\s+(?:\([^)]*\)\s*)?({IDENTIFIER})")
# A call-like name, unless a string follows it: `describe("parser", ...)`, `it("works")`
# open test blocks, they define nothing by that name.
CALLED_NAME = re.compile(rf"({IDENTIFIER})\s*\((?!\s*[\"'`])")
# A dotted name (`Store.put`) counts as its last part: the question is about `put`.
QUALIFIED_NAME = re.compile(rf"{IDENTIFIER}(?:\.{IDENTIFIER})*")
CONTROL = re.compile(
    r"(?:\}\s*)?(?:if|else|elif|elsif|for|foreach|while|do|switch|case|default|try|catch|"
    r"except|finally|with|return|match|loop|select|when|unless|until|guard|defer|go|using|"
    r"throw|raise|yield|await|new|sizeof|typeof|assert)\b")
COMMENT = re.compile(r"(?:#|//|/\*|\*|--|;)")
CLOSERS = ("}", "end", ")", "]")


def definitions(text: str, language: str | None) -> list[Definition]:
    """Definitions with a non-empty body, outermost first, in order of their start."""
    return symbols(text, language).definitions


def symbols(text: str, language: str | None) -> Symbols:
    """The definitions in one file's code and the identifiers it writes: Python's
    definitions through `ast`, other languages' through their grammar (`syntax`), the
    rest by indentation, where any identifier-shaped word counts as written."""
    read = syntax.read(text, language)
    if language == "python" and "\r" not in text:  # ast counts a lone \r as a line break
        try:
            return Symbols(_python_definitions(text),
                           read.references if read else _words(text))
        except (SyntaxError, ValueError, RecursionError):
            pass
    return read or Symbols(_indented_definitions(text, language), _words(text))


def _words(text: str) -> list[tuple[int, str]]:
    return [(match.start(), match.group()) for match in re.finditer(IDENTIFIER, text)]


def parse_python(text: str) -> ast.Module:
    """`ast.parse` without the warnings that odd input (`1if x`, `"\\d"`) makes Python
    print on stderr: the input is data to us, not code we run. CPython's parser gives up
    on some long non-Python lines (`x x x ...` thousands of times) with a MemoryError:
    that is a SyntaxError here, as for any text that is not Python."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text)
        except MemoryError:
            raise SyntaxError("too complex for Python's parser") from None


def _python_definitions(text: str) -> list[Definition]:
    starts = line_starts(text)
    lines = text.split("\n")
    found = []
    for node in _statements(parse_python(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        # decorators (`@property`, `@app.command()`) say what the definition is: they
        # belong to its signature
        first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        body_line = node.body[0].lineno - 1
        if body_line <= first:  # `def f(): return 1` encloses nothing below it
            continue
        last = body_line
        while last - 1 > first and _is_blank_or_comment(lines[last - 1], "#"):
            last -= 1
        found.append(Definition((starts[first], starts[last]),
                                (starts[last], starts[min(node.end_lineno, len(starts) - 1)]),
                                node.name))
    return sorted(found, key=lambda d: d.signature)


def _statements(node: ast.AST):
    """Every statement below `node`; definitions are statements, so expressions are skipped."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
            yield child
            yield from _statements(child)


def _is_blank_or_comment(line: str, marker: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith(marker)


def looks_like_definition(line: str, language: str | None) -> bool:
    stripped = line.strip()
    if language == "python":
        return bool(PYTHON_DEFINITION.match(line))
    if not stripped or COMMENT.match(stripped) or CONTROL.match(stripped) \
            or stripped.endswith((";", ",")):
        return False
    if KEYWORD_DEFINITION.search(stripped):
        return True
    return bool(CALL_LIKE.search(stripped)) and stripped.endswith(("{", ")", ":"))


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _indented_definitions(text: str, language: str | None) -> list[Definition]:
    starts = line_starts(text)
    lines = text.split("\n")
    found = []
    for index, line in enumerate(lines):
        if not looks_like_definition(line, language):
            continue
        depth = _indent(line)
        signature_end = index + 1
        following = [j for j in range(index + 1, min(index + 3, len(lines))) if lines[j].strip()]
        if following and lines[following[0]].strip() == "{" and _indent(lines[following[0]]) == depth:
            signature_end = following[0] + 1
        last = None
        for j in range(signature_end, len(lines)):
            if not lines[j].strip():
                continue
            if _indent(lines[j]) <= depth:
                if last is not None and lines[j].lstrip().startswith(CLOSERS):
                    last = j  # the block's closing brace (or `end`) belongs to it
                break
            last = j
        if last is not None and last + 1 < len(starts):
            found.append(Definition((starts[index], starts[signature_end]),
                                    (starts[signature_end], starts[last + 1]),
                                    definition_name(line)))
    return found


def definition_name(line: str) -> str:
    """The name a definition line introduces: after its keyword, else before its `(`;
    "" for anonymous ones (`const f = function(x) {`, `describe("x", () => {`)."""
    match = KEYWORD_NAME.search(line) or CALLED_NAME.search(line)
    if match is None or KEYWORD_DEFINITION.fullmatch(match.group(1)):
        return ""
    return match.group(1)


def identifiers(text: str) -> set[str]:
    """The names `text` mentions (a query naming functions, say): every identifier-shaped
    word, and of a dotted name only its last part."""
    return {name.rsplit(".", 1)[-1] for name in QUALIFIED_NAME.findall(text)}
