"""Every bad input a careless user gives is one line on stderr and exit code 2, and loses
nothing (issue 11, finding 6)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("workbench"))


def workbench(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        env={"WORKBENCH_HOME": str(home), "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        timeout=600,
    )


def one_line_error(out: subprocess.CompletedProcess, says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error:") and says in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_a_task_file_that_is_not_utf8(tmp_path):
    bad = tmp_path / "tasks.jsonl"
    bad.write_bytes(b'\xff\xfe{"env": "shop"}\n')
    one_line_error(workbench("eval", str(bad), "scripted:expert", home=tmp_path), "not UTF-8")


def test_a_path_too_long(tmp_path):
    out = workbench("eval", f"/tmp/{'a' * 5000}.jsonl", "scripted:expert", home=tmp_path)
    one_line_error(out, "File name too long")


def test_a_corrupted_database_file(tmp_path):
    (tmp_path / "workbench.db").write_text("not a database, whatever it once was\n" * 100)
    one_line_error(workbench("jobs", home=tmp_path), "file is not a database")


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip("needs root and mount(8) to make a read-only or full file system")


@pytest.fixture
def mounts():
    made: list[Path] = []
    yield made
    for where in made:
        subprocess.run(["umount", str(where)])


def test_a_read_only_home_even_for_listing_jobs(tmp_path, mounts):
    home = tmp_path / "ro"
    _mount_tmpfs(home, "ro,size=1m")
    mounts.append(home)
    one_line_error(workbench("jobs", home=home), "cannot be used")


def test_a_full_disk(tmp_path, mounts):
    home = tmp_path / "full"
    _mount_tmpfs(home, "size=160k")
    mounts.append(home)
    out = workbench(
        "eval", "shop-basics", "scripted:expert", "scripted:weak", "-g", "20", home=home
    )
    assert out.returncode == 2 and "full" in out.stderr and "Traceback" not in out.stderr


def test_smaller_inputs_are_refused_or_handled(tmp_path, monkeypatch):
    """Issue 11, finding 7: wildcards in id prefixes, a shipped taskset's name, absurd
    latencies, and what a training run killed mid-way leaves behind."""
    import os

    import workbench
    from workbench.errors import NotFoundError, UnknownModelError
    from workbench.store import Store
    from workbench.training.trainer import remove_abandoned as _remove_abandoned

    store = Store(f"sqlite:///{tmp_path}/w.db")
    store.add_trace(workbench.Trace(job_id="j", task="t", model="m", group_index=0))
    for wildcard in ("%", "_"):
        with pytest.raises(NotFoundError):
            store.get_trace(wildcard)  # a character, not "any trace"

    ts = workbench.Taskset("shop-basics", [workbench.Task(env="shop", scenario="checkout")])
    with pytest.raises(workbench.WorkbenchError, match="name of a shipped taskset"):
        store.save_taskset(ts)

    for latency in ("nan", "inf", "1e308", "-1"):
        with pytest.raises(UnknownModelError, match="0 to 3600"):
            workbench.get_model(f"scripted:expert?latency={latency}")

    folder = tmp_path / "models" / "fork"
    dead, live = folder / ".partial-20260101-x-999999999", folder / f".partial-x-{os.getpid()}"
    dead.mkdir(parents=True)
    live.mkdir()
    _remove_abandoned(folder)
    assert not dead.exists() and live.exists()  # a live training run keeps its folder


def test_a_fork_name_may_not_end_in_a_newline(tmp_path):
    import workbench
    from workbench.store import Store

    store = Store(f"sqlite:///{tmp_path}/w.db")
    with pytest.raises(workbench.WorkbenchError, match="not a valid model name"):
        workbench.fork("smollm2-135m", "my-fork\n", store=store)
