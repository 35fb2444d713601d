"""The store on SQLite and on a real PostgreSQL server, selected by ``WORKBENCH_DATABASE_URL``.

PostgreSQL: ``WORKBENCH_TEST_POSTGRES_URL`` (default: the server `.ci/run` starts,
``postgresql+psycopg://workbench:workbench@127.0.0.1:5432/workbench``). Each test gets a
fresh database on it; the tests skip, saying why, when no server answers.
"""

import asyncio
import os
import uuid

import pytest
import sqlalchemy as sa
from conftest import TOY

import workbench
from workbench.traces import Trace

POSTGRES = os.environ.get(
    "WORKBENCH_TEST_POSTGRES_URL",
    "postgresql+psycopg://workbench:workbench@127.0.0.1:5432/workbench",
)


def _postgres_database():
    """A fresh database on the server: (url, drop). Skips when there is no server."""
    try:
        admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"wb_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as e:  # no driver, no server, no rights
        pytest.skip(f"no PostgreSQL at {POSTGRES} ({type(e).__name__}); `.ci/run` starts one")
    url = admin.url.set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        from workbench import store

        engine = store._STORES.pop(url, None)
        if engine is not None:
            engine.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, monkeypatch):
    """The store's backend, chosen the way a user chooses it: by URL in the environment."""
    if request.param == "sqlite":
        yield workbench.get_store()
        return
    url, drop = _postgres_database()
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    try:
        store = workbench.get_store()
        assert store.engine.dialect.name == "postgresql"
        yield store
    finally:
        drop()


def toy_tasks(n: int = 3):
    from workbench import Task, Taskset

    return Taskset(
        "toy-store",
        [Task(env=TOY, scenario="count", args={"target": 1, "note": str(i)}) for i in range(n)],
    )


def test_tasksets_round_trip(db):
    db.save_taskset(toy_tasks(3))
    db.save_taskset(toy_tasks(2))  # saving again replaces
    assert db.list_tasksets()["toy-store"] == 2
    assert [t.slug for t in db.load_taskset("toy-store")] == ["count-1-0", "count-1-1"]
    assert db.delete_taskset("toy-store") and db.load_taskset("toy-store") is None


async def test_a_job_stores_every_run_once_and_the_leaderboard_reads_it(db):
    job = await workbench.evaluate(toy_tasks(3), "scripted:expert", group_size=2)
    assert db.count_traces(job.id) == 6
    assert db.jobs().set_index("id").loc[job.id, "status"] == "finished"
    board = job.leaderboard().set_index("model")
    assert board.loc["scripted:expert", "success_rate"] == 1.0
    trace = db.get_trace(job.traces()[0].id[:8])
    assert [m["role"] for m in trace.messages][:2] == ["user", "assistant"]
    assert trace.tool_calls and trace.tool_calls[0].name == "increment"


def test_writing_a_run_twice_keeps_the_first(db):
    first = Trace(job_id="j1", task="t", model="m", group_index=0, reward=1.0)
    again = Trace(job_id="j1", task="t", model="m", group_index=0, reward=0.0)
    db.add_traces([first])
    db.add_traces([again, Trace(job_id="j1", task="t", model="m", group_index=1)])
    assert db.count_traces("j1") == 2
    assert db.finished_runs("j1") == {("t", "m", 0), ("t", "m", 1)}
    df = db.traces_df(job_id="j1").set_index("group_index")
    assert df.loc[0, "reward"] == 1.0 and df["success"].dtype == bool


def test_reads_in_a_snapshot_agree_while_another_process_writes(db):
    """A view that sums runs in one query and lists them in another (the live leaderboard)
    reads both as of one moment: a run committed between the two is in neither."""
    from workbench.store import Store

    writer = Store(db.url)  # another connection pool: another process, as far as the db knows
    try:
        db.add_traces([Trace(job_id="j1", task="t", model="m", group_index=0, reward=1.0)])
        with db.snapshot():
            cells = db.run_cells(job_id="j1")
            writer.add_traces([Trace(job_id="j1", task="t", model="m", group_index=1)])
            listed = db.finished_runs("j1")
            assert int(cells["runs"].sum()) == len(listed) == db.count_traces("j1") == 1
        assert len(db.finished_runs("j1")) == 2
    finally:
        writer.engine.dispose()


async def test_a_cancelled_job_resumes_without_duplicates(db):
    job = workbench.start(toy_tasks(20), "scripted:slow", max_concurrent=2)
    while job.done < 4:
        await asyncio.sleep(0.01)
    job.cancel()
    await job
    assert job.status == "cancelled" and 0 < db.count_traces(job.id) < 20
    resumed = await workbench.resume(job.id)
    assert resumed.status == "finished"
    df = db.traces_df(job_id=job.id)
    assert len(df) == 20 and not df.duplicated(["task", "model", "group_index"]).any()


def test_the_leaderboard_aggregated_in_sql_equals_the_one_from_the_runs(db):
    """Errors count reward 0, cancelled runs not at all, uneven groups give NaN pass@k."""
    import random

    import pandas as pd

    from workbench.leaderboard import leaderboard, per_task, per_task_from_cells, stored_leaderboard

    rng = random.Random(7)
    traces = []
    for job in ("job-a", "job-b"):
        for model in ("scripted:expert", "scripted:weak", "openai:gpt-x"):
            for task in ("t1", "t2", "t3"):
                for g in range(rng.randint(1, 5)):
                    stop = rng.choice(["done", "done", "done", "max_steps", "error", "cancelled"])
                    reward = rng.choice([0.0, 0.5, 1.0])
                    traces.append(
                        Trace(
                            job_id=job,
                            taskset="mixed",
                            task=task,
                            model=model,
                            group_index=g,
                            reward=reward,
                            stop_reason=stop,
                        )
                    )
    db.add_traces(traces)

    for where in ({"taskset": "mixed"}, {"job_id": "job-b"}):
        runs = db.traces_df(**where)
        pd.testing.assert_frame_equal(stored_leaderboard(db, **where), leaderboard(runs))
        cells = db.run_cells(**where, by=["model", "task"])
        pd.testing.assert_frame_equal(per_task_from_cells(cells), per_task(runs))
    board = stored_leaderboard(db, taskset="mixed").set_index("model")
    assert board["errors"].sum() == sum(t.stop_reason == "error" for t in traces)
    assert board["runs"].sum() == sum(t.stop_reason != "cancelled" for t in traces)


async def test_a_file_name_that_is_not_utf8_is_stored_and_read_back(db, tmp_path):
    """Listing a folder that holds a Latin-1 file name gives text no UTF-8 database takes
    as it is: the run and every other run written with it are stored all the same."""
    from workbench import Environment, answer, call

    name = os.fsdecode(b"caf\xe9.txt")
    env = Environment("lister", runtime="inprocess")

    @env.tool()
    def ls() -> str:
        """List the folder."""
        return name

    @env.scenario("list")
    async def list_files(n: int = 0):
        yield "List the files."
        raise OSError(f"cannot open {name}")

    env.policy("lister")(lambda ctx: call("ls") if ctx.step == 0 else answer("done"))
    job = await workbench.evaluate([env("list", n=n) for n in range(20)], "scripted:lister")
    assert job.status == "finished" and len(job.traces_df()) == 20
    trace = job.traces()[0]
    assert trace.messages[-2]["content"] == name  # the conversation exactly as it was
    assert "cannot open caf\\udce9.txt" in trace.error_message
