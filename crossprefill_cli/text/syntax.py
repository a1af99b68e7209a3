"""Definitions and references in code, read by tree-sitter grammars.

A dump's code is a graph of symbols: definitions (functions, methods, classes, types)
and the names each piece of code writes (calls, imports, types it uses). Ranking that
graph from what a task names (see `units.graph`) finds what the task needs when its
words do not point there: the call sites of a changed function, the helpers a named
method calls. This module reads both halves from a file's text through the grammars of
`tree-sitter-language-pack` (bundled in its wheel: nothing is downloaded), for the
languages a dump commonly holds (`GRAMMARS`). A language without a grammar here, or a
parse that fails, gives None, and callers fall back to `outline`'s indentation rules and
to identifier-shaped words.

- `definitions`: the nodes of a language's `DEFINITIONS` types that have a name and a
  body, as `outline.Definition`s on whole lines: the signature runs from the
  definition's first line to the line its body starts on (the line after, when the body
  opens on the definition's own line or with a lone `{`), the body from there to the
  definition's last line. A JavaScript function or class assigned to a name
  (`const f = () => {`, `exports.f = function () {`, `f: function () {`) is a definition
  of that name.
- `references`: every identifier the code writes (identifiers, type, field and
  property identifiers, Ruby constants), except the names definitions introduce.

`outline` chooses between these readings and its own. Offsets are character offsets
into the given text (tree-sitter counts UTF-8 bytes).
"""

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import tree_sitter
import tree_sitter_language_pack


# our language names (`dumps.EXTENSIONS`) -> the pack's grammar; TypeScript through
# `tsx`, which reads JSX too (a .tsx file is labelled typescript)
GRAMMARS = {"python": "python", "javascript": "javascript", "typescript": "tsx", "go": "go",
            "rust": "rust", "java": "java", "c": "c", "cpp": "cpp", "ruby": "ruby",
            "csharp": "csharp", "php": "php", "kotlin": "kotlin", "scala": "scala"}
_JS_DEFINITIONS = ("function_declaration", "generator_function_declaration", "class_declaration",
                   "method_definition", "variable_declarator", "pair", "assignment_expression")
DEFINITIONS = {
    "python": ("function_definition", "class_definition"),
    "javascript": _JS_DEFINITIONS,
    "typescript": _JS_DEFINITIONS + ("abstract_class_declaration", "interface_declaration",
                                     "enum_declaration", "internal_module"),
    "go": ("function_declaration", "method_declaration", "type_spec"),
    "rust": ("function_item", "struct_item", "enum_item", "trait_item", "impl_item", "mod_item",
             "union_item"),
    "java": ("class_declaration", "interface_declaration", "enum_declaration",
             "record_declaration", "annotation_type_declaration", "method_declaration",
             "constructor_declaration"),
    "c": ("function_definition", "struct_specifier", "union_specifier", "enum_specifier"),
    "cpp": ("function_definition", "struct_specifier", "union_specifier", "enum_specifier",
            "class_specifier", "namespace_definition"),
    "ruby": ("method", "singleton_method", "class", "module"),
    "csharp": ("class_declaration", "struct_declaration", "interface_declaration",
               "enum_declaration", "record_declaration", "method_declaration",
               "constructor_declaration", "namespace_declaration"),
    "php": ("function_definition", "method_declaration", "class_declaration",
            "interface_declaration", "trait_declaration", "enum_declaration"),
    "kotlin": ("function_declaration", "class_declaration", "object_declaration"),
    "scala": ("function_definition", "class_definition", "object_definition",
              "trait_definition"),
}
# leaf kinds that name something the code uses; kinds a grammar lacks are left out
IDENTIFIER_KINDS = ("identifier", "type_identifier", "field_identifier", "property_identifier",
                    "shorthand_property_identifier", "constant", "simple_identifier", "name",
                    "namespace_identifier", "package_identifier")
# what a name or a function-valued assignment is written as (JavaScript's `const f = ...`)
FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function",
                             "generator_function", "class"})
LAST_NAME = re.compile(r"[A-Za-z_$][\w$]*(?=\W*$)")


@dataclass(frozen=True)
class Definition:
    """A definition's signature span, the span of code it encloses, and its name."""

    signature: tuple[int, int]
    body: tuple[int, int]
    name: str = ""  # "" when none is found (`const f = () => {` read by indentation)


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts, plus len(text) as the end of the last line."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


@cache
def _grammar(language: str) -> tuple[tree_sitter.Parser, tree_sitter.Query, tree_sitter.Query]:
    """The parser of `language` and its queries for definitions and identifiers."""
    grammar = tree_sitter_language_pack.get_language(GRAMMARS[language])
    kinds = [kind for kind in IDENTIFIER_KINDS if grammar.id_for_node_kind(kind, True)]
    return (tree_sitter_language_pack.get_parser(GRAMMARS[language]),
            tree_sitter.Query(grammar, "[" + " ".join(
                f"({kind})" for kind in DEFINITIONS[language]) + "] @definition"),
            tree_sitter.Query(grammar, "[" + " ".join(f"({kind})" for kind in kinds)
                              + "] @reference"))


class _Source:
    """One file parsed: its tree, and byte offsets turned into character offsets."""

    def __init__(self, text: str, language: str):
        data = text.encode("utf-8", "surrogatepass")
        self.parser, self.definition_query, self.reference_query = _grammar(language)
        self.tree = self.parser.parse(data)
        self.text = text
        # each byte's character: count the bytes that start one (not 0b10xxxxxx)
        self._chars = None if len(data) == len(text) else np.append(
            np.cumsum((np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80) - 1, len(text))

    def offset(self, byte: int) -> int:
        return byte if self._chars is None else int(self._chars[byte])

    def nodes(self, query: tree_sitter.Query, capture: str) -> list[tree_sitter.Node]:
        found = tree_sitter.QueryCursor(query).captures(self.tree.root_node).get(capture, [])
        return sorted(found, key=lambda node: node.start_byte)


def _name_and_body(node: tree_sitter.Node) -> tuple[tree_sitter.Node | None, tree_sitter.Node | None]:
    """A definition node's name and body nodes (None where it has none)."""
    if node.type in ("variable_declarator", "pair", "assignment_expression"):
        value = node.child_by_field_name("value") or node.child_by_field_name("right")
        if value is None or value.type not in FUNCTION_VALUES:
            return None, None
        name = (node.child_by_field_name("name") or node.child_by_field_name("key")
                or node.child_by_field_name("left"))
        if name is not None and name.type == "member_expression":
            name = name.child_by_field_name("property")
        return name, value.child_by_field_name("body")
    if node.type == "type_spec":  # Go: only structs and interfaces have bodies
        body = node.child_by_field_name("type")
        if body is None or body.type not in ("struct_type", "interface_type"):
            return None, None
        return node.child_by_field_name("name"), body
    name = node.child_by_field_name("type" if node.type == "impl_item" else "name")
    declarator = node.child_by_field_name("declarator")
    while name is None and declarator is not None:  # C: `int *parse(...)` -> parse
        inner = declarator.child_by_field_name("declarator")
        if inner is None:
            name = declarator
        declarator = inner
    body = node.child_by_field_name("body")
    if body is None:  # Kotlin and Scala bodies are children without a field name
        body = next((child for child in node.named_children
                     if child.type in ("function_body", "class_body", "template_body")), None)
    return name, body


def _signature_end(source: _Source, starts: list[int], node_line: int, body: tree_sitter.Node) -> int:
    """The line the body starts on, when it starts a line of its own below the
    definition's first line and opens with no bracket; else the line after it."""
    line = body.start_point[0]
    start = source.offset(body.start_byte)
    before = source.text[starts[line]:start]
    opens = source.text[start:start + 1] in "{[(:"
    return line if line > node_line and not before.strip() and not opens else line + 1


@dataclass(frozen=True)
class Symbols:
    """A file's definitions and the identifiers its code writes (see the module doc)."""

    definitions: list[Definition]
    references: list[tuple[int, str]]  # (offset, name)


def read(text: str, language: str | None) -> Symbols | None:
    """The definitions with a non-empty body, in order of their start, and the
    identifiers that no definition introduces there (see the module docstring); None
    when `language` has no grammar here."""
    if language not in GRAMMARS:
        return None
    source = _Source(text, language)
    starts = line_starts(text)
    last_line = len(starts) - 1
    found, introduced = [], set()
    for node in source.nodes(source.definition_query, "definition"):
        name, body = _name_and_body(node)
        if name is None:
            continue
        introduced.add(name.start_byte)
        if body is None:
            continue
        first = node.start_point[0]
        signature_end = min(_signature_end(source, starts, first, body), last_line)
        body_end = min(node.end_point[0] + 1, last_line)
        if signature_end >= body_end:
            continue
        words = LAST_NAME.search(text[source.offset(name.start_byte):source.offset(name.end_byte)])
        found.append(Definition((starts[first], starts[signature_end]),
                                (starts[signature_end], starts[body_end]),
                                words.group() if words else ""))
    written = [(source.offset(node.start_byte), node.text.decode("utf-8", "replace"))
               for node in source.nodes(source.reference_query, "reference")
               if node.start_byte not in introduced]
    return Symbols(found, written)
