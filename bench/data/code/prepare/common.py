"""Shared preparation code: repositories, file pools, parsers, dump writers."""
import ast
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

MIRROR = "/work/.mirror"
REPOMIX = "/tmp/npmtools/node_modules/.bin/repomix"
FTP = "/tmp/tools/bin/files-to-prompt"
GITINGEST = "/tmp/tools/bin/gitingest"
CAP = 52000          # target tokens of file text per dump (the writers add their own framing)
FLOOR = 15000

# language of a file by extension
LANG = {".py": "python", ".go": "go", ".rs": "rust", ".ts": "typescript"}

REPOS = {
    "jd/tenacity": [r"^tenacity/.*\.py$", r"^tests/.*\.py$", r"^README\.rst$"],
    "hynek/structlog": [r"^(src/)?structlog/.*\.py$", r"^tests/.*\.py$", r"^README\.(md|rst)$"],
    "pallets/itsdangerous": [r"^(src/)?itsdangerous/.*\.py$", r"^tests/.*\.py$", r"^README\.(md|rst)$",
                             r"^docs/[^/]*\.rst$"],
    "spf13/cobra": [r"^[^/]*\.go$", r"^doc/[^/]*\.go$", r"^README\.md$"],
    "pallets/click": [r"^(src/)?click/.*\.py$", r"^tests/.*\.py$", r"^README\.(md|rst)$"],
    "psf/requests": [r"^(src/)?requests/[^/]*\.py$", r"^tests/[^/]*\.py$", r"^test_requests\.py$",
                     r"^README\.(md|rst)$"],
    "encode/httpx": [r"^httpx/.*\.py$", r"^tests/.*\.py$", r"^README\.md$"],
    "sindresorhus/ky": [r"^source/.*\.ts$", r"^test/.*\.ts$", r"^readme\.md$"],
    "dtolnay/anyhow": [r"^src/.*\.rs$", r"^tests/.*\.rs$", r"^README\.md$"],
}
EXCLUDE = re.compile(r"(^|/)(packages|vendor|vendored|_vendor|node_modules)/|\.d\.ts$|(^|/)fixtures?/")

FORMATS = ["repomix-xml", "repomix-markdown", "repomix-plain", "files-to-prompt",
           "files-to-prompt-cxml", "files-to-prompt-markdown", "gitingest"]


def gitdir(repo):
    return f"{MIRROR}/{repo.replace('/', '+')}/repo"


def git(repo, *args, text=True):
    out = subprocess.run(["git", "--git-dir", gitdir(repo), *args], capture_output=True, check=True)
    return out.stdout.decode("utf-8", "replace") if text else out.stdout


class Blobs:
    """git cat-file --batch over one repository, cached by blob id."""

    def __init__(self, repo):
        self.p = subprocess.Popen(["git", "--git-dir", gitdir(repo), "cat-file", "--batch"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.cache = {}

    def get(self, spec):
        if spec in self.cache:
            return self.cache[spec]
        self.p.stdin.write(spec.encode() + b"\n")
        self.p.stdin.flush()
        header = self.p.stdout.readline().split()
        if header[-1] == b"missing":
            self.cache[spec] = None
            return None
        size = int(header[2])
        data = self.p.stdout.read(size + 1)[:-1]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if "\x00" in (text or ""):
            text = None
        self.cache[spec] = text
        return text


def tree(repo, commit):
    """path -> blob id of regular files at commit."""
    out = {}
    for line in git(repo, "ls-tree", "-r", commit).splitlines():
        meta, path = line.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob" and mode in ("100644", "100755"):
            out[path] = blob
    return out


def in_pool(repo, path):
    return not EXCLUDE.search(path) and any(re.search(p, path) for p in REPOS[repo])


def pool(repo, commit, blobs, tok):
    """path -> text of the pool files at commit (text files under 20k tokens)."""
    files = {}
    for path, blob in tree(repo, commit).items():
        if not in_pool(repo, path):
            continue
        text = blobs.get(blob)
        if text is None or not text.strip():
            continue
        if tok(text) > 20000:
            continue
        files[path] = text
    return files


def lang_of(path):
    return LANG.get(os.path.splitext(path)[1])


# ---------------------------------------------------------------- parsing
_TS = {}


def ts_parser(lang):
    if lang not in _TS:
        import tree_sitter as ts
        if lang == "go":
            import tree_sitter_go as m
            L = m.language()
        elif lang == "rust":
            import tree_sitter_rust as m
            L = m.language()
        else:
            import tree_sitter_typescript as m
            L = m.language_typescript()
        _TS[lang] = ts.Parser(ts.Language(L))
    return _TS[lang]


class Def:
    __slots__ = ("name", "qual", "params", "required", "start", "end", "body")

    def __init__(self, name, qual, params, required, start, end, body):
        self.name, self.qual, self.params, self.required = name, qual, params, required
        self.start, self.end, self.body = start, end, body  # 1-based lines, inclusive


def _py_params(a):
    params, required = [], []
    pos = a.posonlyargs + a.args
    nodef = len(pos) - len(a.defaults)
    for i, x in enumerate(pos):
        params.append(x.arg)
        if i < nodef:
            required.append(x.arg)
    if a.vararg:
        params.append("*" + a.vararg.arg)
    for x, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(x.arg)
        if d is None:
            required.append(x.arg)
    if a.kwarg:
        params.append("**" + a.kwarg.arg)
    return tuple(params), tuple(required)


def py_defs_calls(text):
    """(defs, calls) of Python source: calls = [(name, line)]."""
    try:
        tree_ = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    lines = text.splitlines()
    defs, calls = [], []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params, req = _py_params(child.args)
                qual = prefix + child.name
                body = "\n".join(lines[child.lineno:child.end_lineno])
                defs.append(Def(child.name, qual, params, req, child.lineno, child.end_lineno, body))
                walk(child, qual + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(tree_, "")
    for node in ast.walk(tree_):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                calls.append((f.id, f.lineno))
            elif isinstance(f, ast.Attribute):
                calls.append((f.attr, f.end_lineno))
    return defs, calls


def _text(n):
    return n.text.decode("utf-8", "replace")


def ts_defs_calls(text, lang):
    src = text.encode()
    root = ts_parser(lang).parse(src).root_node
    if root.has_error:
        return None
    defs, calls = [], []
    lines = text.splitlines()

    def add(node, name_node, params_node, prefix):
        name = _text(name_node)
        params, required = [], []
        if params_node is not None:
            for p in params_node.named_children:
                if p.type in ("comment",):
                    continue
                if lang == "go":
                    names = [_text(c) for c in p.children_by_field_name("name")] or ["_"]
                    pre = "..." if p.type == "variadic_parameter_declaration" else ""
                    for nm in names:
                        params.append(pre + nm)
                        required.append(pre + nm)
                elif lang == "rust":
                    if p.type == "self_parameter":
                        nm = "self"
                    else:
                        pat = p.child_by_field_name("pattern")
                        nm = _text(pat) if pat is not None else _text(p)
                    params.append(nm)
                    required.append(nm)
                else:
                    pat = p.child_by_field_name("pattern")
                    nm = _text(pat) if pat is not None else _text(p)
                    nm = re.sub(r"\s+", " ", nm)
                    params.append(nm)
                    if p.type == "required_parameter" and p.child_by_field_name("value") is None:
                        required.append(nm)
        start, end = node.start_point[0] + 1, node.end_point[0] + 1
        body = "\n".join(lines[start:end])
        defs.append(Def(name, prefix + name, tuple(params), tuple(required), start, end, body))

    def walk(node, prefix):
        t = node.type
        if lang == "go":
            if t == "function_declaration":
                add(node, node.child_by_field_name("name"), node.child_by_field_name("parameters"), "")
            elif t == "method_declaration":
                recv = node.child_by_field_name("receiver")
                rt = re.sub(r"[^A-Za-z0-9_]", "", _text(recv).split()[-1]) if recv else ""
                add(node, node.child_by_field_name("name"), node.child_by_field_name("parameters"), rt + ".")
        elif lang == "rust":
            if t == "impl_item":
                ty = node.child_by_field_name("type")
                prefix = (_text(ty) if ty else "") + "."
            elif t == "function_item":
                add(node, node.child_by_field_name("name"), node.child_by_field_name("parameters"), prefix)
        else:
            if t == "class_declaration":
                nm = node.child_by_field_name("name")
                prefix = (_text(nm) if nm else "") + "."
            elif t == "function_declaration":
                add(node, node.child_by_field_name("name"), node.child_by_field_name("parameters"), prefix)
            elif t == "method_definition":
                add(node, node.child_by_field_name("name"), node.child_by_field_name("parameters"), prefix)
            elif t == "variable_declarator":
                v = node.child_by_field_name("value")
                nm = node.child_by_field_name("name")
                if v is not None and nm is not None and nm.type == "identifier" and \
                        v.type in ("arrow_function", "function_expression", "function"):
                    params = v.child_by_field_name("parameters")
                    decl = node.parent if node.parent is not None else node
                    if decl.parent is not None and decl.parent.type == "export_statement":
                        decl = decl.parent
                    add(decl, nm, params, prefix)
        if t == "call_expression":
            f = node.child_by_field_name("function")
            while f is not None and f.type == "generic_function":
                f = f.child_by_field_name("function")
            target = None
            if f is not None:
                if f.type == "identifier":
                    target = f
                elif f.type == "selector_expression":
                    target = f.child_by_field_name("field")
                elif f.type == "field_expression":
                    target = f.child_by_field_name("field")
                elif f.type == "scoped_identifier":
                    target = f.child_by_field_name("name")
                elif f.type == "member_expression":
                    target = f.child_by_field_name("property")
            if target is not None:
                calls.append((_text(target), target.start_point[0] + 1))
        for c in node.children:
            walk(c, prefix)

    walk(root, "")
    return defs, calls


def defs_calls(path, text):
    lang = lang_of(path)
    if lang is None:
        return None
    if lang == "python":
        return py_defs_calls(text)
    return ts_defs_calls(text, lang)


# ---------------------------------------------------------------- dumps
def header_line(fmt, path):
    return {"repomix-xml": f'<file path="{path}">', "repomix-markdown": f"## File: {path}",
            "repomix-plain": f"File: {path}", "files-to-prompt": path,
            "files-to-prompt-cxml": f"<source>{path}</source>", "files-to-prompt-markdown": path,
            "gitingest": f"FILE: {path}"}[fmt]


def write_dump(files, fmt, name):
    """Materialise files (path -> text) in a folder named `name` and run the real tool."""
    base = Path(tempfile.mkdtemp(prefix="cqdump-"))
    root = base / name
    for path, text in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    tops = sorted({p.split("/")[0] for p in files})
    try:
        if fmt.startswith("repomix"):
            style = fmt.split("-")[1]
            cmd = [REPOMIX, "--stdout", "--style", style]
        elif fmt == "gitingest":
            cmd = [GITINGEST, ".", "-o", "-"]
        else:
            cmd = [FTP, *tops]
            if fmt.endswith("cxml"):
                cmd.insert(1, "--cxml")
            elif fmt.endswith("markdown"):
                cmd.insert(1, "--markdown")
        out = subprocess.run(cmd, cwd=root, capture_output=True, check=True).stdout.decode("utf-8")
    finally:
        shutil.rmtree(base)
    if fmt == "gitingest":
        out = out.replace("\nAnalysis complete! Output sent to stdout.\n", "\n")
    return cmd_line(fmt), out


def cmd_line(fmt):
    return {"repomix-xml": "npx repomix --stdout --style xml",
            "repomix-markdown": "npx repomix --stdout --style markdown",
            "repomix-plain": "npx repomix --stdout --style plain",
            "files-to-prompt": "files-to-prompt <top-level entries>",
            "files-to-prompt-cxml": "files-to-prompt --cxml <top-level entries>",
            "files-to-prompt-markdown": "files-to-prompt --markdown <top-level entries>",
            "gitingest": "gitingest . -o -"}[fmt]


def select(files, must, tok, rng, cap=CAP):
    """must files, then README, then the rest in random order while under cap."""
    chosen, total = {}, 0
    for p in must:
        chosen[p] = files[p]
        total += tok(files[p])
    if total > cap:
        return None
    rest = sorted(p for p in files if p not in chosen)
    readmes = [p for p in rest if p.lower().startswith("readme")]
    others = [p for p in rest if p not in readmes]
    rng.shuffle(others)
    for p in readmes + others:
        n = tok(files[p])
        if total + n <= cap:
            chosen[p] = files[p]
            total += n
    return chosen, total
