"""The Ray backend (issue 7): runs on Ray actors, traces streamed back, worker deaths survived.

A real local Ray (127.0.0.1) is started once for the module; every test gets fresh actors
because every test has its own store.
"""

import asyncio
import json
import re

import pandas as pd
import pytest
from conftest import TOY, run_cli

import workbench
from workbench import jobs
from workbench.errors import WorkbenchError
from workbench.ray_backend import import_ray

try:
    import_ray()  # sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 first: a local Ray on 127.0.0.1
except WorkbenchError:
    pytest.skip("Ray is not installed (pip install 'workbench[ray]')", allow_module_level=True)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from workbench import ray_backend

    yield
    ray_backend.shutdown()


def toy_tasks(tmp_path, n: int, target: int = 1):
    path = tmp_path / "toy.jsonl"
    rows = [
        {"env": TOY, "scenario": "count", "args": {"target": target, "note": str(i)}}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def outcomes(job) -> list[tuple]:
    df = job.traces_df().sort_values(["task", "model", "group_index"])
    cols = ["task", "model", "group_index", "reward", "stop_reason", "steps"]
    return [tuple(row) for row in df[cols].itertuples(index=False)]


async def test_a_ray_job_gives_the_same_runs_and_leaderboard_as_a_local_one():
    models = ["scripted:expert", "scripted:weak"]
    local = await workbench.evaluate("shop-basics", models, group_size=4)
    on_ray = await workbench.evaluate("shop-basics", models, group_size=4, backend="ray")

    assert on_ray.status == "finished" and on_ray.config.backend == "ray"
    assert len(outcomes(on_ray)) == on_ray.total == 11 * 2 * 4
    assert outcomes(on_ray) == outcomes(local)
    board = on_ray.leaderboard().set_index("model")
    assert board.loc["scripted:expert", "success_rate"] == 1.0
    assert 0 < board.loc["scripted:weak", "success_rate"] < 1
    # Equal up to float summation order (the runs arrive in another order).
    pd.testing.assert_frame_equal(on_ray.leaderboard(), local.leaderboard())


async def test_ray_runs_stream_steps_and_traces_back_while_the_job_runs(tmp_path):
    tasks = toy_tasks(tmp_path, 12, target=2)
    events = []
    stored_at_each_finish = []
    store = workbench.get_store()
    job = workbench.jobs.create_job(
        tasks, ["scripted:slow"], max_concurrent=2, backend="ray", workers=2
    )

    def on_event(event):
        events.append(event)
        if isinstance(event, jobs.RunFinished):
            stored_at_each_finish.append(len(store.traces_df(job_id=job.id)))

    await jobs.run_job(job, on_event)

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "JobStarted" and kinds[-1] == "JobFinished"
    assert kinds.count("RunStarted") == kinds.count("RunFinished") == 12
    # Live: the first runs finish while later ones have not started yet.
    assert kinds.index("RunFinished") < max(i for i, k in enumerate(kinds) if k == "RunStarted")
    # ... and their traces reach the store before the job ends.
    assert stored_at_each_finish[-1] > 0 and stored_at_each_finish[0] < 12
    # Each run's steps arrive before its trace, and are the trace's assistant messages.
    for finished in (e for e in events if isinstance(e, jobs.RunFinished)):
        trace = finished.trace
        steps = [
            e.message
            for e in events[: events.index(finished)]
            if isinstance(e, jobs.Step) and (e.task, e.group_index) == (trace.task, 0)
        ]
        assert steps == [m for m in trace.messages if m["role"] == "assistant"]
        assert trace.stop_reason == "done" and trace.reward == 1.0


async def test_a_worker_that_dies_mid_run_costs_that_run_one_retry(tmp_path):
    tasks = toy_tasks(tmp_path, 3)
    job = await workbench.evaluate(
        tasks, ["scripted:expert", "scripted:dies-once"], max_concurrent=1, backend="ray"
    )
    df = job.traces_df()
    assert job.status == "finished"
    assert len(df) == 6 and not df.duplicated(["task", "model", "group_index"]).any()
    assert (df.stop_reason == "done").all(), df.error_message.tolist()
    assert (df.reward == 1.0).all()
    home = workbench.config.home()
    assert len(list(home.glob("died-*"))) == 3  # each dies-once run did kill its worker


async def test_a_run_whose_worker_dies_twice_is_an_error_trace_and_the_job_goes_on(tmp_path):
    tasks = toy_tasks(tmp_path, 2)
    job = await workbench.evaluate(
        tasks, ["scripted:expert", "scripted:dies-always"], max_concurrent=1, backend="ray"
    )
    df = job.traces_df().set_index("model")
    assert job.status == "finished" and job.errors == 2
    assert (df.loc["scripted:expert"].stop_reason == "done").all()
    doomed = df.loc["scripted:dies-always"]
    assert (doomed.stop_reason == "error").all() and (doomed.error_type == "WorkerDied").all()
    assert doomed.error_message.str.contains("Ray worker").all()


async def test_a_cancelled_ray_job_resumes_with_every_run_exactly_once(tmp_path):
    tasks = toy_tasks(tmp_path, 16)
    job = workbench.start(tasks, ["scripted:slow"], group_size=2, max_concurrent=8, backend="ray")
    async for event in job.events(steps=False):  # runs go to the actors in batches
        if isinstance(event, jobs.RunFinished) and job.done >= 6:
            job.cancel()
    await job
    assert job.status == "cancelled" and 6 <= job.done < job.total

    resumed = await workbench.resume(job.id)
    assert resumed.status == "finished" and resumed.config.backend == "ray"
    df = resumed.traces_df()
    assert len(df) == 32 and not df.duplicated(["task", "model", "group_index"]).any()


def test_the_cli_backend_ray_prints_the_local_leaderboard():
    args = ["eval", "shop-basics", "scripted:expert", "scripted:weak", "--group-size", "8"]
    local = run_cli(*args)
    on_ray = run_cli(*args, "--backend", "ray", timeout=300)
    assert local.returncode == 0, local.stderr
    assert on_ray.returncode == 0, on_ray.stderr

    def table(out: str) -> str:
        rows = [line for line in out.splitlines() if line.startswith("│")]
        return re.sub(r"job \w+", "job", "\n".join(rows))

    assert "scripted:weak" in table(on_ray.stdout)
    assert table(on_ray.stdout) == table(local.stdout)


def test_ray_options_need_the_ray_backend():
    with pytest.raises(ValueError, match="ray backend"):
        jobs.RunConfig(models=["scripted:expert"], address="127.0.0.1:6379")
    out = run_cli("eval", "shop-basics", "scripted:expert", "--workers", "2")
    assert out.returncode == 2 and "--backend ray" in out.stderr


def test_an_unreachable_cluster_is_a_clear_error():
    out = run_cli(
        "eval", "shop-basics", "scripted:expert", "--backend", "ray", "--address", "127.0.0.1:9"
    )
    assert out.returncode == 2, out.stderr
    assert "could not reach the Ray cluster at 127.0.0.1:9" in out.stderr


def test_dying_policies_refuse_to_run_in_process(tmp_path):
    job = asyncio.run(workbench.evaluate(toy_tasks(tmp_path, 1), "scripted:dies-always"))
    assert job.traces()[0].error_message.startswith("this policy kills its process")


async def test_the_run_dialog_runs_a_job_on_ray():
    from widgets import RunDialog

    dialog = RunDialog("shop-basics", models=["scripted:expert", "scripted:weak"])
    dialog.show()
    dialog.models.value = ("scripted:expert", "scripted:weak")
    dialog.backend.value = "ray"
    job = dialog.run()
    assert job is not None, dialog.error
    await job
    assert job.config.backend == "ray" and job.status == "finished"
    assert dialog.status.startswith("finished: 22/22 runs")


async def test_model_faults_are_retried_on_the_workers_and_each_run_is_stored_once(
    workbench_home, tmp_path
):
    from fault_server import FaultServer

    with FaultServer() as server:
        workbench_home.mkdir(parents=True, exist_ok=True)
        (workbench_home / "config.toml").write_text(
            f'[endpoints.faulty]\nbase_url = "{server.url}"\nbackoff = 0.01\n'
        )
        server.inject("429", "500", "503", "drop", "truncated")
        server.fault_rate, server.faults = 0.2, ("429", "500", "503", "drop", "truncated")
        job = await workbench.evaluate(
            toy_tasks(tmp_path, 16, target=2), "faulty:toy-model", max_concurrent=8, backend="ray"
        )
    df = job.traces_df()
    assert job.status == "finished" and len(df) == 16
    assert not df.duplicated(["task", "model", "group_index"]).any()
    assert (df.stop_reason == "done").all() and (df.reward == 1.0).all()
    faulted = [r for r in server.requests if r["fault"] is not None]
    assert {"429", "500", "503", "drop", "truncated"} <= {r["fault"] for r in faulted}
    assert len(server.requests) == 16 * 3 + len(faulted)  # each fault cost one retry, on Ray


async def test_runs_on_ray_actors_are_isolated_too():
    """A HUD-style environment (module globals) gets the same rates on Ray actors, at 16 in
    flight, as one run at a time in this process: each actor forks its runs."""
    from pathlib import Path

    from workbench.tasks import resolve_environment

    env = resolve_environment(f"{Path(__file__).resolve().parent / 'hud' / 'store.py'}:env")
    tasks = [env("checkout", product_name=p) for p in ("laptop", "mouse", "keyboard", "monitor")]
    models = ["scripted:expert", "scripted:weak"]
    one = await workbench.evaluate(tasks, models, group_size=2, max_concurrent=1)
    on_ray = await workbench.evaluate(tasks, models, group_size=2, backend="ray")
    rates = lambda job: job.leaderboard().set_index("model")["success_rate"].to_dict()  # noqa: E731
    assert rates(on_ray) == rates(one) == {"scripted:expert": 1.0, "scripted:weak": 0.0}
