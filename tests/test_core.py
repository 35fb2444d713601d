"""The core API as a researcher uses it: environments, tasks, one run by hand, jobs."""

import asyncio
import json
import time

import pytest

import workbench
from workbench import Taskset, create_agent
from workbench.errors import (
    ScenarioArgumentError,
    UnknownModelError,
    UnknownTasksetError,
    WorkbenchError,
)
from workbench.jobs import run_job

# -- environments and tasks -----------------------------------------------------------------


def test_tool_schema_comes_from_hints_and_docstring(toy):
    schema = toy.tools["increment"].schema["function"]
    assert schema["name"] == "increment"
    assert schema["description"] == "Add to the counter."
    assert schema["parameters"]["properties"]["by"] == {
        "default": 1,
        "description": "how much to add.",
        "type": "integer",
    }
    # the state parameter is injected, never offered to the model
    assert "state" not in schema["parameters"]["properties"]
    assert toy.tools["wait"].schema["function"]["parameters"]["required"] == ["seconds"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "scenario 'count': argument 'target' is required"),
        ({"target": "many"}, "argument 'target'"),
        ({"target": 1, "colour": "red"}, "unknown argument 'colour'"),
    ],
)
def test_bad_scenario_argument_is_a_one_line_error_naming_it(toy, args, message):
    with pytest.raises(ScenarioArgumentError) as err:
        toy.task("count", **args)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_task_slug_is_stable_and_readable(toy):
    a = toy.task("count", target=3, note="hello world")
    b = toy.scenarios["count"](target=3, note="hello world")
    assert a.slug == b.slug == "count-3-hello-world"
    assert a.id == b.id
    assert toy.task("count", target=4).id != a.id
    assert toy.task("count", target="5").args == {"target": 5}  # coerced to the declared type


def test_taskset_round_trips_through_jsonl_datasets_and_the_store(toy, tmp_path, store):
    ts = Taskset("toy-set", [toy.task("count", target=n) for n in (1, 2, 3)])
    back = Taskset.load_jsonl(ts.save_jsonl(tmp_path / "toy-set.jsonl"))
    assert [t.model_dump() for t in back] == [t.model_dump() for t in ts]

    ds = ts.to_dataset()
    assert ds.num_rows == 3 and set(ds.column_names) == {"env", "scenario", "args", "slug"}
    assert [t.model_dump() for t in Taskset.from_dataset(ds, "x")] == [t.model_dump() for t in ts]

    store.save_taskset(ts)
    assert workbench.load_taskset("toy-set").slugs == ["count-1", "count-2", "count-3"]


def test_duplicate_slugs_are_refused(toy):
    with pytest.raises(workbench.WorkbenchError, match="already has a task 'count-1'"):
        Taskset("dup", [toy.task("count", target=1), toy.task("count", target=1)])


def test_unknown_taskset_says_what_to_do():
    with pytest.raises(UnknownTasksetError, match="unknown taskset .nope.*jsonl, .json or a .py"):
        workbench.load_taskset("nope")


# -- one run by hand ------------------------------------------------------------------------


async def test_driving_one_run_records_its_trace(toy, store):
    task = toy.task("count", target=2)
    agent = create_agent("scripted:expert")
    async with workbench.eval(task) as ctx:
        trace = await agent.run(ctx)
    assert ctx.reward == 1.0
    assert trace.stop_reason == "done" and trace.steps == 3
    assert trace.info == {"value": 2}
    assert [c.name for c in trace.tool_calls] == ["increment", "increment"]
    stored = store.get_trace(trace.id[:8])
    assert stored.messages == trace.messages
    assert stored.messages[-1] == {"role": "assistant", "content": "done"}


async def test_each_run_gets_fresh_state(toy):
    agent = create_agent("scripted:expert")
    rewards = []
    for _ in range(3):
        async with workbench.eval(toy.task("count", target=1)) as ctx:
            rewards.append((await agent.run(ctx)).reward)
    assert rewards == [1.0, 1.0, 1.0]  # a shared counter would reach 2 and 3


async def test_bad_tool_calls_become_errors_the_model_sees_and_the_run_goes_on(toy):
    async with workbench.eval(toy.task("count", target=1)) as ctx:
        trace = await create_agent("scripted:clumsy").run(ctx)
    errors = [c for c in trace.tool_calls if c.error]
    assert [c.name for c in errors] == ["no_such_tool", "increment", "explode"]
    assert "unknown tool 'no_such_tool'" in errors[0].result
    assert "not valid JSON" in errors[1].result
    assert errors[2].result == "Error: RuntimeError: the tool broke"
    assert trace.stop_reason == "done" and trace.reward == 1.0


async def test_max_steps_stops_the_loop_and_still_grades(toy):
    async with workbench.eval(toy.task("count", target=1)) as ctx:
        trace = await create_agent("scripted:looper", max_steps=4).run(ctx)
    assert trace.stop_reason == "max_steps" and trace.steps == 4 and trace.reward == 0.0


async def test_a_crashing_model_is_an_error_trace_not_an_exception(toy, store):
    async with workbench.eval(toy.task("count", target=1)) as ctx:
        trace = await create_agent("scripted:crasher").run(ctx)
    assert trace.stop_reason == "error"
    assert (trace.error_type, trace.error_message) == ("ConnectionError", "model went away")
    assert store.get_trace(trace.id).stop_reason == "error"


async def test_a_reward_outside_0_1_is_an_error_that_names_the_scenario(toy):
    async with workbench.eval(toy.task("bad-reward")) as ctx:
        trace = await create_agent("scripted:expert").run(ctx)
    assert trace.stop_reason == "error"
    assert "scenario 'bad-reward' yielded reward 7.0, outside [0, 1]" in trace.error_message


def test_unknown_model_id_says_what_to_use():
    with pytest.raises(UnknownModelError, match="unknown model id 'gpt5'.*scripted:NAME"):
        workbench.get_model("gpt5")
    with pytest.raises(UnknownModelError, match="set OPENAI_API_KEY"):
        workbench.get_model("openai:gpt-4o-mini")


# -- jobs -----------------------------------------------------------------------------------


def toy_taskset(toy, n=3):
    return Taskset("toy", [toy.task("count", target=t) for t in range(1, n + 1)])


async def test_evaluate_runs_every_task_model_and_group_index(toy, store):
    models = ["scripted:expert", "scripted:looper", "scripted:crasher"]
    job = await workbench.evaluate(toy_taskset(toy), models, group_size=2, max_steps=6)
    df = job.traces_df()
    assert len(df) == 3 * 3 * 2 == job.total == job.done
    assert not df.duplicated(["task", "model", "group_index"]).any()
    board = job.leaderboard().set_index("model")
    assert board.loc["scripted:expert", "success_rate"] == 1.0
    assert board.loc["scripted:looper", "failures"] == 6
    assert board.loc["scripted:crasher", "errors"] == 6
    assert board.index[0] == "scripted:expert"
    assert store.jobs().set_index("id").loc[job.id, "status"] == "finished"


async def test_job_events_follow_every_run(toy):
    events = []
    job = await workbench.evaluate(
        toy_taskset(toy, 2), ["scripted:expert"], group_size=2, on_event=events.append
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "JobStarted" and kinds[-1] == "JobFinished"
    assert kinds.count("RunStarted") == kinds.count("RunFinished") == 4
    # target 1 takes 2 steps, target 2 takes 3, each twice
    assert kinds.count("Step") == 2 * (2 + 3)
    assert events[-1].status == "finished" and job.status == "finished"


async def test_unknown_policy_fails_before_any_run(toy, store):
    with pytest.raises(UnknownModelError, match="no scripted policy 'genius'"):
        workbench.create_job(toy_taskset(toy), ["scripted:genius"])
    assert store.jobs().empty


async def test_per_run_timeout_is_recorded(toy):
    job = await workbench.evaluate(toy_taskset(toy, 1), "scripted:slow", timeout=0.01)
    trace = job.traces()[0]
    assert trace.stop_reason == "timeout" and trace.reward == 0.0
    assert "0.01 s" in trace.error_message


async def started_slow_job(toy, tasks: int, done: int, models=("scripted:slow",), at_once=4):
    """A job of ``tasks`` slow runs started in the background, once ``done`` have finished."""
    ts = Taskset("toy", [toy.task("count", target=1, note=str(i)) for i in range(tasks)])
    job = workbench.start(ts, list(models), max_concurrent=at_once)
    while job.done < done:
        await asyncio.sleep(0.01)
    return job


async def test_cancel_keeps_finished_runs_and_the_job_resumes_without_duplicates(toy, store):
    job = await started_slow_job(toy, 40, 8)
    job.cancel()
    await job
    assert job.status == "cancelled"
    kept = store.count_traces(job.id)
    assert 8 <= kept < 40
    assert store.jobs().set_index("id").loc[job.id, "status"] == "cancelled"

    resumed = await workbench.resume(job.id)
    df = resumed.traces_df()
    assert len(df) == 40 and not df.duplicated(["task", "model", "group_index"]).any()
    assert (df["stop_reason"] == "done").all()


async def test_background_job_streams_events_to_an_async_reader(toy):
    job = workbench.start(toy_taskset(toy), ["scripted:expert"], group_size=2)
    seen = [type(e).__name__ async for e in job.events()]
    await job
    assert seen.count("RunFinished") == 6 and seen[-1] == "JobFinished"


def test_trace_json_has_the_whole_conversation(toy, store):
    async def one():
        async with workbench.eval(toy.task("count", target=1)) as ctx:
            return await create_agent("scripted:expert").run(ctx)

    trace = asyncio.run(one())
    data = json.loads(store.get_trace(trace.id).model_dump_json())
    assert data["messages"][1]["tool_calls"][0]["function"]["name"] == "increment"
    assert data["tools"] and data["task"] == "count-1" and data["model"] == "scripted:expert"


def test_tool_arguments_named_title_and_annotated_constraints_survive():
    from typing import Annotated

    import pydantic

    from workbench import Environment

    env = Environment("notes-test")

    @env.tool
    def note(title: str, stars: Annotated[int, pydantic.Field(ge=1, le=5)] = 3) -> str:
        """Write a note.

        Args:
            title: the heading.
            stars: how good it is.
        """
        return title

    params = env.tools["note"].schema["function"]["parameters"]
    assert params["properties"]["title"] == {"description": "the heading.", "type": "string"}
    assert params["properties"]["stars"]["maximum"] == 5
    assert params["required"] == ["title"]


async def test_a_scripted_model_with_latency_answers_after_it(toy):
    task = toy.task("count", target=1)
    agent = workbench.create_agent("scripted:expert?latency=0.1")
    started = time.perf_counter()
    async with workbench.eval(task) as ctx:
        trace = await agent.run(ctx)
    assert time.perf_counter() - started >= 0.2  # two model calls
    assert trace.model == "scripted:expert?latency=0.1" and trace.reward == 1.0
    with pytest.raises(UnknownModelError, match="latency=SECONDS"):
        workbench.create_agent("scripted:expert?speed=2")


# -- a job's ending is always told right ---------------------------------------------------


async def test_a_failing_listener_changes_no_result_and_the_job_finishes(toy, store, caplog):
    def broken_widget(event):
        if type(event).__name__ in ("JobStarted", "Step", "RunFinished"):
            raise ValueError("a bug in a progress bar")

    job = await workbench.evaluate(
        toy_taskset(toy, 3), "scripted:expert", group_size=2, on_event=broken_widget
    )
    assert job.status == "finished"
    df = job.traces_df()
    assert len(df) == 6 and (df["stop_reason"] == "done").all() and df["success"].all()
    assert store.jobs().set_index("id").loc[job.id, "status"] == "finished"
    assert "a listener failed on Step" in caplog.text


async def test_cancelling_twice_still_ends_the_job_cancelled(toy, store):
    job = await started_slow_job(toy, 60, 4)
    job.cancel()
    for _ in range(100):  # Cancel clicked again and again (Ctrl-C twice) while the job ends
        await asyncio.sleep(0.002)
        job.cancel()
    await job
    assert job.status == "cancelled"
    assert store.jobs().set_index("id").loc[job.id, "status"] == "cancelled"


async def test_a_job_cancelled_before_it_started_says_so(toy, store):
    job = workbench.start(toy_taskset(toy, 2), "scripted:expert")
    events = []
    job.subscribe(events.append)
    job.cancel()
    await job
    assert job.status == "cancelled" and job.is_done()
    assert [type(e).__name__ for e in events] == ["JobFinished"]
    assert store.jobs().set_index("id").loc[job.id, "status"] == "cancelled"
    resumed = await workbench.resume(job.id)
    assert resumed.status == "finished" and len(resumed.traces_df()) == 2


async def test_a_resumed_job_counts_the_errors_stored_before(toy, store):
    job = await started_slow_job(toy, 30, 10, models=["scripted:crasher", "scripted:slow"])
    job.cancel()
    await job
    errors_before = int((job.traces_df()["stop_reason"] == "error").sum())
    assert errors_before > 0

    finished = []
    resumed = await workbench.resume(job.id, on_event=finished.append)
    assert resumed.errors == 30 and finished[-1].errors == 30  # every crasher run, not only new
    assert store.jobs().set_index("id").loc[job.id, "errors"] == 30


def test_agent_config_is_checked_with_the_task_and_null_means_not_set(toy):
    with pytest.raises(ValueError, match="max_steps must be a whole number"):
        toy.task("count", target=1).agent_config = {"max_steps": "ten"}
    task = workbench.Task(
        env="toy", scenario="count", args={"target": 2}, agent_config={"max_steps": None}
    )
    assert create_agent("scripted:expert").for_task(task).max_steps == 10


async def test_a_job_is_not_resumed_at_another_checkpoint_of_its_fork(toy, store):
    from workbench.jobs import _check_checkpoints
    from workbench.traces import Trace
    from workbench.training import registry

    def checkpoint(ckpt_id):
        registry.add_checkpoint(
            registry.Checkpoint(ckpt_id, "my-fork", None, time.time(), "sft", "/nowhere"),
            move_head=True,
        )

    registry.fork("smollm2-135m", "my-fork")
    checkpoint("c1aaaaaaaaaa")
    job = workbench.create_job(toy_taskset(toy, 2), "my-fork")
    store.add_traces(  # the job was stopped after its first run
        [
            Trace(
                job_id=job.id,
                taskset="toy",
                task="count-1",
                model="my-fork",
                checkpoint="c1aaaaaaaaaa",
            )
        ]
    )
    checkpoint("c2bbbbbbbbbb")  # then the fork was trained again: HEAD moved
    with pytest.raises(
        WorkbenchError, match="played 'my-fork' at c1aaaaaaaaaa; its HEAD is now c2"
    ):
        await workbench.resume(job.id)
    assert store.count_traces(job.id) == 1  # nothing was played
    registry.set_head("my-fork", "c1aaaaaaaaaa")
    _check_checkpoints(workbench.load_job(job.id))  # HEAD back where the job played: it may


async def test_a_running_job_is_not_resumed_a_second_time(toy, store):
    job = await started_slow_job(toy, 40, 2, at_once=2)
    with pytest.raises(WorkbenchError, match=f"job {job.id} is running in this process"):
        await workbench.resume(job.id)  # it would play the same missing runs as the job does
    job.cancel()
    await job
    resumed = await workbench.resume(job.id)  # stopped: it resumes
    assert resumed.status == "finished" and len(resumed.traces_df()) == 40


async def test_a_jobs_reward_is_the_leaderboards_mean_and_absent_before_any_run(toy):
    """HUD's ``job.reward``: errors count 0 as on the leaderboard; no runs, no number."""
    job = workbench.create_job(toy_taskset(toy), "scripted:crasher")
    assert job.reward is None
    await run_job(job)
    assert job.reward == 0.0 == job.leaderboard()["mean_reward"].iloc[0]
    done = await workbench.evaluate("arithmetic-basics", "scripted:weak")
    assert done.reward == pytest.approx(done.leaderboard()["mean_reward"].iloc[0])
