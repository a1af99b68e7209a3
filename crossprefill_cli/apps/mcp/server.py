"""`crossprefill mcp`: compression as tools of an MCP server over stdio.

An agent (Claude Code, Codex CLI, Cursor) starts the server and calls its tools
(`tools.TOOLS`): `compress`, `estimate` and `expand`. The server holds what every call
would otherwise load again (`ToolModels`, a `pipeline.warm.Warm`): the draft, loaded
once in a worker thread right after the transport starts (so the client's handshake
never waits on a model), every target once resolved, the profile it was started with,
the score cache and the reference store. Each call is one `pipeline.job.Job`, the pipeline every front end runs.

The event loop only reads and writes messages: a call's work runs in a worker thread,
and compressions (the start-up load first) take turns on one lock, since one draft on
one machine gains nothing from running two at once. A call's arguments are checked
against its tool's schema (a null argument counts as absent); a `CrossprefillError`, or
arguments the schema refuses, come back as a tool error (`isError`) with its one-line
message, and the server goes on serving. stdout carries the protocol alone: the SDK's
transport points file descriptor 1 at stderr while it serves, so whatever a library
prints goes there, as do this server's own lines.
"""

import json
import sys
import traceback
from contextlib import asynccontextmanager
from typing import Any, Callable

import anyio
import jsonschema
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from crossprefill_cli import __version__
from crossprefill_cli.apps.mcp.roots import Roots
from crossprefill_cli.apps.mcp.tools import DEFAULTS, ESTIMATE_ONLY, TOOLS
from crossprefill_cli.errors import CrossprefillError, UsageError
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.pipeline.job import DEFAULT_PROFILE, Job
from crossprefill_cli.pipeline.warm import Warm
from crossprefill_cli.settings import ESTIMATE_RATES, Settings, by_fields
from crossprefill_cli.text.packing import pack

NAME = "crossprefill"
# what a compression reports besides its text (the chunks and spans stay out: they are
# for --json's readers, and would swamp an agent's context)
COUNTS = ("tokens_before", "tokens_after", "budget", "keep_rate", "achieved_rate", "target",
          "draft", "profile", "query", "query_source", "warnings")


def say(line: str) -> None:
    print(f"crossprefill: {line}", file=sys.stderr, flush=True)


class ToolModels(Warm):
    """The drafts, targets and profile the server holds (`pipeline.warm.Warm`), and one
    call's `Job`.

    `held` are the settings it was started with (draft, target, profile and the
    machine's); a call may name another draft, target or profile, which is then
    loaded once too."""

    def __init__(self, held: Settings):
        self.held = held.checked()
        super().__init__(held.profile or DEFAULT_PROFILE, device=held.device, dtype=held.dtype,
                         backend=held.backend)
        self.default = self.source(held.draft or BUILTIN)  # a name that cannot load fails here

    def load(self) -> None:
        """Load the started draft and resolve the started target (at start-up)."""
        self.default.load()
        self.target_of(self.held.target, self.default)

    def call_job(self, asked: dict[str, Any]) -> Job:
        """The job of a call's settings: the server's draft, target and profile where the
        call names none."""
        settings = Settings(**{**DEFAULTS, **asked})
        return self.job(settings, draft=self.source(settings.draft or self.default.name),
                        target=settings.target or self.held.target)


class Tools:
    """What each tool does with its checked arguments: (text content, structured content)."""

    def __init__(self, warm: ToolModels, roots: Roots):
        self.warm, self.roots = warm, roots

    def compress(self, arguments: dict) -> tuple[list[str], dict]:
        text, asked = self._input(arguments)
        done = self.warm.call_job(asked).compress(text)
        counts = {name: value for name, value in done.result.to_json().items() if name in COUNTS}
        summary = (f"{done.result.tokens_before:,} → {done.result.tokens_after:,} target tokens "
                   f"({done.result.target}, budget {done.result.budget:,})")
        notes = [summary, *(f"warning: {warning}" for warning in done.result.warnings)]
        return [done.printed, "\n".join(notes)], {"text": done.printed, **counts}

    def estimate(self, arguments: dict) -> tuple[list[str], dict]:
        extra = {name: arguments.pop(name) for name in ESTIMATE_ONLY if name in arguments}
        text, asked = self._input(arguments)
        job = self.warm.call_job(asked)
        report = job.estimate(job.analyse(text, with_budget=False),
                              sorted(set(extra.pop("keep_rates", ESTIMATE_RATES))), **extra)
        return [json.dumps(report, ensure_ascii=False, indent=1)], report

    def expand(self, arguments: dict) -> tuple[list[str], dict]:
        if ("ref" in arguments) == ("path" in arguments):
            raise UsageError("give ref (from a gap marker) or path (with start_line, end_line)")
        if "ref" in arguments:
            text = self.warm.references.expand(arguments["ref"])
            return [text], {"ref": arguments["ref"], "text": text}
        text, start, end, count = self.roots.lines(
            arguments["path"], arguments.get("start_line", 1), arguments.get("end_line"))
        return [text], {"path": arguments["path"], "start_line": start, "end_line": end,
                        "lines_in_file": count, "text": text}

    def _input(self, arguments: dict) -> tuple[str, dict]:
        """The text to work on (given, or the named files packed) and the settings asked."""
        text, paths = arguments.pop("text", None), arguments.pop("paths", None)
        if (text is None) == (paths is None):
            raise UsageError("give text, or paths (files or globs under the roots)")
        if paths is not None:
            text = pack(self.roots.read(self.roots.files(paths)))
        return text, arguments


def checked_arguments(tool: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """A call's arguments, nulls left out, if its tool's schema accepts them."""
    if tool not in TOOLS:
        raise UsageError(f"no tool {tool!r}; the tools are {', '.join(TOOLS)}")
    given = {name: value for name, value in (arguments or {}).items() if value is not None}
    try:
        jsonschema.validate(given, TOOLS[tool][1])
    except jsonschema.ValidationError as error:
        where = "/".join(map(str, error.absolute_path))
        raise UsageError(f"{tool}: {where + ': ' if where else ''}{error.message}") from None
    return given


def text_result(texts: list[str], structured: dict | None = None, *,
                error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text) for text in texts],
                                structured_content=structured, is_error=error)


def failure(error: Exception) -> str:
    """The one line of a failed call or load; a bug's traceback goes to stderr too."""
    if isinstance(error, CrossprefillError):  # its flags named as the tools' arguments
        return f"crossprefill: error: {by_fields(str(error))}"
    traceback.print_exc(file=sys.stderr)
    return f"crossprefill: internal error: {type(error).__name__}: {error}"


def reporting(work: Callable[[], types.CallToolResult]) -> types.CallToolResult:
    """`work`'s result, or a tool error saying why it failed."""
    try:
        return work()
    except Exception as error:
        return text_result([failure(error)], error=True)


INSTRUCTIONS = (
    "crossprefill shortens long texts and sets of files to a token budget, keeping what a "
    "question needs word for word. Call compress with a query instead of reading long "
    "files or logs whole; expand gives back what a gap marker left out; estimate shows "
    "what each keep rate would leave.")


def serve(held: Settings, roots: Roots) -> None:
    """Serve the tools over stdio until the client closes stdin. A draft or profile that
    cannot be found fails here, before the transport starts."""
    warm = ToolModels(held)
    tools = Tools(warm, roots)
    say(f"serving MCP over stdio (draft {warm.default.name}, roots {roots})")

    async def main() -> None:
        turns = anyio.Lock()  # one compression at a time, the start-up load first

        async def warm_up(*, task_status=anyio.TASK_STATUS_IGNORED) -> None:
            async with turns:
                task_status.started()
                await anyio.to_thread.run_sync(load)

        def load() -> None:
            try:
                warm.load()
            except Exception as error:
                print(f"{failure(error)} (at start-up; each call tries again)",
                      file=sys.stderr, flush=True)

        @asynccontextmanager
        async def warming(_server):
            async with anyio.create_task_group() as group:
                await group.start(warm_up)
                yield {}

        async def list_tools(_context, _params) -> types.ListToolsResult:
            return types.ListToolsResult(tools=[
                types.Tool(name=name, description=description, input_schema=schema)
                for name, (description, schema) in TOOLS.items()])

        async def call_tool(_context, params) -> types.CallToolResult:
            def work() -> types.CallToolResult:
                arguments = checked_arguments(params.name, params.arguments)
                texts, structured = getattr(tools, params.name)(arguments)
                return text_result(texts, structured)

            if params.name == "expand":  # reads the store or a file: no draft, no turn
                return await anyio.to_thread.run_sync(reporting, work)
            async with turns:
                return await anyio.to_thread.run_sync(reporting, work)

        server = Server(NAME, version=__version__, instructions=INSTRUCTIONS, lifespan=warming,
                        on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)
