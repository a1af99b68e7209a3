"""Moved to `crossprefill_cli.models.draft`; the documented `crossprefill_cli.draft.load_draft`
stays importable from here for one release."""

from crossprefill_cli.models.draft import Draft, load_draft

__all__ = ["Draft", "load_draft"]
