"""The package's layers and import rules, read from the source (no module is imported).

    apps (cli, http, batch, mcp) -> pipeline -> units -> text -> {settings, results, errors}
                                       -> models ------->

- A module imports only its own package and the layers below it: `units` may read
  `text`, nothing below `pipeline` knows a profile at run time (`units.layout` takes
  one handed in), and `units` and `models` never import each other.
- The front ends never import each other, except that the command line starts the
  others (`crossprefill serve`, `crossprefill batch`, `crossprefill mcp`).
- torch, transformers, tiktoken and onnxruntime are imported only in `models`.
- No cycle among the modules' load-time imports (imports inside functions, which run
  on first use, and `TYPE_CHECKING` blocks are not load-time).

The package's faces are no layer: `crossprefill_cli/__init__.py` and
`pipeline/__init__.py` (which keeps the names `crossprefill_cli.pipeline` had, for one
release) import on first use, `__main__.py` is `python -m crossprefill_cli`, and
`draft.py` and `target.py` keep the documented `crossprefill_cli.draft.load_draft` and
`crossprefill_cli.target.load_target` for one release.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "crossprefill_cli"
BASE = 0
# the layer of each package; a module may import its own package and lower layers
LAYERS = {"": BASE, "text": 1, "units": 2, "models": 2, "pipeline": 3, "apps.cli": 4,
          "apps.http": 4, "apps.batch": 4, "apps.mcp": 4}
SIBLINGS_APART = [("units", "models")]
# the package's faces, `python -m crossprefill_cli`, and documented paths kept one release
FACES = {"", "__main__", "pipeline", "draft", "target"}
HEAVY = {"torch", "transformers", "tiktoken", "onnxruntime"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str) -> str:
    """The layer package a module is in ('' for the base modules)."""
    for package in sorted(LAYERS, key=len, reverse=True):
        if package and (name == package or name.startswith(package + ".")):
            return package
    return ""


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> tuple[set[str], set[str], set[str]]:
    """The package modules `path` imports at load time, those it imports anywhere, and
    the outside packages it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    at_load, anywhere, outside = set(), set(), set()

    def resolved(node: ast.ImportFrom) -> list[str]:
        if node.level:  # relative: from the module's own package
            base = here.split(".")[:len(here.split(".")) - node.level + (
                1 if path.name == "__init__.py" else 0)]
            prefix = ".".join(filter(None, [*base, node.module or ""]))
        elif (node.module or "").split(".")[0] == "crossprefill_cli":
            prefix = node.module.removeprefix("crossprefill_cli").lstrip(".")
        else:
            return []
        candidates = [".".join(filter(None, [prefix, alias.name])) for alias in node.names]
        return [c if c in MODULES else prefix for c in candidates]

    def visit(node: ast.AST, loading: bool) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom):
            names = resolved(node)
            if names:
                anywhere.update(names)
                if loading:
                    at_load.update(names)
            elif not node.level:
                outside.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
        inside = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, loading and not inside)

    visit(tree, True)
    return at_load - {here}, anywhere - {here}, outside


PATHS = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(path) for path in PATHS}
GRAPH = {module_name(path): imports(path) for path in PATHS}


def test_every_module_lives_in_a_layer():
    assert {package_of(name) for name in MODULES} == set(LAYERS)
    assert all(package_of(name) in LAYERS for name in MODULES)


def test_modules_import_only_their_own_package_and_lower_layers():
    wrong = []
    for name, (_, anywhere, _) in GRAPH.items():
        if name in FACES:
            continue
        own = package_of(name)
        for other in anywhere:
            theirs = package_of(other)
            allowed = (theirs == own or LAYERS[theirs] < LAYERS[own]
                       or (own == "apps.cli" and theirs.startswith("apps.")))
            if not allowed or {own, theirs} in [set(pair) for pair in SIBLINGS_APART]:
                wrong.append(f"{name} -> {other}")
    assert wrong == []


def test_only_models_import_model_libraries():
    for name, (_, _, outside) in GRAPH.items():
        if package_of(name) != "models":
            assert not outside & HEAVY, (name, outside & HEAVY)


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


def test_the_rules_see_real_imports():
    # a check that reads nothing passes everything: the graph must hold known arrows
    assert "pipeline.analysis" in GRAPH["pipeline.job"][0]
    assert "models.backends" in GRAPH["pipeline.draft_source"][0]
    assert "models.draft" in GRAPH["models.backends"][1]
    assert "apps.http.server" in GRAPH["apps.cli.serve_command"][1]
    assert "apps.mcp.server" in GRAPH["apps.cli.mcp_command"][1]
    assert "pipeline.job" in GRAPH["apps.mcp.server"][0]
    assert "torch" in GRAPH["models.draft"][2]
