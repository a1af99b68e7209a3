"""crossprefill: compress long prompts with cross-family speculative prefill.

The library entry point is `compress(text, ...) -> Result`; the command line
(`crossprefill_cli.cli`) is a thin layer over it and is never imported from here.
"""

from .errors import CrossprefillError, InputError, ModelLoadError, UsageError

__version__ = "0.1.0"
__all__ = ["compress", "Result", "CrossprefillError", "InputError", "ModelLoadError",
           "UsageError", "__version__"]


def __getattr__(name: str):
    # The pipeline (numpy, PyYAML, ...) is imported on first use, so that a process that
    # needs one module, like the target tokenizer's (`target_process`), starts quickly.
    if name in ("compress", "Result"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
