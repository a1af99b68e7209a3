"""The package's import rules, read from the source (no module is imported).

- No cycle among the modules' load-time imports (imports inside functions, which run on
  first use, and `TYPE_CHECKING` blocks are not load-time).
- torch, transformers, tiktoken and onnxruntime are imported only by the model modules.
- The core (what the input is, scoring, selection, models, the pipeline and the job)
  never imports a front end, at load time or later.
- The HTTP front end's shared parts know neither the server nor its proxy, and the
  proxy does not import the server.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "crossprefill_cli"
MODELS = {"draft", "scoring", "loading", "target"}
HEAVY = {"torch", "transformers", "tiktoken", "onnxruntime"}
FRONT_ENDS = {"__main__", "cli", "environment", "render", "estimate_table", "extras", "client",
              "serve", "proxy", "server_models", "http_wire", "chat_requests", "batch",
              "batch_files", "ray_engine"}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(module: Path) -> tuple[set[str], set[str], set[str]]:
    """The package modules `module` imports at load time, those it imports anywhere, and
    the outside packages it imports."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    at_load, anywhere, outside = set(), set(), set()

    def visit(node: ast.AST, loading: bool) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            anywhere.update(names)
            if loading:
                at_load.update(names)
        elif isinstance(node, ast.ImportFrom):
            outside.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
        inside = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, loading and not inside)

    visit(tree, True)
    return at_load, anywhere, outside


GRAPH = {path.stem: imports(path) for path in sorted(PACKAGE.glob("*.py"))}


def test_no_cycle_among_load_time_imports():
    state: dict[str, str] = {}

    def walk(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for other in sorted(GRAPH[name][0] & set(GRAPH)):
            assert state.get(other) != "open", " -> ".join([*trail, name, other])
            if other not in state:
                walk(other, [*trail, name])
        state[name] = "done"

    for name in GRAPH:
        if name not in state:
            walk(name, [])


def test_only_the_model_modules_import_model_libraries():
    for name, (_, _, outside) in GRAPH.items():
        if name not in MODELS:
            assert not outside & HEAVY, (name, outside & HEAVY)


def test_the_core_never_imports_a_front_end():
    for name, (_, anywhere, _) in GRAPH.items():
        if name not in FRONT_ENDS and name != "__init__":
            assert not anywhere & FRONT_ENDS, (name, anywhere & FRONT_ENDS)


def test_the_proxy_and_the_servers_shared_parts_do_not_import_the_server():
    assert "serve" not in GRAPH["proxy"][1]
    for shared in ("http_wire", "server_models"):
        assert not GRAPH[shared][1] & {"serve", "proxy"}, shared
