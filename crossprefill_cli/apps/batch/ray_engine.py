"""`crossprefill batch --engine ray`: the same records through Ray Data.

The driver hands the pending lines to Ray Data (`from_items`), `map_batches` runs them
through a pool of actors (`concurrency`), each of which builds one `RecordCompressor`
(draft and target loaded once per actor, on `num_gpus` GPUs when asked) and turns each
line into its output record exactly as the local engine does, and the driver iterates
the results in input order (`preserve_order`) and writes each as it arrives. So both
engines write the same bytes, and an interrupted run resumes the same way.

Without an address a Ray instance is started on this machine, bound to loopback, with
no dashboard, and stopped at the end; with one, the job joins that cluster (every node
needs crossprefill installed, and the draft where the nodes can read it). Ray is an
optional extra, imported here only; its own logging stays off stderr.
"""

import contextlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator

from crossprefill_cli.apps.batch.records import Line, RecordCompressor
from crossprefill_cli.errors import CrossprefillError, UsageError
from crossprefill_cli.extras import needed
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.models.threads import usable_cores
from crossprefill_cli.pipeline.draft_source import DraftSource
from crossprefill_cli.settings import Settings, check_device_and_dtype


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 8


class LineCompressor:
    """One actor's compressor (Ray builds it once per actor)."""

    def __init__(self, settings: Settings):
        self.compressor = RecordCompressor(settings)

    def __call__(self, batch: dict) -> dict:
        outputs = [json.dumps(self.compressor.line(Line(int(number), str(text) if utf8 else b"")),
                              ensure_ascii=False)
                   for number, text, utf8 in zip(batch["number"], batch["text"], batch["utf8"])]
        return {"number": batch["number"], "output": outputs}


@contextlib.contextmanager
def _stderr_discarded():
    """File descriptor 2 goes to /dev/null for the block (C++ logs bypass sys.stderr)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_loggers() -> None:
    """Ray's Python loggers (ray, ray.data and their children) stay silent: a failure
    reaches the user as this command's one error line."""
    for name in [name for name in logging.root.manager.loggerDict if name.startswith("ray")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("ray").setLevel(logging.CRITICAL)


def cause(error: Exception) -> str:
    """What went wrong inside Ray, in one line: the last line of its report names the
    original exception ("module.SomeError: message"); its message is the cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    match = re.match(r"[\w.]+(?:Error|Exception): (.+)", last)
    return match.group(1) if match else first_line(error)


def check(options: RayOptions) -> None:
    if options.actors < 1 or options.batch_size < 1:
        raise UsageError("--actors and --batch-size must be positive")
    if options.cpus_per_actor <= 0 or options.gpus_per_actor < 0:
        raise UsageError("--cpus-per-actor must be positive and --gpus-per-actor 0 or more")


def ray_outputs(lines: Iterable[Line], settings: Settings,
                options: RayOptions) -> Iterator[dict]:
    """The output record of each line, in order, computed by Ray actors."""
    check(options)
    # what can be checked here fails here, once, not in every actor
    source = DraftSource.of(settings)
    if options.address is None:  # the actors run on this machine, with its devices
        check_device_and_dtype(settings.device, settings.dtype)
        if source.backend.name == "torch":  # only transformers needs torch to say
            from crossprefill_cli.models.draft import resolve_device

            resolve_device(settings.device)
    with needed("ray", "--engine ray"):
        import ray
        import ray.data
        import ray.exceptions
    # a column holds one type: a line that is not UTF-8 travels as a flag
    pending = [{"number": line.number, "text": line.text if isinstance(line.text, str) else "",
                "utf8": isinstance(line.text, str)} for line in lines]
    if not pending:
        return
    started = not ray.is_initialized()
    if started:
        local = options.address is None
        # the C++ core worker takes its log level when it starts, in ray.init, and says
        # so on the process's stderr: that one line is kept out of ours
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        with _stderr_discarded():
            ray.init(address=options.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, num_cpus=usable_cores() if local else None,
                     _node_ip_address="127.0.0.1" if local else None)
    _quiet_loggers()
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.print_on_execution_start = False
        context.enable_progress_bars = False
        dataset = ray.data.from_items(pending).map_batches(
            LineCompressor, fn_constructor_kwargs={"settings": settings},
            compute=ray.data.ActorPoolStrategy(size=options.actors),
            batch_size=options.batch_size, batch_format="numpy",
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor,
            # one glibc arena per worker process, as the command line has (`pipeline.heap`)
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(max(1, int(options.cpus_per_actor))),
                                      "MALLOC_ARENA_MAX": "1"}})
        try:
            for row in dataset.iter_rows():
                yield json.loads(row["output"])
        except ray.exceptions.RayError as error:  # an actor could not start, a node died
            raise CrossprefillError(f"the Ray job failed: {cause(error)}") from None
    finally:
        if started:
            ray.shutdown()

