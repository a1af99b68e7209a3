"""Which engine runs a draft: numpy (`numpy_draft`, no torch) or transformers (`draft`).

`auto` takes numpy for a small Llama draft in a local folder (the bundled one among
them) run in float32 on the CPU, where it reads the same scores without the seconds
torch and transformers take to import; everything else (a hub id, another
architecture, a GPU, bfloat16, a draft too large for a plain CPU forward) goes to
transformers, and the reason is kept for the report. `numpy` insists (an error when
the draft cannot run there); `torch` is the transformers engine. The choice reads the
draft's config.json and its weights' header, never the weights themselves.
"""

from dataclasses import dataclass
from pathlib import Path

from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.loading import draft_location
from crossprefill_cli.models.reader import DraftReader
from crossprefill_cli.settings import BACKENDS, check_choice

# Beyond this a draft is no longer small: transformers' fused CPU kernels (and bfloat16
# where the CPU has it) pay back their import.
SMALL_DRAFT_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class Backend:
    """The engine chosen for a draft, and why `auto` did not choose numpy (else None)."""

    name: str
    reason: str | None = None


def choose_backend(spec: str, backend: str, *, device: str, dtype: str) -> Backend:
    """The engine for draft `spec` (see the module docstring)."""
    from crossprefill_cli.models import numpy_draft

    check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        return Backend("torch")
    folder = Path(draft_location(spec))
    if device not in ("auto", "cpu") or dtype not in ("auto", "float32"):
        reason = "the numpy engine runs float32 on the CPU"
    elif not folder.is_dir():
        reason = "the draft is not a local folder"
    else:
        reason = numpy_draft.unsupported(folder)
        if reason is None and backend == "auto" \
                and numpy_draft.parameter_count(folder) > SMALL_DRAFT_PARAMETERS:
            reason = f"the draft has more than {SMALL_DRAFT_PARAMETERS:,} parameters"
    if reason is None:
        return Backend("numpy")
    if backend == "numpy":
        raise UsageError(f"the numpy backend cannot run draft {spec}: {reason}")
    return Backend("torch", reason)


def load_with(backend: Backend, spec: str, *, device: str, dtype: str) -> DraftReader:
    """Load draft `spec` on the chosen engine."""
    if backend.name == "numpy":
        from crossprefill_cli.models.numpy_draft import load_numpy_draft

        return load_numpy_draft(spec)
    from crossprefill_cli.models.draft import load_draft

    return load_draft(spec, device=device, dtype=dtype)
