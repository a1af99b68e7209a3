"""Hypothesis settings for the property tests: the same examples everywhere, by default.

`HYPOTHESIS_PROFILE` picks a profile (conftest loads it before any test module):

- `ci` (the default): derandomised and without the local `.hypothesis` database, so CI,
  a fresh clone and a rerun all try the same examples and agree;
- `explore`: random examples, ten times as many, to look for new failures:
  `HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/test_dumps.py -k property`
  (add `--hypothesis-seed=N` to vary or replay a run). A failure found that way is kept
  as an explicit `@example` of its property (and a plain test), so it stays tested.

No deadline in either: how long an example takes depends on the machine's load, and a
timing failure is not reproducible.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("explore", max_examples=1000, database=None, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(count: int) -> int:
    """`count` examples under `ci`, scaled like the profile's `max_examples` otherwise
    (a slow property runs fewer than Hypothesis's default of 100)."""
    return max(1, count * settings.default.max_examples // 100)
