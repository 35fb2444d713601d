"""The benchmark scripts keep running (small sizes here; real figures in benchmarks/README.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_harness_benchmark_prints_its_figures():
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/harness.py",
            "--single",
            "300",
            "--tools",
            "60",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "single-turn" in out.stdout and "tool-using" in out.stdout
    assert "episodes/s: meets" in out.stdout


@pytest.mark.slow
def test_scale_benchmark_meets_its_targets_at_small_sizes():
    """Both backends, 1,000 runs at 200 ms in flight by 200, a 50k-run leaderboard, and a
    20k-run job whose peak memory is no higher than a 2k-run job's (runs stream through)."""
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/scale.py",
            "--runs",
            "1000",
            "--leaderboard-runs",
            "50000",
            "--load-runs",
            "20000",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(bounded)" in out.stdout and "throughput  ray" in out.stdout
    assert "all targets met" in out.stdout
