"""The benchmark scripts keep running (small sizes here; real figures in benchmarks/README.md)."""

import subprocess
import sys
from pathlib import Path

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
