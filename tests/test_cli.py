"""The `workbench` command as a newcomer types it, run as a real subprocess."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TOY, run_cli

import workbench


def test_eval_shop_basics_shows_progress_and_a_leaderboard_with_intervals(workbench_home):
    out = run_cli(
        "eval",
        "shop-basics",
        "scripted:expert",
        "scripted:weak",
        "--group-size",
        "4",
        "--max-steps",
        "10",
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "evaluating" in text and "88/88" in text  # the progress bar reached the end
    assert "Leaderboard" in text and "success [95% CI]" in text
    lines = {line.split()[1]: line for line in text.splitlines() if "scripted:" in line}
    expert, weak = lines["scripted:expert"], lines["scripted:weak"]
    assert "100% [" in expert  # success rate with its interval
    assert "100% [" not in weak

    db = sqlite3.connect(workbench_home / "workbench.db")
    rows = db.execute("select model, count(*), min(length(data)) from traces group by model")
    counts = {model: (n, min_len) for model, n, min_len in rows}
    assert counts["scripted:expert"][0] == counts["scripted:weak"][0] == 11 * 4
    assert all(min_len > 200 for _, min_len in counts.values())  # full conversations stored

    trace_id = db.execute(
        "select id from traces where model='scripted:expert' and task like 'checkout%'"
    ).fetchone()[0]
    shown = run_cli("trace", trace_id[:10])
    assert shown.returncode == 0, shown.stderr
    for expected in ("search_products", "checkout", "reward 1.00", "stop done"):
        assert expected in shown.stdout

    jobs = run_cli("jobs")
    assert "shop-basics" in jobs.stdout and "88/88" in jobs.stdout
    board = run_cli("leaderboard", "shop-basics")
    assert "scripted:expert" in board.stdout and "scripted:weak" in board.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "no-such-set", "scripted:expert"], "unknown taskset 'no-such-set'"),
        (["eval", "shop-basics", "gpt-17"], "unknown model id 'gpt-17'"),
        (["eval", "shop-basics", "scripted:genius"], "no scripted policy 'genius'"),
        (["trace", "ffffffff"], "no trace 'ffffffff'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2  # one line, maybe wrapped by the terminal


def test_bad_scenario_argument_in_an_imported_taskset(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"env": TOY, "scenario": "count", "args": {"target": "x"}}) + "\n")
    out = run_cli("tasks", "import", str(bad))
    assert out.returncode == 2
    assert "argument 'target'" in out.stderr and "Traceback" not in out.stderr


def test_tasks_import_show_export_round_trip(tmp_path):
    src = tmp_path / "mine.jsonl"
    src.write_text(
        "".join(
            json.dumps({"env": TOY, "scenario": "count", "args": {"target": n}}) + "\n"
            for n in (1, 2)
        )
    )
    assert run_cli("tasks", "import", str(src)).returncode == 0
    listed = run_cli("tasks", "list").stdout
    assert "mine" in listed and "shop-basics" in listed and "arithmetic-basics" in listed
    shown = run_cli("tasks", "show", "mine").stdout
    assert "count-1" in shown and "count-2" in shown
    dest = tmp_path / "out.jsonl"
    assert run_cli("tasks", "export", "mine", str(dest)).returncode == 0
    assert [json.loads(line)["slug"] for line in dest.read_text().splitlines()] == [
        "count-1",
        "count-2",
    ]


@pytest.mark.slow
def test_a_job_killed_with_sigkill_resumes_to_exactly_every_run(tmp_path, workbench_home):
    tasks = tmp_path / "slow.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"env": TOY, "scenario": "count", "args": {"target": 1, "note": str(i)}})
            + "\n"
            for i in range(60)
        )
    )
    exe = Path(sys.executable).with_name("workbench")
    proc = subprocess.Popen(
        [
            str(exe),
            "eval",
            str(tasks),
            "scripted:slow",
            "scripted:expert",
            "--group-size",
            "2",
            "--max-concurrent",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    db_path = workbench_home / "workbench.db"
    deadline = time.time() + 600  # only catches a hang: a loaded machine may start slowly
    done = 0
    while time.time() < deadline and done < 60:
        time.sleep(0.05)
        if db_path.exists():
            try:
                done = sqlite3.connect(db_path).execute("select count(*) from traces").fetchone()[0]
            except sqlite3.OperationalError:
                pass  # tables not created yet
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(db_path)
    ((job_id, status),) = db.execute("select id, status from jobs").fetchall()
    killed_at = db.execute("select count(*) from traces").fetchone()[0]
    assert status == "running" and 60 <= killed_at < 240
    listed = run_cli("jobs")  # any later process sees that the job's process is gone
    assert "interrupted" in listed.stdout and f"--resume {job_id}" in listed.stdout

    out = run_cli("eval", "--resume", job_id[:6])
    assert out.returncode == 0, out.stderr
    rows = db.execute("select task, model, group_index from traces").fetchall()
    assert len(rows) == 60 * 2 * 2 == len(set(rows))
    assert db.execute("select status from jobs").fetchone()[0] == "finished"
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--group-size", "-1", "group_size: Input should be greater than or equal to 1"),
        ("--group-size", "99999999999999999999", "group_size: Input should be less than"),
        ("--max-steps", "0", "max_steps: Input should be greater than or equal to 1"),
        ("--max-concurrent", "0", "max_concurrent: Input should be greater than or equal to 1"),
        ("--timeout", "-5", "timeout: Input should be greater than 0"),
        ("--top-p", "1.5", "top_p: Input should be less than or equal to 1"),
        ("--max-tokens", "0", "max_tokens: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_code_2(option, value, says):
    out = run_cli("eval", "shop-basics", "scripted:expert", option, value)
    assert out.returncode == 2, out.stdout + out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2  # one line (rich may wrap it)


def test_every_bad_option_is_named_at_once_and_a_model_twice_is_refused():
    out = run_cli("eval", "shop-basics", "scripted:expert", "scripted:expert", "-g", "0")
    assert out.returncode == 2
    assert "group_size" in out.stderr and "listed twice" in out.stderr


async def test_a_misspelt_option_is_an_error_naming_the_right_one():
    with pytest.raises(workbench.WorkbenchError, match="unknown option 'timout'.*'timeout'"):
        await workbench.evaluate("shop-basics", "scripted:expert", timout=5)


def test_trace_prints_a_runs_terminal_escapes_as_text_and_never_sends_them(workbench_home):
    from workbench.traces import Trace

    forged = "\x1b]52;c;Y3VybCBldmlsLnNo\x07\x1b[2J\x1b[Hreward 1.00 (success)"
    trace = Trace(
        taskset="t",
        task="x",
        model="m",
        messages=[{"role": "assistant", "content": forged}],
        stop_reason="error",
        error_type="RuntimeError",
        error_message="tool said \x1b[31mred\x1b[0m",
    )
    workbench.get_store().add_traces([trace])
    shown = run_cli("trace", trace.id[:12]).stdout
    assert "\x1b" not in shown and "\x07" not in shown  # no clipboard write, no cleared screen
    assert "\\x1b]52;c;Y3VybCBldmlsLnNo\\x07\\x1b[2J" in shown and "\\x1b[31mred" in shown
