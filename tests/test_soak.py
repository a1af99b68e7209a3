"""bench/soak.py in small: every phase (serve, the proxy, batch) over a few distinct
inputs on the tiny draft, stopping by itself, with the figures it reports checked
against its own samples. The full soak's numbers are in docs/reliability.md."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import has_tiktoken_fixture

ROOT = Path(__file__).resolve().parents[1]
# bench/corpora.py's HANDBOOK: bench is importable only when pytest runs from the root
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
INPUTS, WARMUP = 8, 2

pytestmark = [
    pytest.mark.skipif(not has_tiktoken_fixture("o200k_base"), reason="tiktoken fixture absent"),
    pytest.mark.skipif(not HANDBOOK.is_dir(), reason="the soak's prose needs debian-handbook"),
]


@pytest.fixture(scope="module")
def summaries(llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--draft", str(llama_dir), "--requests", str(INPUTS),
         "--batch-records", str(INPUTS), "--min-tokens", "1000", "--max-tokens", "3000",
         "--clients", "2", "--warmup", str(WARMUP), "--sample-every", "2",
         "--phase-minutes", "4", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{INPUTS} distinct inputs of" in done.stdout
    return {summary["phase"]: summary for summary in json.loads(out.read_text())["summaries"]}


def test_every_phase_does_every_input_without_a_5xx(summaries):
    assert list(summaries) == ["serve", "proxy", "batch"]
    for summary in summaries.values():
        assert summary["inputs"] == INPUTS and not summary["stopped_early"], summary["phase"]
        assert summary["status_5xx"] == 0, summary["labels"]
        assert sum(summary["statuses"].values()) == INPUTS
    # a refusal (a budget below what must be kept) is a 422 that names its input
    assert set(summaries["serve"]["statuses"]) <= {"200", "422"}
    assert all(label.startswith("input ") for label in summaries["serve"]["labels"])
    assert set(summaries["batch"]["statuses"]) <= {"ok", "error"}


def test_the_memory_figures_are_those_of_the_samples(summaries):
    for summary in summaries.values():
        samples = summary["samples"]
        assert samples[0][0] == 0 and all(mib > 0 for _, mib in samples)
        assert [done for done, _ in samples] == sorted({done for done, _ in samples})
        after = [(done, mib) for done, mib in samples if done >= WARMUP]
        assert summary["warmup_inputs"] == after[0][0]
        # the JSON's samples are rounded to 0.1 MiB, the figures computed before rounding
        assert summary["rss_after_warmup_mib"] == pytest.approx(after[0][1], abs=0.06)
        assert summary["rss_end_mib"] == pytest.approx(samples[-1][1], abs=0.06)
        assert summary["rss_max_mib"] == pytest.approx(max(mib for _, mib in samples), abs=0.06)
        assert summary["growth_after_warmup_mib"] == pytest.approx(
            samples[-1][1] - after[0][1], abs=0.2)
        if len(after) >= 3:
            done = np.array([x for x, _ in after], dtype=float)
            fitted = 100 * np.polyfit(done, [mib for _, mib in after], 1)[0]
            # how far the samples' rounding (0.05 MiB at most) can move a fitted slope
            offsets = done - done.mean()
            rounding = 100 * 0.05 * np.abs(offsets).sum() / (offsets ** 2).sum()
            assert summary["slope_mib_per_100"] == pytest.approx(fitted, abs=rounding + 0.06)


def test_latencies_are_reported_in_order(summaries):
    for summary in summaries.values():
        latency = summary["latency_s"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"], summary["phase"]
