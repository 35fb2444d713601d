"""Crash consistency: SIGKILL an evaluation at random points, resume, lose and repeat nothing."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TOY, run_cli

TASKS, MODELS, GROUP = 30, ("scripted:slow", "scripted:expert"), 2


def count(db: Path, sql: str):
    try:
        return sqlite3.connect(db).execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # the database or its tables are not there yet


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_exactly_every_run(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"env": TOY, "scenario": "count", "args": {"target": 1, "note": str(i)}})
            + "\n"
            for i in range(TASKS)
        )
    )
    expected = {
        (f"count-1-{i}", model, g) for i in range(TASKS) for model in MODELS for g in range(GROUP)
    }
    exe = Path(sys.executable).with_name("workbench")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    killed_mid_job = 0
    for trial in range(10):
        home = tmp_path / f"trial{trial}"
        env = {**os.environ, "WORKBENCH_HOME": str(home)}
        db = home / "workbench.db"
        proc = subprocess.Popen(
            [str(exe), "eval", str(tasks), *MODELS, "-g", str(GROUP), "--max-concurrent", "4"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.time() + 600  # a hang bound, not a speed check
        while not count(db, "select id from jobs") and time.time() < deadline:
            time.sleep(0.01)
        if trial < 2:  # right at the start, and somewhere that may be after the end
            time.sleep(rng.uniform(0, 0.05) if trial == 0 else rng.uniform(0, 3))
        else:  # once a random number of runs is stored: the kill lands mid-write on any machine
            target = rng.randrange(1, len(expected))
            while (
                proc.poll() is None
                and (count(db, "select count(*) from traces") or [(0,)])[0][0] < target
            ):
                time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        where = f"trial {trial}, seed {seed}"

        assert count(db, "pragma integrity_check") == [("ok",)], where
        ((job_id,),) = count(db, "select id from jobs")
        stored = count(db, "select count(*) from traces")[0][0]
        killed_mid_job += 0 < stored < len(expected)

        out = run_cli("eval", "--resume", job_id, env={"WORKBENCH_HOME": str(home)})
        assert out.returncode == 0, f"{where}: {out.stderr}"
        rows = count(db, "select task, model, group_index from traces")
        assert len(rows) == len(set(rows)), f"{where}: duplicate traces"
        assert set(rows) == expected, where
        assert count(db, "select status from jobs") == [("finished",)], where
        assert count(db, "pragma integrity_check") == [("ok",)], where
    assert killed_mid_job >= 3, f"seed {seed}: too few kills landed while runs were being stored"
