"""Every run isolated by default: HUD-style environments (state in module globals, in
environment-level objects, in files of the working directory) get the same rewards with 16
runs in flight as one at a time, and a run's process that dies is an error, never a lost run.
"""

import os
import time
from pathlib import Path

import pytest

import workbench
from workbench.runtimes import choose_runtime
from workbench.tasks import resolve_environment

HERE = Path(__file__).resolve().parent / "hud"


def hud_env(name: str):
    return resolve_environment(f"{HERE / name}.py:env")


def store_tasks():
    env = hud_env("store")
    products = ["laptop", "mouse", "keyboard", "monitor"]
    return workbench.Taskset(
        "hud-store",
        [env("checkout", product_name=p, apply_coupon=c) for p in products for c in (False, True)],
    )


def success(job) -> dict[str, float]:
    return job.leaderboard().set_index("model")["success_rate"].to_dict()


async def test_module_global_state_gives_the_same_rates_at_16_in_flight_as_one_at_a_time():
    tasks = store_tasks()
    assert choose_runtime(tasks[0].environment()) == "isolated"  # no state=: isolated
    models = ["scripted:expert", "scripted:weak"]
    one = await workbench.evaluate(tasks, models, group_size=2, max_concurrent=1)
    many = await workbench.evaluate(tasks, models, group_size=2, max_concurrent=16)
    assert success(one) == success(many) == {"scripted:expert": 1.0, "scripted:weak": 0.0}
    assert set(many.traces_df().stop_reason) == {"done"}


async def test_in_process_runs_share_module_globals_as_documented():
    """The in-process runtime stays available by name, and shares what the README says."""
    tasks = store_tasks()
    job = await workbench.evaluate(
        tasks, "scripted:expert", group_size=2, max_concurrent=16, runtime="inprocess"
    )
    assert success(job)["scripted:expert"] < 1.0  # runs emptied each other's carts


@pytest.mark.parametrize("scenario, arg", [("deposit", "amount"), ("note", "text")])
async def test_env_level_objects_and_working_directory_files_are_per_run(scenario, arg):
    env = hud_env("ledger")
    values = [5, 7, 11, 13] if arg == "amount" else ["a", "b", "c", "d"]
    tasks = workbench.Taskset(f"ledger-{scenario}", [env(scenario, **{arg: v}) for v in values])
    models = ["scripted:expert", "scripted:weak"]
    one = await workbench.evaluate(tasks, models, group_size=4, max_concurrent=1)
    many = await workbench.evaluate(tasks, models, group_size=4, max_concurrent=16)
    assert success(one) == success(many) == {"scripted:expert": 1.0, "scripted:weak": 0.0}
    assert not Path("notes.txt").exists()  # runs wrote in their own directories


async def test_this_process_is_untouched_by_isolated_runs():
    import sys

    tasks = store_tasks()
    store = sys.modules[tasks[0].environment().tools["checkout"].fn.__module__]
    store.cart[:] = ["left here by hand"]
    await workbench.evaluate(tasks, "scripted:expert", max_concurrent=4)
    assert store.cart == ["left here by hand"]  # the runs changed their own copies


def _process_groups() -> dict[int, int]:
    """pid -> process group of every process on the machine."""
    groups = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # a killed process not yet reaped by init is gone already
                groups[int(entry)] = int(fields[2])
    return groups


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find processes")
async def test_a_run_process_that_dies_or_hangs_is_an_error_or_a_timeout_and_none_outlives_the_job():
    env = hud_env("crashy")
    tasks = workbench.Taskset(
        "crashy", [env("use", tool=t) for t in ("exit_process", "kill_process", "spin", "fine")]
    )
    seen_groups: set[int] = set()
    # Fork servers of earlier tests' runs outside a job (workbench.eval, env.call_tool) live
    # until this process exits, by design: only groups that appear with this job are its own.
    before = set(_process_groups())

    def watch(event):  # the fork server's process group, while runs are under way
        if isinstance(event, workbench.Step | workbench.RunFinished):
            me = os.getpid()
            for pid, group in _process_groups().items():
                if pid != me and pid not in before and group == pid and _parent(pid) == me:
                    seen_groups.add(group)

    # The timeout ends the spinning run; it is generous because on a loaded machine the
    # fork server's start (a fresh interpreter) counts within the first runs' time.
    job = workbench.start(tasks, "scripted:obedient", timeout=20, max_concurrent=4)
    job.subscribe(watch)
    await job
    df = job.traces_df().set_index("task")
    assert df.loc["use-exit-process", "stop_reason"] == "error"
    assert df.loc["use-kill-process", "stop_reason"] == "error"
    died = df.loc["use-kill-process", "error_message"]
    assert "ended without answering" in died, died
    assert df.loc["use-spin", "stop_reason"] == "timeout"
    assert df.loc["use-fine", "stop_reason"] == "done" and df.loc["use-fine", "reward"] == 1.0
    assert job.status == "finished" and job.done == 4
    assert seen_groups, "the job's fork server was not seen"
    for _ in range(50):  # SIGKILL is delivered at once; the kernel's cleanup may lag a little
        left = [pid for pid, group in _process_groups().items() if group in seen_groups]
        if not left:
            break
        time.sleep(0.1)
    assert left == [], f"processes outlived the job: {left}"


async def test_a_reply_over_the_line_limit_is_an_error_that_says_so(monkeypatch):
    from workbench.runtimes import isolated

    monkeypatch.setattr(isolated, "_LINE_LIMIT", 1 << 20)  # this side's limit: 1 MB
    env = hud_env("crashy")
    tasks = workbench.Taskset("floods", [env("use", tool=t) for t in ("flood", "fine")])
    job = await workbench.evaluate(tasks, "scripted:obedient", timeout=20)
    df = job.traces_df().set_index("task")
    assert df.loc["use-flood", "stop_reason"] == "error"
    message = df.loc["use-flood", "error_message"]
    assert "longer than 1048576 bytes" in message and "'call'" in message, message
    assert df.loc["use-fine", "stop_reason"] == "done"


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


async def test_environments_made_in_this_process_run_isolated_too():
    """A notebook's environment (not importable) runs in forks of this process."""
    env = workbench.Environment("made-in-a-notebook")
    seen: list[int] = []

    @env.tool()
    def remember(n: int) -> int:
        """Remember a number.

        Args:
            n: the number.
        """
        seen.append(n)
        return len(seen)

    @env.scenario("remember")
    async def remember_once(n: int):
        seen.clear()
        yield f"Remember {n}."
        yield 1.0 if seen == [n] else 0.0

    @env.policy("expert")
    def expert(ctx):
        return (
            workbench.call("remember", n=ctx.args["n"]) if ctx.step == 0 else workbench.answer("ok")
        )

    tasks = workbench.Taskset("notebook", [env("remember", n=n) for n in range(6)])
    job = await workbench.evaluate(tasks, "scripted:expert", group_size=3, max_concurrent=16)
    assert success(job) == {"scripted:expert": 1.0}
    assert seen == []  # the notebook's own copy was never touched


async def test_isolated_runs_draw_different_random_numbers():
    """Each run process is a copy of one snapshot: its random generator is reseeded."""
    env = hud_env("dice")
    job = await workbench.evaluate(
        workbench.Taskset("dice", [env("roll")]), "scripted:expert", group_size=12
    )
    draws = [trace.info["draw"] for trace in job.traces()]
    assert len(draws) == 12 and len(set(draws)) == 12


async def test_an_environments_own_fork_hooks_run_in_every_run():
    """A library that registered an after-fork hook (to reconnect a client) gets it called
    in every run's process."""
    env = hud_env("reconnect")
    job = await workbench.evaluate(
        workbench.Taskset("reconnect", [env("ping")]), "scripted:expert", group_size=6
    )
    assert success(job) == {"scripted:expert": 1.0}


async def test_a_scenarios_cleanup_runs_in_every_run_before_the_job_ends(tmp_path):
    """Code a scenario runs after its reward (a `finally` block) runs in each run's process,
    and the job waits for it: nothing is cut off when the job's processes are ended."""
    env = hud_env("tidy")
    out = tmp_path / "cleaned"
    out.mkdir()
    tasks = workbench.Taskset("tidy", [env("tidy", out=str(out), n=n) for n in range(8)])
    job = await workbench.evaluate(tasks, "scripted:expert", max_concurrent=8)
    assert success(job) == {"scripted:expert": 1.0}
    cleaned = sorted(p.name.split("-")[0] for p in out.iterdir())
    assert cleaned == [str(n) for n in range(8)]


async def test_a_fork_server_that_dies_is_replaced_for_the_runs_after_it():
    env = hud_env("crashy")
    tasks = workbench.Taskset(
        "crashy-server", [env("use", tool=t) for t in ("kill_fork_server", "fine")]
    )
    # one at a time: killed, fine, killed, fine ... (group index outermost)
    job = await workbench.evaluate(tasks, "scripted:obedient", group_size=4, max_concurrent=1)
    # The killing run itself goes on (it is a process of its own); every run after a kill
    # gets a new fork server, where before each was an error ("the fork server is gone").
    assert set(job.traces_df()["stop_reason"]) == {"done"} and job.done == 8


async def test_a_slow_initialize_hook_neither_blocks_the_event_loop_nor_outlasts_timeouts():
    import asyncio

    env = hud_env("slowstart")  # @env.initialize sleeps 60 s in the fork server
    tasks = workbench.Taskset("slowstart", [env("ping", n=n) for n in range(3)])
    gaps, ticking = [], True

    async def ticker():  # what else the notebook's event loop runs meanwhile
        last = time.monotonic()
        while ticking:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def tick():
        nonlocal ticking
        beats = asyncio.ensure_future(ticker())
        try:
            started = time.monotonic()
            job = await workbench.evaluate(tasks, "scripted:quick", timeout=1.5)
            return job, time.monotonic() - started
        finally:
            ticking = False
            await beats

    job, seconds = await tick()
    assert set(job.traces_df()["stop_reason"]) == {"timeout"}
    # Bounds that only catch the waiting (for the 60 s hook), not a speed: a loaded machine
    # may be slow, but not by a minute.
    assert seconds < 40, f"the job waited for the hook ({seconds:.1f} s)"
    assert max(gaps) < 30, f"the event loop stalled for {max(gaps):.1f} s"


async def test_isolated_runs_never_see_this_processs_secrets(monkeypatch):
    from workbench import Environment, answer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak-1234")
    monkeypatch.setenv("DATABASE_URL", "postgresql://me:hunter2@db/wb")
    monkeypatch.setenv("MY_SETTING", "plain")
    names = ("OPENAI_API_KEY", "DATABASE_URL", "MY_SETTING")
    expected = {"OPENAI_API_KEY": "none", "DATABASE_URL": "none", "MY_SETTING": "plain"}

    here = Environment("secret-reader")  # a notebook's environment: its fork server is a fork

    @here.scenario("read-env")
    async def read_env(name: str):
        yield f"Read {name}."
        yield {"reward": 1.0, "info": {"value": os.environ.get(name, "none")}}

    here.policy("answerer")(lambda ctx: answer("done"))
    for env in (hud_env("crashy"), here):
        tasks = workbench.Taskset(f"secrets-{env.name}", [env("read-env", name=n) for n in names])
        job = await workbench.evaluate(tasks, "scripted:answerer")
        seen = {t.args["name"]: t.info["value"] for t in job.traces()}
        assert seen == expected, env.name
    assert os.environ["OPENAI_API_KEY"] == "sk-do-not-leak-1234"  # this process keeps its own


async def test_a_module_left_in_the_working_directory_shadows_nothing(tmp_path, monkeypatch):
    """A run that writes json.py where later runs' servers start cannot put code in them."""
    marker = tmp_path / "imported"
    (tmp_path / "json.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError\n")
    monkeypatch.chdir(tmp_path)
    tasks = store_tasks()
    for runtime in ("isolated", "subprocess"):
        job = await workbench.evaluate(tasks, "scripted:expert", runtime=runtime, max_concurrent=2)
        assert set(job.traces_df()["stop_reason"]) == {"done"}, runtime
    assert not marker.exists()


DATED = """
import datetime
from workbench import Environment, answer

env = Environment("dated")

@env.scenario("on-day")
async def on_day():
    yield "What day is it?"
    yield {"reward": 1.0, "info": {"at": datetime.datetime(2024, 1, 2, 3, 4), "seen": {"a"}}}

@env.policy("expert")
def expert(ctx):
    return answer("a Tuesday")
"""


@pytest.mark.parametrize("runtime", ["isolated", "inprocess", "subprocess"])
async def test_a_rewards_info_is_stored_alike_in_every_runtime(runtime, tmp_path):
    """Dates and sets in a reward's info read back as the same JSON wherever the run ran."""
    (tmp_path / "dated.py").write_text(DATED.replace('"dated"', f'"dated-{runtime}"'))
    env = resolve_environment(f"{tmp_path / 'dated.py'}:env")
    job = await workbench.evaluate(
        workbench.Taskset("dated", [env("on-day")]), "scripted:expert", runtime=runtime
    )
    [trace] = workbench.get_store().traces(job_id=job.id)
    assert trace.info == {"at": "2024-01-02T03:04:00", "seen": ["a"]}
