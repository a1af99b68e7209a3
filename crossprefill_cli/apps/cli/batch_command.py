"""`crossprefill batch`: a JSONL file of records through one model load, here or on
Ray (`apps.batch`), written as each finishes (`batch_files`)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.options import (CommandLine, reporting_errors, settings_options,
                                               warner, with_query_file)
from crossprefill_cli.errors import UsageError
from crossprefill_cli.settings import Settings

SHORT_HELP = "Compress every record of a JSONL file with one model load."


@settings_options(without=("format",), line=("query_file", "quiet"))
def batch_command(
    ctx: typer.Context,
    input_path: Annotated[str, typer.Argument(
        metavar="INPUT", help="JSONL file of records ({\"id\", \"text\" or \"messages\", "
        "optional \"query\", \"keep_rate\", \"target_tokens\", \"profile\"}), or - for stdin.")],
    *,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="JSONL file the output records go to, each as it finishes.  "
        "[default: stdout]", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip the records already in --output and append the rest.")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="As --resume, and do again the records that failed (their "
        "error lines are taken out of --output first).")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (this process) or ray (Ray Data actors).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Ray: the cluster to join.  [default: start one on this "
        "machine]", show_default=False)] = None,
    actors: Annotated[int, typer.Option("--actors", help="Ray: actors, each with its own "
                                        "draft.")] = 1,
    cpus_per_actor: Annotated[float, typer.Option("--cpus-per-actor", help="Ray: CPUs (and "
                                                  "torch threads) per actor.")] = 1.0,
    gpus_per_actor: Annotated[float, typer.Option("--gpus-per-actor", help="Ray: GPUs per "
                                                  "actor.")] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Ray: records per batch "
                                            "an actor takes.")] = 8,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Compress every record of a JSONL file with one model load; exit 1 if any failed."""
    env: Environment = ctx.obj or Environment.from_sys()
    with reporting_errors(env):
        from crossprefill_cli.apps.batch.records import scan
        from crossprefill_cli.apps.cli.batch_files import BatchOutput, input_lines
        from crossprefill_cli.pipeline.profiles import load_profile

        if engine not in ("local", "ray"):
            raise UsageError(f"unknown --engine {engine!r}; choose local or ray")
        settings = with_query_file(settings, line).checked()
        load_profile(settings.profile or "text")  # an unknown one fails before any work
        lines = input_lines(env, input_path)
        found = scan(lines())
        say = warner(env, line)
        for name in found.unknown_fields:
            say(f"records have a field {name!r} that batch does not read (output records "
                "carry the id to join on)")
        with BatchOutput(env, output, resume=resume, retry_failed=retry_failed) as sink:
            pending = [entry for entry in lines() if not sink.has(entry)]
            if engine == "ray":
                from crossprefill_cli.apps.batch.ray_engine import RayOptions, ray_outputs

                outputs = ray_outputs(pending, settings, RayOptions(
                    address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor,
                    gpus_per_actor=gpus_per_actor, batch_size=batch_size))
            else:
                from crossprefill_cli.apps.batch.records import local_outputs

                outputs = local_outputs(pending, settings, say)
            sink.write_all(outputs, len(pending), skipped=found.lines - len(pending),
                           quiet=line.quiet)
        if sink.failed:
            raise typer.Exit(1)
