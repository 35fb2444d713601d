"""Paired comparisons: b against a on the same tasks, with the tasks that flipped each way."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import test_store
from conftest import TOY

import workbench
from workbench.compare import compare, compare_cells, compare_command
from workbench.errors import WorkbenchError
from workbench.leaderboard import run_cells
from workbench.tasks import Taskset
from workbench.traces import Trace


def store_runs(store, model: str, outcomes: dict[str, list[int]], *, taskset: str, **fields):
    """Runs of ``model``: ``outcomes[task]`` lists each run's result (1 success, 0 failure)."""
    store.add_traces(
        Trace(
            job_id=fields.get("job_id", f"job-{model}"),
            taskset=taskset,
            task=task,
            model=model,
            group_index=g,
            reward=float(result),
            **{k: v for k, v in fields.items() if k != "job_id"},
        )
        for task, results in outcomes.items()
        for g, result in enumerate(results)
    )


# --- the hand-computed examples ------------------------------------------------------------

# Six tasks, one run per side. Per-task differences b - a: 0, 1, 1, -1, 1, 0.
#   mean            = 2/6 = 0.33333
#   sample variance = ((1/3)^2 + 3 (2/3)^2 + (4/3)^2 + (1/3)^2) / 5 = (10/3) / 5 = 2/3
#   standard error  = sqrt((2/3) / 6) = 1/3
#   t(0.975, 5 df)  = 2.5706, half-width = 0.85687
#   interval        = [0.3333 - 0.8569, 0.3333 + 0.8569] = [-0.52353, 1.19020] -> high 1
SIX_A = {"t1": [1], "t2": [0], "t3": [0], "t4": [1], "t5": [0], "t6": [1]}
SIX_B = {"t1": [1], "t2": [1], "t3": [1], "t4": [0], "t5": [1], "t6": [1]}


db = test_store.db  # the store on SQLite, and on PostgreSQL when a server answers


def test_the_paired_difference_matches_the_hand_computed_one(db):
    store_runs(db, "model-a", SIX_A, taskset="six")
    store_runs(db, "model-b", SIX_B, taskset="six")
    c = compare("model-a", "model-b", taskset="six")
    assert c.n_tasks == 6
    assert c.diff == pytest.approx(1 / 3)
    assert c.low == pytest.approx(1 / 3 - 2.5706 / 3, abs=1e-4)  # -0.52353
    assert c.high == 1.0  # 1.19020, clipped
    assert (c.a_rate, c.b_rate) == (pytest.approx(3 / 6), pytest.approx(5 / 6))
    assert c.better is None and c.verdict == "no significant difference"


def test_tasks_that_flipped_are_listed_and_come_first_in_the_table(store):
    store_runs(store, "model-a", SIX_A, taskset="six")
    store_runs(store, "model-b", SIX_B, taskset="six")
    c = compare("model-a", "model-b", taskset="six")
    assert c.flipped_up == ["t2", "t3", "t5"]  # a failed, b succeeded
    assert c.flipped_down == ["t4"]
    table = c.per_task
    assert list(table.columns[:4]) == ["task", "a_rate", "b_rate", "diff"]
    assert list(table["task"]) == ["t2", "t3", "t5", "t4", "t1", "t6"]
    assert list(table["flip"]) == ["up", "up", "up", "down", "", ""]
    text = str(c)
    assert "flipped up (3, failed -> succeeded): t2, t3, t5" in text
    assert "flipped down (1, succeeded -> failed): t4" in text


# Six tasks, two runs per side: per-task success rates, paired.
#   a: 1, 0, 1/2, 0, 1/2, 1      b: 1, 1, 1, 1/2, 0, 1
#   b - a: 0, 1, 1/2, 1/2, -1/2, 0; mean 1.5 / 6 = 0.25
#   sample variance = (0.0625 + 0.5625 + 0.0625 + 0.0625 + 0.5625 + 0.0625) / 5 = 0.275
#   standard error  = sqrt(0.275 / 6) = 0.214087; half-width = 2.5706 * 0.214087 = 0.550342
#   interval        = [-0.300342, 0.800342]
# Flipped: only t2 (its majority went from failure to success). t3 (1/2 -> 1), t4 (0 -> 1/2)
# and t5 (1/2 -> 0) each have a side with no majority, so they did not flip.
TWO_A = {"t1": [1, 1], "t2": [0, 0], "t3": [1, 0], "t4": [0, 0], "t5": [0, 1], "t6": [1, 1]}
TWO_B = {"t1": [1, 1], "t2": [1, 1], "t3": [1, 1], "t4": [1, 0], "t5": [0, 0], "t6": [1, 1]}


def test_with_several_runs_each_side_contributes_its_success_rate_per_task(store):
    store_runs(store, "model-a", TWO_A, taskset="pairs")
    store_runs(store, "model-b", TWO_B, taskset="pairs")
    c = compare("model-a", "model-b", taskset="pairs")
    assert c.diff == pytest.approx(0.25)
    assert c.low == pytest.approx(0.25 - 2.5706 * math.sqrt(0.275 / 6), abs=1e-4)
    assert c.high == pytest.approx(0.25 + 2.5706 * math.sqrt(0.275 / 6), abs=1e-4)
    assert c.better is None
    assert c.flipped_up == ["t2"] and c.flipped_down == []
    t5 = c.per_task.set_index("task").loc["t5"]
    assert (t5["a_rate"], t5["b_rate"], t5["diff"], t5["flip"]) == (0.5, 0.0, -0.5, "")
    assert (t5["a_runs"], t5["b_runs"]) == (2, 2)


# Eight tasks, one run per side; b - a: 1 on six tasks, 0 on two.
#   mean 0.75; sample variance (6 * 0.25^2 + 2 * 0.75^2) / 7 = 1.5 / 7 = 0.2142857
#   standard error sqrt(0.2142857 / 8) = 0.163663; t(0.975, 7 df) = 2.3646
#   interval [0.75 - 0.38700, 0.75 + 0.38700] = [0.36300, 1.13700] -> high 1: excludes 0
EIGHT_A = {f"t{i}": [0] for i in range(6)} | {"t6": [1], "t7": [0]}
EIGHT_B = {f"t{i}": [1] for i in range(6)} | {"t6": [1], "t7": [0]}


def test_better_and_worse_only_when_the_paired_interval_excludes_zero(store):
    store_runs(store, "model-a", EIGHT_A, taskset="eight")
    store_runs(store, "model-b", EIGHT_B, taskset="eight")
    up = compare("model-a", "model-b", taskset="eight")
    assert up.diff == 0.75
    assert up.low == pytest.approx(0.75 - 2.3646 * math.sqrt(1.5 / 7 / 8), abs=1e-4)
    assert up.better is True and up.verdict == "b is better"
    down = compare("model-b", "model-a", taskset="eight")
    assert down.diff == -0.75 and down.high == pytest.approx(-up.low)
    assert down.better is False and down.verdict == "b is worse"
    assert down.flipped_down == up.flipped_up == [f"t{i}" for i in range(6)]


def test_a_few_tasks_that_all_flipped_are_not_yet_proof(store):
    # Two of two tasks flipped up: every difference is 1, so the sample spread is 0 and a
    # t interval would have no width. The interval stays wide instead.
    store_runs(store, "model-a", {"t1": [0], "t2": [0]}, taskset="two")
    store_runs(store, "model-b", {"t1": [1], "t2": [1]}, taskset="two")
    c = compare("model-a", "model-b", taskset="two")
    assert c.diff == 1.0 and c.low < 0 and c.better is None


# --- what is counted, what is left out ------------------------------------------------------


def test_errors_and_timeouts_are_runs_that_did_not_succeed(store):
    store_runs(store, "model-a", {"t1": [1], "t2": [1], "t3": [1]}, taskset="faults")
    store_runs(store, "model-b", {"t1": [1]}, taskset="faults")
    store_runs(store, "model-b", {"t2": [1]}, taskset="faults", stop_reason="error")
    store_runs(store, "model-b", {"t3": [0]}, taskset="faults", stop_reason="timeout")
    c = compare("model-a", "model-b", taskset="faults")
    assert c.flipped_down == ["t2", "t3"]
    assert c.b_rate == pytest.approx(1 / 3)


def test_tasks_only_one_side_ran_are_counted_and_left_out(store):
    store_runs(store, "model-a", SIX_A | {"only-a": [1]}, taskset="six")
    store_runs(store, "model-b", SIX_B | {"only-b1": [0], "only-b2": [1]}, taskset="six")
    c = compare("model-a", "model-b", taskset="six")
    assert (c.n_tasks, c.only_a, c.only_b) == (6, 1, 2)
    assert c.diff == pytest.approx(1 / 3)
    assert "left out: 1 tasks only a ran, 2 only b ran" in str(c)


def test_the_store_and_the_runs_in_pandas_give_the_same_comparison(store):
    store_runs(store, "model-a", TWO_A, taskset="pairs")
    store_runs(store, "model-b", TWO_B, taskset="pairs")
    from_sql = compare("model-a", "model-b", taskset="pairs")
    runs = store.traces_df(taskset="pairs")
    from_pandas = compare_cells(
        run_cells(runs[runs["model"] == "model-a"]),
        run_cells(runs[runs["model"] == "model-b"]),
        a="model-a",
        b="model-b",
    )
    pd.testing.assert_frame_equal(from_sql.per_task, from_pandas.per_task)
    assert (from_sql.diff, from_sql.low, from_sql.high) == pytest.approx(
        (from_pandas.diff, from_pandas.low, from_pandas.high)
    )


# --- jobs, forks and checkpoints -----------------------------------------------------------


def toy_taskset(n: int = 7) -> Taskset:
    toy = workbench.resolve_environment(TOY)
    return Taskset("toy-compare", [toy.task("count", target=t) for t in range(1, n + 1)])


async def test_two_jobs_compare_by_job_by_id_and_by_id_prefix(store):
    # clumsy wastes three steps: with 5 steps it solves only target 1; expert solves all.
    a = await workbench.evaluate(toy_taskset(), "scripted:clumsy", max_steps=5)
    b = await workbench.evaluate(toy_taskset(), "scripted:expert", max_steps=10)
    c = compare(a, b)
    assert c.n_tasks == 7 and c.diff == pytest.approx(6 / 7)
    assert c.better is True
    assert c.flipped_up == [f"count-{t}" for t in range(2, 8)] and c.flipped_down == []
    assert c.a == f"scripted:clumsy (job {a.id})"
    by_id = compare(a.id[:6], b.id)
    assert (by_id.diff, by_id.low, by_id.high) == (c.diff, c.low, c.high)
    # A model id is compared on the other side's taskset.
    by_model = compare("scripted:clumsy", b)
    assert by_model.a == "scripted:clumsy" and by_model.diff == c.diff

    text = compare_command(a.id, b.id, None)
    assert f"a: scripted:clumsy (job {a.id}), success 14%" in text
    assert "+86% [+51%, +100%]" in text and "b is better" in text
    assert "count-2" in text and "up" in text


async def test_a_job_of_several_models_must_be_split_by_model(store):
    job = await workbench.evaluate(toy_taskset(2), ["scripted:expert", "scripted:looper"])
    with pytest.raises(WorkbenchError, match="ran 2 models"):
        compare(job, job)
    c = compare("scripted:looper", "scripted:expert", taskset="toy-compare")
    assert c.flipped_up == ["count-1", "count-2"]


def test_errors_a_user_can_cause_say_what_to_do(store):
    store_runs(store, "model-a", SIX_A, taskset="six")
    store_runs(store, "model-c", {"elsewhere": [1]}, taskset="six")
    with pytest.raises(WorkbenchError, match="which taskset"):
        compare("model-a", "model-b")
    with pytest.raises(WorkbenchError, match="no runs of 'model-b' on taskset 'six'"):
        compare("model-a", "model-b", taskset="six")
    with pytest.raises(WorkbenchError, match="no task in common"):
        compare("model-a", "model-c", taskset="six")


def test_runs_of_two_checkpoints_of_a_fork_are_never_pooled(store):
    store_runs(store, "my-fork", SIX_A, taskset="six", checkpoint="c1aaaaaa", job_id="j1")
    store_runs(store, "my-fork", SIX_B, taskset="six", checkpoint="c2bbbbbb", job_id="j2")
    with pytest.raises(WorkbenchError, match="several checkpoints.*my-fork@CHECKPOINT"):
        compare("my-fork", "my-fork@c2", taskset="six")
    c = compare("my-fork@c1", "my-fork@c2", taskset="six")
    assert c.diff == pytest.approx(1 / 3) and c.flipped_up == ["t2", "t3", "t5"]


def test_no_task_changed_is_an_interval_around_zero_not_the_point_zero(store):
    same = {f"t{i}": [i % 2] for i in range(10)}
    store_runs(store, "model-a", same, taskset="same")
    store_runs(store, "model-b", same, taskset="same")
    c = compare("model-a", "model-b", taskset="same")
    assert c.diff == 0 and c.low < -0.1 and c.high > 0.1 and c.better is None
    assert "b - a: +0% [-20%, +20%]" in c.summary


async def test_a_model_is_never_compared_pooled_over_jobs_of_different_settings(toy, store):
    ts = Taskset("toy", [toy.task("count", target=t) for t in (1, 2, 3)])
    await workbench.evaluate(ts, "scripted:expert")
    short = await workbench.evaluate(ts, "scripted:expert", group_size=3, max_steps=2)
    looper = await workbench.evaluate(ts, "scripted:looper")
    with pytest.raises(WorkbenchError, match="different settings .group 1 · 10 steps; group 3"):
        compare("scripted:looper", "scripted:expert", taskset="toy")
    by_job = compare(looper, short)  # one experiment each: a comparison
    assert by_job.n_tasks == 3


def test_a_jobs_runs_of_two_checkpoints_are_two_rows(store):
    from workbench.leaderboard import job_cells, leaderboard_from_cells

    # the job stopped after the first run of each task; HEAD moved; it resumed
    store_runs(store, "my-fork", SIX_A, taskset="six", checkpoint="c1aaaaaa", job_id="j1")
    second = {task: [None, *results] for task, results in SIX_B.items()}  # group index 1
    store.add_traces(
        Trace(
            job_id="j1",
            taskset="six",
            task=t,
            model="my-fork",
            group_index=1,
            reward=float(r[1]),
            checkpoint="c2bbbbbb",
        )
        for t, r in second.items()
    )
    board = leaderboard_from_cells(job_cells(store, "j1")).set_index("model")
    assert board["success_rate"].to_dict() == {
        "my-fork@c2bbbbbb": pytest.approx(5 / 6),
        "my-fork@c1aaaaaa": pytest.approx(3 / 6),
    }
