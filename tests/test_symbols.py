"""Definitions and references through tree-sitter (`syntax`, `outline.symbols`) and the
symbol graph ranked from what a task names (`units.graph`, `evidence.seeds`)."""

import numpy as np
import pytest

from crossprefill_cli.text import outline, syntax
from crossprefill_cli.units import chunks, evidence, graph

SOURCES = {
    "javascript": ("class Client extends Base {\n  send(request) {\n    return transport(request);\n"
                   "  }\n}\nfunction transport(r) {\n  return r;\n}\n"
                   "const retry = (fn) => {\n  return fn();\n};\n"
                   "exports.close = function (c) {\n  c.end();\n};\n",
                   ["Client", "send", "transport", "retry", "close"]),
    "typescript": ("export interface Options {\n  retries: number;\n}\n"
                   "export class Ky<T> implements Base {\n  fetch(input: string): Promise<T> {\n"
                   "    return go(input);\n  }\n}\nenum Level {\n  Low,\n}\n",
                   ["Options", "Ky", "fetch", "Level"]),
    "go": ("type Server struct {\n\tAddr string\n}\n\nfunc (s *Server) Serve(l Listener) error {\n"
           "\treturn handle(l)\n}\n\nfunc handle(l Listener) error {\n\treturn nil\n}\n",
           ["Server", "Serve", "handle"]),
    "rust": ("pub struct Error {\n    inner: Box<ErrorImpl>,\n}\nimpl<E> Context<E> for Error {\n"
             "    fn context(self) -> Self {\n        wrap(self)\n    }\n}\n"
             "fn wrap(e: Error) -> Error {\n    e\n}\n",
             ["Error", "Error", "context", "wrap"]),  # an impl block is named by its type
    "java": ("public class Shape {\n  @Override\n  public double area(int scale) {\n"
             "    return scale * side();\n  }\n}\n", ["Shape", "area"]),
    "c": ("static const char *\nparse_header(const char *line)\n{\n  return skip(line);\n}\n"
          "struct point {\n  int x;\n};\n", ["parse_header", "point"]),
    "cpp": ("namespace net {\nclass Socket : public Base {\n public:\n  int send(int n) override {\n"
            "    return write(n);\n  }\n};\nint Socket::recv(int n)\n{\n  return n;\n}\n}\n",
            ["net", "Socket", "send", "recv"]),
    "ruby": ("module Rack\n  class Lint\n    def call(env)\n      check(env)\n    end\n  end\nend\n",
             ["Rack", "Lint", "call"]),
}


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_each_grammar_finds_the_definitions_with_bodies(language):
    text, names = SOURCES[language]
    found = syntax.read(text, language)
    assert [d.name for d in found.definitions] == names
    for definition in found.definitions:
        assert definition.signature[1] == definition.body[0] < definition.body[1]
        assert text[definition.signature[0] - 1:definition.signature[0]] in ("", "\n")


def test_signature_and_body_lines():
    text = SOURCES["c"][0]
    parse_header = syntax.read(text, "c").definitions[0]
    # the return type's line, the name's line and Allman's lone brace are the signature
    assert text[slice(*parse_header.signature)] == (
        "static const char *\nparse_header(const char *line)\n{\n")
    assert text[slice(*parse_header.body)] == "  return skip(line);\n}\n"
    ruby = SOURCES["ruby"][0]
    call = syntax.read(ruby, "ruby").definitions[2]
    assert ruby[slice(*call.signature)] == "    def call(env)\n"
    assert ruby[slice(*call.body)] == "      check(env)\n    end\n"


def test_references_are_what_the_code_writes_not_what_it_defines():
    text = SOURCES["go"][0]
    written = syntax.read(text, "go").references
    assert all(text[offset:offset + len(name)] == name for offset, name in written)
    names = [name for _, name in written]
    assert names.count("handle") == 1  # the call; the definition's name is not a reference
    assert {"Listener", "Addr", "s", "l"} <= set(names)


def test_offsets_count_characters_not_bytes():
    text = "// ünïcödé ✓\nfunction größe(x) {\n  return maß(x);\n}\n"
    found = syntax.read(text, "javascript")
    assert [d.name for d in found.definitions] == ["größe"]
    assert text[found.definitions[0].signature[0]:].startswith("function größe")
    assert ("maß" in [name for _, name in found.references])
    assert all(text[offset:offset + len(name)] == name for offset, name in found.references)


def test_outline_reads_python_by_ast_and_unknown_languages_by_indentation():
    python = "@cache\ndef load(path):\n    return read(path)\n"
    symbols = outline.symbols(python, "python")
    assert [(d.name, python[slice(*d.signature)]) for d in symbols.definitions] == [
        ("load", "@cache\ndef load(path):\n")]
    assert "read" in {name for _, name in symbols.references}
    lua = "function greet(name)\n  print(name)\nend\n"
    assert syntax.read(lua, "lua") is None
    symbols = outline.symbols(lua, "lua")
    assert [d.name for d in symbols.definitions] == ["greet"]
    assert {name for _, name in symbols.references} >= {"print", "name"}
    # Python that ast cannot parse goes through the grammar, which reads past the error
    broken = "def ok(a):\n    return a\n\ndef broken(:\n    pass\n"
    assert [d.name for d in outline.symbols(broken, "python").definitions][0] == "ok"


CODE = ("def stop_after(n):\n    return n\n\n"
        "def run(x):\n    return stop_after(x)\n\n"
        "def caller():\n    return run(1)\n\n"
        "def unrelated():\n    return 0\n")


def _graph(text: str, language: str = "python"):
    symbols = outline.symbols(text, language)
    units = [chunks.Unit(start, end) for start, end in zip(
        syntax.line_starts(text)[:-1], syntax.line_starts(text)[1:])]
    return units, graph.build(units, symbols.definitions, symbols.references, [(0, len(text))])


def test_rank_flows_from_the_seed_to_its_callers_and_fades_with_each_step():
    units, symbols = _graph(CODE)
    assert symbols.names == ["", "stop_after", "run", "caller", "unrelated"]
    rank = symbols.ranks(np.array([0, 1.0, 0, 0, 0]))
    # `unrelated` only shares the file's top level with the seed
    assert rank[1] > rank[2] > rank[3] > rank[4] > 0
    assert rank.sum() == pytest.approx(1.0)
    per_unit = symbols.unit_ranks(np.array([0, 1.0, 0, 0, 0]))
    assert per_unit[4] == rank[2]  # "    return stop_after(x)" lies in `run`


def test_a_name_defined_in_too_many_places_links_nothing():
    many = "".join(f"class C{i}:\n    def get(self):\n        return {i}\n\n"
                   for i in range(graph.MAX_DEFINERS + 1))
    _, symbols = _graph(many + "def use(c):\n    return c.get()\n")
    use = symbols.names.index("use")
    linked = set(symbols.targets[symbols.sources == use].tolist())
    assert linked == {0}  # only its file's top level, none of the nine `get`s


def test_seeds_are_the_names_the_task_writes_or_asks_about_in_words():
    asked = set(evidence.terms.terms("When does it stop retrying?"))
    weights = evidence.seeds(["", "stop_after_attempt", "retry", "iter", "wait_fixed"], asked,
                             {"iter"})
    assert weights.tolist() == pytest.approx([0, 1 / 2, 1, 1, 0])  # "after" is a function word


def test_unit_scores_rank_the_caller_of_a_named_function_above_unrelated_code():
    units, symbols = _graph(CODE)
    texts = [CODE[u.start:u.end] for u in units]
    scores = evidence.unit_scores(
        "evidence", unit_texts=texts, required=[False] * len(units), query="Explain stop_after",
        attention=np.zeros(len(units)), surprise=None, symbols=symbols)
    line = {text.strip(): score for text, score in zip(texts, scores)}
    assert line["return run(1)"] > line["return 0"]
    assert line["return stop_after(x)"] > line["return run(1)"]
