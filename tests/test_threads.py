"""The draft's threads wait passively unless the user chose a policy, and count the
cores this process may use."""

import os
import subprocess
import sys

import pytest

from crossprefill_cli.models import threads


def policy_seen_by_a_fresh_process(**env: str) -> str:
    """OMP_WAIT_POLICY as a new process has it after importing the draft module."""
    clean = {k: v for k, v in os.environ.items() if k not in threads.WAIT_POLICY_VARIABLES}
    done = subprocess.run([sys.executable, "-c", "import os, crossprefill_cli.models.draft; "
                           "print(os.environ.get('OMP_WAIT_POLICY'))"],
                          capture_output=True, text=True, env={**clean, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_draft_waits_passively_by_default():
    assert policy_seen_by_a_fresh_process() == "PASSIVE"


@pytest.mark.parametrize("env, expected", [({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
                                           ({"GOMP_SPINCOUNT": "300000"}, "None")])
def test_a_policy_the_user_chose_is_left_alone(env, expected):
    assert policy_seen_by_a_fresh_process(**env) == expected


def test_usable_cores_are_the_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert threads.usable_cores() == 1
