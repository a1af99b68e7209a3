"""The steps in order: the draft's analysis and each budget's selection (`analysis`),
what one budget's selection is made from (`plan`), the one compression job every front
end runs (`job`), the draft as named and the target (`draft_source`), profiles
(`profiles`) and the estimate report (`estimate`).

`crossprefill_cli.pipeline.compress_messages` and the other names that were
`crossprefill_cli.pipeline`'s before it became this package still import from here,
for one release (resolved on first use).
"""

import importlib


def __getattr__(name: str):
    # import_module, not `from . import job`: that asks this very function for `job`
    # while the submodule is not loaded yet, and recursed without end
    for module in ("job", "analysis", "draft_source"):
        loaded = importlib.import_module(f"{__name__}.{module}")
        if name == module:
            return loaded
        if hasattr(loaded, name):
            return getattr(loaded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
