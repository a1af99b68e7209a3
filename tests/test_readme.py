"""The README's commands parse, as printed.

Every shell code block of README.md is read as a user would paste it: continuation
lines joined, comments skipped, each command split into pipeline stages at `|`, `&&`,
`;` and `&`, redirections dropped. Each `crossprefill ...` stage must name a command
that exists and options that command has, each given a value when it takes one and no
more arguments than it accepts; then the same words with `--help` appended must parse
(Click rejects an unknown option before it shows the help). No model is loaded. A
renamed command or option fails here, so the README cannot drift from the CLI.

The Quick start must hold real pipelines (a packer piped into crossprefill), the
README's test command must be the one CI runs (`.ci/run`), and its links must lead to
files and headings that exist.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}
CONTROL = {"|", "||", "&&", ";", "&"}
REDIRECT = {">", ">>", "<", ">&", "<&", "&>"}

runner = CliRunner()


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, body) for each `#`/`##` section; code blocks are not headings."""
    result, heading, body, fence = [], "", [], None
    for line in markdown.splitlines():
        marker = re.match(r"^(`{3,}|~{3,})", line)
        if marker and (fence is None or line.startswith(fence)):
            fence = marker.group(1) if fence is None else None
        elif fence is None and re.match(r"^#{1,2} ", line):
            result.append((heading, "\n".join(body)))
            heading, body = line.lstrip("#").strip(), []
            continue
        body.append(line)
    result.append((heading, "\n".join(body)))
    return result


def shell_blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks marked as shell (or not marked at all)."""
    blocks = re.findall(r"^(`{3,})([^\n`]*)\n(.*?)^\1\s*$", markdown, re.M | re.S)
    return [body for _, info, body in blocks if info.strip() in SHELL_BLOCKS]


def commands(block: str) -> list[str]:
    """Command lines, continuation lines joined, blank and comment lines left out."""
    joined = re.sub(r"\\\n", " ", block)
    lines = (line.strip().removeprefix("$ ") for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def stages(command: str) -> list[list[str]]:
    """The words of each stage of a command line, without redirections."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    result, stage, words = [], [], list(lexer)
    index = 0
    while index < len(words):
        word = words[index]
        if word in CONTROL:
            result.append(stage)
            stage = []
        elif word in REDIRECT:
            if stage and stage[-1].isdigit():  # 2>file
                stage.pop()
            index += 1  # the redirection's target
        else:
            stage.append(word)
        index += 1
    result.append(stage)
    return [stage for stage in result if stage]


def crossprefill_words(stage: list[str]) -> list[str] | None:
    """The arguments after `crossprefill` (or `python -m crossprefill_cli`), else None."""
    if Path(stage[0]).name == "crossprefill":
        return stage[1:]
    if Path(stage[0]).name.startswith("python") and stage[1:3] == ["-m", "crossprefill_cli"]:
        return stage[3:]
    return None


def readme_stages() -> list[tuple[str, list[str], list[str]]]:
    """(section, the whole stage, its crossprefill arguments) for every such stage."""
    found = []
    for heading, body in sections(README.read_text(encoding="utf-8")):
        for block in shell_blocks(body):
            for command in commands(block):
                for stage in stages(command):
                    words = crossprefill_words(stage)
                    if words is not None:
                        found.append((heading, stage, words))
    return found


def check_arguments(command, words: list[str], where: str) -> None:
    """Each option of `words` exists on the Click `command` and gets what it takes."""
    options = {}
    for param in command.params:
        if param.param_type_name == "option":
            for name in (*param.opts, *param.secondary_opts):
                options[name] = param
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    positional, index = [], 0
    while index < len(words):
        word = words[index]
        if word == "--":
            positional += words[index + 1:]
            break
        if word.startswith("-") and word != "-":
            name, equals, _ = word.partition("=")
            assert name in options, (
                f"{where}: {command.name} has no option {name} "
                f"(it has {', '.join(sorted(options))})")
            param = options[name]
            takes = 0 if param.is_flag or param.count else param.nargs
            if equals:
                assert takes == 1, f"{where}: {name} takes no value"
            else:
                assert index + takes < len(words), f"{where}: {name} needs a value"
                index += takes
        else:
            positional.append(word)
        index += 1
    accepted = sum(float("inf") if a.nargs == -1 else a.nargs for a in arguments)
    assert len(positional) <= accepted, (
        f"{where}: {command.name} takes {accepted} argument(s), the README gives "
        f"{positional}")


STAGES = readme_stages()


def test_the_readme_prints_crossprefill_commands():
    assert len(STAGES) >= 5, STAGES


def program(stage: list[str]) -> str:
    """The program a stage runs: `npx -y repomix` runs repomix."""
    if stage[0] == "npx":
        return next(word for word in stage[1:] if not word.startswith("-"))
    return Path(stage[0]).name


def test_quick_start_pipes_real_packers_into_crossprefill():
    """Quick start holds pipelines from repomix, files-to-prompt and gitingest."""
    body = dict(sections(README.read_text(encoding="utf-8")))["Quick start"]
    feeders = set()
    for block in shell_blocks(body):
        for command in commands(block):
            parts = stages(command)
            for before, after in zip(parts, parts[1:]):
                if crossprefill_words(after) is not None:
                    feeders.add(program(before))
    assert {"repomix", "files-to-prompt", "gitingest"} <= feeders, feeders


@pytest.mark.parametrize("section, stage, words", STAGES,
                         ids=[f"{s}: {' '.join(w)[:60]}" for s, _, w in STAGES])
def test_each_crossprefill_stage_parses(section, stage, words):
    where = f"README, {section}: {' '.join(stage)}"
    group = typer.main.get_command(app)
    assert words, f"{where}: no command"
    if words[0].startswith("-"):  # crossprefill --version
        check_arguments(group, words, where)
        return
    command = group.commands.get(words[0])
    assert command is not None, (
        f"{where}: no command {words[0]!r} (there are {', '.join(sorted(group.commands))})")
    check_arguments(command, words[1:], where)
    own = words[:words.index("--")] if "--" in words else words  # after it: wrap's COMMAND
    result = runner.invoke(app, [*own, "--help"])
    assert result.exit_code == 0, f"{where}: {result.output}"
    assert f"{words[0]} [OPTIONS]" in result.output


def test_the_readme_test_command_is_the_one_ci_runs():
    install = dict(sections(README.read_text(encoding="utf-8")))["Install"]
    printed = [c for block in shell_blocks(install) for c in commands(block)]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    tests = [c for c in printed if c.endswith("-m pytest")]
    assert tests and all(c in ci for c in tests), (tests, "not a line of .ci/run")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^(`{3,}).*?^\1\s*$", "", text, flags=re.M | re.S)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_somewhere(page):
    text = re.sub(r"^(`{3,}).*?^\1\s*$", "", page.read_text(encoding="utf-8"),
                  flags=re.M | re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, fragment = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if fragment and linked.suffix == ".md":
            assert fragment in anchors(linked), f"{page.name}: no heading #{fragment} in {file or page.name}"
