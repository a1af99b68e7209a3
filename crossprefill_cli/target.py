"""Moved to `crossprefill_cli.models.target`; the documented
`crossprefill_cli.target.load_target` stays importable from here for one release."""

from crossprefill_cli.models.target import TargetTokenizer, load_target

__all__ = ["TargetTokenizer", "load_target"]
