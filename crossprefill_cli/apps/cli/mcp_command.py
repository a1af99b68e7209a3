"""`crossprefill mcp`: the command that starts the MCP server (`apps.mcp.server`).

Its options are the settings the server holds for every call (the draft, the target,
the profile and how this machine runs the draft), derived from `Settings` like every
command's, and the folders files may be read from."""

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.options import CommandLine, reporting_errors, settings_options
from crossprefill_cli.apps.mcp.tools import HELD
from crossprefill_cli.extras import needed
from crossprefill_cli.settings import MACHINE_FIELDS, SETTINGS, Settings

SHORT_HELP = "Serve compression as MCP tools over stdio, for agents."
# libraries' progress bars and notices: on stderr they are noise in an agent's server log
QUIET_LIBRARIES = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                   "TQDM_DISABLE": "1"}


@settings_options(without=tuple(setting.name for setting in SETTINGS
                                if setting.name not in (*HELD, *MACHINE_FIELDS)), line=())
def mcp_command(
    *,
    root: Annotated[Optional[list[Path]], typer.Option(
        "--root", help="A folder whose files the tools may read (repeatable).  [default: the "
        "working directory]", show_default=False)] = None,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Serve compress, estimate and expand as MCP tools over stdio, the draft loaded once.

    An agent (Claude Code, Codex CLI, Cursor) starts it from its MCP configuration; stdout
    carries the protocol alone, and every other line goes to stderr. The tools read files
    only under the roots. Each call may name its own draft, target and profile; these
    options are the defaults."""
    env = Environment.from_sys()
    with reporting_errors(env):
        for name, value in QUIET_LIBRARIES.items():
            os.environ.setdefault(name, value)
        with needed("mcp", "crossprefill mcp"):
            from crossprefill_cli.apps.mcp.roots import Roots
            from crossprefill_cli.apps.mcp.server import serve
        serve(settings, Roots(root or [Path.cwd()]))
