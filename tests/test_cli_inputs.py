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
