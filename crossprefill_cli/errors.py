"""Error types that carry their own exit status.

Every failure a user can cause is raised as a `CrossprefillError` subclass with a
one-line message; the CLI prints that line and exits with `exit_code`. Usage errors
(bad option values, unknown profiles, impossible budgets) exit 2 like Click's own
usage errors; problems with the input data or the models exit 1.
"""


class CrossprefillError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class UsageError(CrossprefillError):
    """The command line or a profile asks for something impossible."""

    exit_code = 2


class BudgetError(UsageError):
    """The budget is smaller than what must be kept (or leaves nothing at all)."""


class InputError(CrossprefillError):
    """The input text cannot be compressed (empty, binary, too long)."""


class ModelLoadError(CrossprefillError):
    """A draft model or target tokenizer cannot be loaded."""
