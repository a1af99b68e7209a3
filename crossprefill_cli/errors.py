"""Error types that carry their own exit status, wire type and HTTP status.

Every failure a user can cause is raised as a `CrossprefillError` subclass with a
one-line message. Each class says, once, how every front end reports it: the CLI exits
with `exit_code`, `serve` answers `http_status` with `{"error": {"type": wire_type}}`,
the `--server` client and `batch` read `wire_type` back into the same class (so a
failure exits the same way locally and through a server). Usage errors (bad option
values, unknown profiles, impossible budgets) exit 2 like Click's own usage errors;
problems with the input data, the models or the machine exit 1.
"""


class CrossprefillError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1
    wire_type = "error"
    http_status = 400


class UsageError(CrossprefillError):
    """The command line or a profile asks for something impossible."""

    exit_code = 2
    wire_type = "usage"


class BudgetError(UsageError):
    """The budget is smaller than what must be kept (or leaves nothing at all)."""

    wire_type = "budget"
    http_status = 422


class InputError(CrossprefillError):
    """The input text cannot be compressed (empty, binary, too long)."""

    wire_type = "input"
    http_status = 422


class ModelLoadError(CrossprefillError):
    """A draft model or target tokenizer cannot be loaded."""

    wire_type = "model"
    http_status = 404


class UnknownReference(InputError):
    """A reference to omitted text that names nothing stored: malformed, unknown,
    evicted or out of its input's range (`pipeline.references`)."""

    wire_type = "reference"
    http_status = 404


class MissingExtraError(CrossprefillError):
    """An optional part (`serve`, `ray`) is not installed: the machine's state, not a
    wrong command line."""

    wire_type = "missing_extra"
    http_status = 500


ERROR_CLASSES = (BudgetError, UsageError, UnknownReference, InputError, ModelLoadError, MissingExtraError,
                 CrossprefillError)


def error_class(wire_type: str) -> type[CrossprefillError]:
    """The class a wire type names (a server's or a batch record's error), most specific
    first; unknown types are plain `CrossprefillError`s."""
    return next((kind for kind in ERROR_CLASSES if kind.wire_type == wire_type),
                CrossprefillError)

