"""The steps in order: the draft's analysis and each budget's selection (`analysis`),
what one budget's selection is made from (`plan`), the one compression job every front
end runs (`job`), the draft as named and the target (`draft_source`), profiles
(`profiles`) and the estimate report (`estimate`).

`crossprefill_cli.pipeline.compress_messages` and the other names that were
`crossprefill_cli.pipeline`'s before it became this package still import from here,
for one release (resolved on first use).
"""

import importlib
import importlib.util


def __getattr__(name: str):
    # A submodule asked for by name is imported alone: `from crossprefill_cli.pipeline
    # import heap` inside analysis asks this function for `heap` while analysis is half
    # loaded, and going through job first would import analysis again (a cycle).
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    for module in ("job", "analysis", "draft_source"):
        loaded = importlib.import_module(f"{__name__}.{module}")
        if hasattr(loaded, name):
            return getattr(loaded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
