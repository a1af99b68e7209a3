"""crossprefill: compress long prompts with cross-family speculative prefill.

The library entry point is `compress(text, ...) -> Result`; the command line
(`crossprefill_cli.cli`) is a thin layer over it and is never imported from here.
"""

from .errors import CrossprefillError, InputError, ModelLoadError, UsageError
from .pipeline import Result, compress

__version__ = "0.1.0"
__all__ = ["compress", "Result", "CrossprefillError", "InputError", "ModelLoadError",
           "UsageError", "__version__"]
