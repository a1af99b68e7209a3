"""crossprefill: compress long prompts with cross-family speculative prefill.

The library entry points are `compress(text, ...) -> Result`, `compress_messages(data,
...)` for chat JSON and, for many records with one model load, `compress_many(records,
Settings(...))`; `Settings` declares every option once and `Job` is the one compression
job behind every front end. The command line (`crossprefill_cli.cli`) is a thin layer
over them and is never imported from here.
"""

from crossprefill_cli.errors import CrossprefillError, InputError, ModelLoadError, UsageError

__version__ = "0.1.0"
__all__ = ["compress", "compress_messages", "compress_many", "Settings", "Job", "Result",
           "BatchSettings", "CrossprefillError", "InputError", "ModelLoadError", "UsageError",
           "__version__"]

# where each lazily imported name lives
_LAZY = {"compress": "pipeline.job", "compress_messages": "pipeline.job", "Job": "pipeline.job",
         "Settings": "settings", "Result": "results", "compress_many": "apps.batch.records",
         "BatchSettings": "apps.batch.records"}


def __getattr__(name: str):
    # The pipeline (numpy, PyYAML, ...) is imported on first use, so that a process that
    # needs one module, like the target tokenizer's (`target_process`), starts quickly.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
