"""The oldest releases CI tests are the lower bounds pyproject.toml admits."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def test_ci_tests_the_lower_bound_of_every_constrained_dependency():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lower = {m["name"]: m["version"] for m in (
        re.match(r"(?P<name>[\w-]+)>=(?P<version>[\d.]+)", d) for d in dependencies) if m}
    pinned = dict(re.match(r"([\w-]+)==([\d.]+)", line).groups()
                  for line in (ROOT / ".ci" / "oldest-constraints.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert pinned, "no oldest releases to test"
    for name, version in pinned.items():
        assert lower[name].split(".") == version.split(".")[:len(lower[name].split("."))], name
