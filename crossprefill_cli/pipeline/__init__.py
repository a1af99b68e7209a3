"""The steps in order: the draft's analysis and each budget's selection (`analysis`),
the one compression job every front end runs (`job`), the draft as named and the target
(`draft_source`), profiles (`profiles`) and the estimate report (`estimate`).

`crossprefill_cli.pipeline.compress_messages` and the other names that were
`crossprefill_cli.pipeline`'s before it became this package still import from here,
for one release (resolved on first use).
"""


def __getattr__(name: str):
    from . import analysis, draft_source, job

    for module in (job, analysis, draft_source):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
