"""The benchmark scripts keep running and print their figures (small sizes here).

Speed depends on the machine and on what else it is doing, so no test asserts a speed,
latency or throughput target: the targets and the measured figures live in
benchmarks/README.md, and the scripts print "meets"/"MISSES" beside them. What is asserted
here does not depend on speed: every run is stored, results are correct, memory stays bounded.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(*args: str, timeout: float) -> str:
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    # The scripts exit 0 whether or not a speed target is met (only --check-targets fails
    # on a miss); a non-zero exit here is a crash or a wrong result (their own asserts).
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_harness_benchmark_prints_its_figures():
    out = run_benchmark(
        "benchmarks/harness.py", "--single", "300", "--tools", "60", "--repeats", "1", timeout=900
    )
    # Both workloads ran every run (the script asserts every trace is stored and the expert's
    # reward is 1.0) and printed a rate.
    assert re.search(r"^single-turn\s+300\s+[\d.]+\s+\d+", out, re.M), out
    assert re.search(r"^tool-using\s+60\s+[\d.]+\s+\d+", out, re.M), out
    assert re.search(r"single-turn target 1500 episodes/s: (meets|MISSES)", out), out


@pytest.mark.slow
def test_scale_benchmark_runs_at_small_sizes_and_memory_stays_bounded():
    """Both backends, 1,000 runs at 200 ms in flight by 200, a 50k-run leaderboard, and a
    20k-run job whose peak memory is no higher than a 2k-run job's (runs stream through)."""
    out = run_benchmark(
        "benchmarks/scale.py",
        "--runs",
        "1000",
        "--leaderboard-runs",
        "50000",
        "--load-runs",
        "20000",
        "--repeats",
        "1",
        timeout=1500,
    )
    assert "(bounded)" in out, out  # peak memory does not grow with the job
    for figure in ("throughput  asyncio", "throughput  ray", "latency     asyncio"):
        assert figure in out, out
    assert "leaderboard   50000 stored runs" in out, out
    assert re.search(r"(all targets met|a target was missed)$", out.strip()), out


@pytest.mark.slow
def test_runtimes_benchmark_prints_every_runtime_and_every_run_is_rewarded():
    out = run_benchmark(
        "benchmarks/runtimes.py",
        "--runs",
        "40",
        "--slow-runs",
        "2",
        "--repeats",
        "1",
        timeout=1500,
    )
    for runtime in ("isolated", "inprocess", "subprocess"):
        row = re.search(rf"^\| {runtime} \| [\d.]+ ms \| \d+ \| [\d.]+ \| 1\.00 \|$", out, re.M)
        assert row, out  # the expert solved every run, wherever it ran
    assert re.search(r"isolated target 300 tool-using episodes/s: (meets|MISSES)", out), out
