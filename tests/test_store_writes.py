"""A job never says "finished" with a trace missing, however long another process holds the
database's write lock (issue 11, finding 3)."""

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import TOY

EXE = str(Path(sys.executable).with_name("workbench"))


def toy_tasks(tmp_path: Path, n: int) -> Path:
    import json

    path = tmp_path / "toy.jsonl"
    path.write_text(
        "".join(
            json.dumps({"env": TOY, "scenario": "count", "args": {"target": 1, "note": str(i)}})
            + "\n"
            for i in range(n)
        )
    )
    return path


def hold_write_lock(db: Path, started: threading.Event, seconds: float) -> None:
    """Another process's long transaction: BEGIN IMMEDIATE holds SQLite's write lock."""
    while True:  # until the job runs (its runs are being written)
        try:
            with sqlite3.connect(db, timeout=30) as probe:
                if probe.execute("select count(*) from traces").fetchone()[0] > 0:
                    break
        except sqlite3.OperationalError:
            pass  # no database or no tables yet
        time.sleep(0.01)
    conn = sqlite3.connect(db, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    time.sleep(seconds)
    conn.rollback()
    conn.close()


def run_job(
    tmp_path: Path, hold: float, patience: float
) -> tuple[subprocess.CompletedProcess, Path]:
    home = tmp_path / "home"
    db = home / "workbench.db"
    env = {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_SQLITE_BUSY_MS": "300",  # each write gives up on the lock quickly
        "WORKBENCH_WRITE_PATIENCE": str(patience),
        "COLUMNS": "200",
        "PATH": "/usr/bin:/bin",
    }
    started = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(db, started, hold), daemon=True)
    holder.start()
    out = subprocess.run(
        [
            EXE,
            "eval",
            str(toy_tasks(tmp_path, 150)),
            "scripted:slow",
            "-g",
            "2",
            "--max-concurrent",
            "8",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    holder.join()
    assert started.is_set(), "the lock was never taken while the job ran"
    return out, db


def stored(db: Path) -> tuple[int, str]:
    conn = sqlite3.connect(db)
    count = conn.execute("select count(*) from traces").fetchone()[0]
    (status,) = conn.execute("select status from jobs").fetchone()
    conn.close()
    return count, status


def test_a_write_lock_held_past_the_busy_timeout_loses_no_trace(tmp_path):
    out, db = run_job(tmp_path, hold=3.0, patience=60)
    assert out.returncode == 0, out.stderr
    assert stored(db) == (300, "finished")
    assert "300/300" in out.stdout


def test_a_write_lock_held_for_ever_fails_the_job_loudly(tmp_path):
    out, db = run_job(tmp_path, hold=8.0, patience=1.0)
    assert out.returncode != 0, out.stdout
    assert "could not be stored" in out.stderr and "Traceback" not in out.stderr
    count, status = stored(db)
    assert count < 300 and status != "finished"
