"""crossprefill: compress long prompts with cross-family speculative prefill.

The library entry points are `compress(text, ...) -> Result` and, for many records
with one model load, `compress_many(records, BatchSettings(...))`; the command line
(`crossprefill_cli.cli`) is a thin layer over it and is never imported from here.
"""

from .errors import CrossprefillError, InputError, ModelLoadError, UsageError

__version__ = "0.1.0"
__all__ = ["compress", "compress_many", "BatchSettings", "Result", "CrossprefillError",
           "InputError", "ModelLoadError", "UsageError", "__version__"]


def __getattr__(name: str):
    # The pipeline (numpy, PyYAML, ...) is imported on first use, so that a process that
    # needs one module, like the target tokenizer's (`target_process`), starts quickly.
    if name in ("compress", "Result"):
        from . import pipeline
        return getattr(pipeline, name)
    if name in ("compress_many", "BatchSettings"):
        from . import batch
        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
