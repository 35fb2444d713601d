"""Leaderboard statistics: intervals, pass@k, and how runs are ranked and counted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import test_store
from conftest import TOY

import workbench
from workbench.leaderboard import (
    BASE_COLUMNS,
    clustered_mean_interval,
    clustered_success_interval,
    leaderboard,
    mean_interval,
    pass_at_k,
    per_task,
    stored_leaderboard,
    wilson_interval,
)


def runs(model: str, task: str, rewards: list[float], stop_reasons: list[str] | None = None):
    """Rows for runs of one model on one task; success means reward >= 0.5."""
    stop_reasons = stop_reasons or ["done"] * len(rewards)
    return pd.DataFrame(
        {
            "model": model,
            "task": task,
            "group_index": range(len(rewards)),
            "reward": rewards,
            "stop_reason": stop_reasons,
            "success": [r >= 0.5 for r in rewards],
        }
    )


def traces(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


# --- Wilson interval -----------------------------------------------------------------------


def test_wilson_interval_matches_published_value_for_8_of_10():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3)
    assert high == pytest.approx(0.9433, abs=1e-3)


def test_wilson_interval_touches_the_bounds_only_at_all_or_nothing():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)


def test_wilson_interval_without_runs_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_narrows_with_more_runs():
    small = wilson_interval(5, 10)
    large = wilson_interval(500, 1000)
    assert large[1] - large[0] < (small[1] - small[0]) / 5


# --- pass@k --------------------------------------------------------------------------------


def test_pass_at_k_known_values():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 2, 5) == 1.0
    assert pass_at_k(5, 0, 3) == 0.0


def test_pass_at_k_cannot_be_estimated_beyond_the_sample_count():
    assert math.isnan(pass_at_k(3, 1, 4))


def test_pass_at_k_stays_exact_for_large_samples():
    # math.comb would be exact but huge; the product form must agree without overflowing.
    expected = 1 - math.comb(900, 50) / math.comb(1000, 50)
    assert pass_at_k(1000, 100, 50) == pytest.approx(expected, rel=1e-12)


# --- mean and t interval -------------------------------------------------------------------


def test_mean_interval_uses_student_t_on_small_samples():
    # mean 0.65, sample sd sqrt(0.05/3), t(0.975, df=3) = 3.1824
    half = 3.1824 * math.sqrt(0.05 / 3) / 2
    mean, low, high = mean_interval([0.5, 0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.65)
    assert low == pytest.approx(0.65 - half, abs=1e-4)
    assert high == pytest.approx(0.65 + half, abs=1e-4)


def test_mean_interval_is_clipped_to_the_reward_range():
    # mean 0.12, sample variance 0.047, t(0.975, df=4) = 2.7764: the low end would be < 0.
    mean, low, high = mean_interval([0.0, 0.0, 0.0, 0.1, 0.5])
    assert mean == pytest.approx(0.12)
    assert low == 0.0
    assert high == pytest.approx(0.12 + 2.7764 * math.sqrt(0.047 / 5), abs=1e-4)


def test_mean_interval_of_a_single_value_is_the_whole_range():
    assert mean_interval([0.3]) == (pytest.approx(0.3), 0.0, 1.0)


def test_mean_interval_approaches_the_normal_interval_for_large_samples():
    values = np.tile([0.0, 1.0], 5000)
    se = values.std(ddof=1) / math.sqrt(values.size)
    _, low, high = mean_interval(values)
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=2e-3)


# --- intervals clustered by task -----------------------------------------------------------

# t(0.975, 9 df): ten tasks give nine degrees of freedom.
T975_9 = 2.2622


def by_task(model: str, outcomes: list[float], group_size: int) -> pd.DataFrame:
    """Runs of tasks t0, t1, ...: every run of task i has reward ``outcomes[i]`` (so a task
    is all-pass or all-fail: its runs are perfectly correlated)."""
    return traces(*(runs(model, f"t{i}", [float(o)] * group_size) for i, o in enumerate(outcomes)))


SIX_OF_TEN = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]


def test_perfectly_correlated_runs_widen_the_interval_beyond_the_naive_one():
    # 10 tasks x 4 runs, each task all-pass or all-fail: 24 successes of 40 runs, but the
    # 40 runs carry no more information than the 10 tasks.
    row = leaderboard(by_task("m", SIX_OF_TEN, group_size=4)).iloc[0]
    assert row["success_rate"] == 0.6
    naive_low, naive_high = wilson_interval(24, 40)  # what the leaderboard said before
    assert row["success_low"] < naive_low and row["success_high"] > naive_high
    # As wide as 9 independent runs (T - 1), with t(9 df) in place of 1.96.
    clustered = wilson_interval(0.6 * 9, 9, z=T975_9)
    assert (row["success_low"], row["success_high"]) == pytest.approx(clustered)

    # The reward interval too. By hand: task reward sums r_i are 4 (x6) or 0 (x4), the mean
    # m = 0.6, sum (r_i - 4 m)^2 = 6 * 1.6^2 + 4 * 2.4^2 = 38.4, and the clustered variance
    # is 10/9 * 38.4 / 40^2 = 0.026667, so the half-width is t(9) * 0.16330 = 0.36942.
    naive = mean_interval([float(o) for o in SIX_OF_TEN for _ in range(4)])
    assert row["reward_low"] < naive[1] and row["reward_high"] > naive[2]
    half = T975_9 * math.sqrt(10 / 9 * 38.4 / 40**2)
    assert row["reward_low"] == pytest.approx(0.6 - half)
    assert row["reward_high"] == pytest.approx(0.6 + half)


def test_with_one_run_per_task_the_intervals_are_exactly_the_independent_ones():
    rewards = [1.0, 1.0, 0.2, 1.0, 0.0, 0.7, 1.0, 0.0, 0.4, 1.0]
    row = leaderboard(by_task("m", rewards, group_size=1)).iloc[0]
    assert (row["success_low"], row["success_high"]) == wilson_interval(6, 10)  # >= 0.5
    # (to the last bit but one: the board sums per task first)
    reward = (row["mean_reward"], row["reward_low"], row["reward_high"])
    assert reward == pytest.approx(mean_interval(rewards), rel=1e-12)


def test_the_runs_of_one_task_are_independent_draws_in_the_per_task_table():
    table = per_task(by_task("m", [1.0, 0.0], group_size=4)).set_index("task")
    # One task, one cluster: its interval is about that task's own success rate.
    assert (table.loc["t0", "success_low"], table.loc["t0", "success_high"]) == (
        wilson_interval(4, 4)
    )


def test_when_every_run_succeeds_the_interval_assumes_the_worst_correlation():
    row = leaderboard(by_task("m", [1.0] * 10, group_size=4)).iloc[0]
    # The runs agree, so they may be perfectly correlated: 10 observations, not 40.
    assert row["success_high"] == 1.0
    assert row["success_low"] == pytest.approx(wilson_interval(10, 10, z=T975_9)[0])
    assert row["success_low"] < wilson_interval(40, 40)[0]


def test_the_clustered_interval_is_never_narrower_than_the_naive_one():
    # Every task exactly 2 of 4: the sandwich variance is 0, yet runs of a task are
    # independent draws at best, so the interval is at least that of independent runs.
    frame = traces(*(runs("m", f"t{i}", [1.0, 1.0, 0.0, 0.0]) for i in range(10)))
    row = leaderboard(frame).iloc[0]
    naive_low, naive_high = wilson_interval(20, 40)
    assert row["success_low"] <= naive_low and row["success_high"] >= naive_high
    naive = mean_interval(frame["reward"])
    assert row["reward_low"] <= naive[1] and row["reward_high"] >= naive[2]


def test_the_interval_functions_give_the_leaderboards_numbers():
    frame = traces(
        runs("m", "a", [1.0, 1.0, 0.0]),
        runs("m", "b", [0.0, 0.0]),
        runs("m", "c", [1.0, 0.5, 1.0, 1.0]),
    )
    row = leaderboard(frame).iloc[0]
    rate, low, high = clustered_success_interval([2, 0, 4], [3, 2, 4])
    assert (row["success_rate"], row["success_low"], row["success_high"]) == pytest.approx(
        (rate, low, high)
    )
    mean, low, high = clustered_mean_interval([[1.0, 1.0, 0.0], [0.0, 0.0], [1.0, 0.5, 1.0, 1.0]])
    assert (row["mean_reward"], row["reward_low"], row["reward_high"]) == pytest.approx(
        (mean, low, high)
    )


# --- leaderboard ---------------------------------------------------------------------------


def test_leaderboard_ranks_an_expert_above_a_weak_model():
    board = leaderboard(
        traces(
            runs("weak", "t1", [0.0, 0.2, 1.0]),
            runs("expert", "t1", [1.0, 1.0, 1.0]),
            runs("expert", "t2", [0.9, 1.0]),
        )
    )
    assert list(board["model"]) == ["expert", "weak"]
    expert, weak = board.iloc[0], board.iloc[1]
    assert expert["success_rate"] == 1.0 and expert["success_high"] == 1.0
    # Five successes, but on two tasks: the interval rests on the tasks (clustered).
    assert expert["success_low"] == clustered_success_interval([3, 2], [3, 2])[1]
    assert expert["success_low"] < wilson_interval(5, 5)[0]
    assert weak["success_rate"] == pytest.approx(1 / 3)
    assert weak["mean_reward"] == pytest.approx(0.4)
    assert expert["tasks"] == 2 and weak["tasks"] == 1


def test_leaderboard_breaks_success_rate_ties_by_mean_reward():
    board = leaderboard(traces(runs("lucky", "t1", [0.5, 0.0]), runs("strong", "t1", [1.0, 0.2])))
    assert list(board["model"]) == ["strong", "lucky"]


def test_leaderboard_columns_come_in_documented_order():
    board = leaderboard(traces(runs("m", "t1", [1.0, 0.0])))
    assert list(board.columns) == ["model", *BASE_COLUMNS, "pass@1", "pass@2"]
    assert BASE_COLUMNS[:5] == ["runs", "successes", "failures", "errors", "timeouts"]


def test_errors_and_timeouts_are_counted_apart_from_failures():
    board = leaderboard(
        runs(
            "m",
            "t1",
            [1.0, 0.0, 0.0, 0.8],
            ["done", "max_steps", "timeout", "error"],
        )
    )
    row = board.iloc[0]
    counts = ("runs", "successes", "failures", "errors", "timeouts")
    assert tuple(row[list(counts)]) == (4, 1, 1, 1, 1)
    # The errored run's recorded reward (0.8, a "success") does not count.
    assert row["success_rate"] == pytest.approx(0.25)
    assert row["mean_reward"] == pytest.approx(0.25)


def test_a_run_graded_a_success_before_its_timeout_is_a_success():
    # Every run is exactly one of: success, failure, error, timeout.
    board = leaderboard(
        runs("m", "t1", [1.0, 0.0, 0.0, 0.0], ["timeout", "timeout", "max_steps", "done"])
    )
    row = board.iloc[0]
    assert (row["successes"], row["timeouts"], row["failures"], row["errors"]) == (1, 1, 2, 0)
    assert row["successes"] + row["failures"] + row["errors"] + row["timeouts"] == row["runs"]


def test_cancelled_runs_are_ignored():
    with_cancelled = leaderboard(
        runs("m", "t1", [1.0, 0.0, 0.0, 0.0], ["done", "done", "cancelled", "cancelled"])
    )
    without = leaderboard(runs("m", "t1", [1.0, 0.0]))
    assert with_cancelled.iloc[0]["runs"] == 2
    assert with_cancelled.iloc[0]["failures"] == 1
    assert with_cancelled.iloc[0]["timeouts"] == 0
    pd.testing.assert_frame_equal(with_cancelled, without)


def test_only_cancelled_runs_give_an_empty_board():
    board = leaderboard(runs("m", "t1", [1.0], ["cancelled"]))
    assert board.empty
    assert list(board.columns) == ["model", *BASE_COLUMNS]


def test_pass_at_k_columns_go_up_to_the_largest_task_group():
    board = leaderboard(
        traces(
            runs("a", "t1", [1.0, 0.0, 0.0]),  # n=3, c=1
            runs("a", "t2", [1.0, 1.0]),  # n=2, c=2
            runs("b", "t1", [0.0]),  # n=1, c=0
        )
    ).set_index("model")
    assert [c for c in board.columns if c.startswith("pass@")] == ["pass@1", "pass@2", "pass@3"]
    # pass@k averages over the model's tasks that have at least k runs.
    assert board.loc["a", "pass@1"] == pytest.approx((1 / 3 + 1) / 2)
    assert board.loc["a", "pass@2"] == pytest.approx((pass_at_k(3, 1, 2) + 1) / 2)
    assert board.loc["a", "pass@3"] == pytest.approx(pass_at_k(3, 1, 3))
    assert board.loc["b", "pass@1"] == 0.0
    assert np.isnan(board.loc["b", "pass@2"]) and np.isnan(board.loc["b", "pass@3"])


def test_leaderboard_can_group_by_other_columns():
    frame = traces(runs("a", "t1", [1.0, 0.0]), runs("b", "t1", [1.0, 1.0]))
    frame["taskset"] = ["x", "y", "x", "y"]
    board = leaderboard(frame, by="taskset").set_index("taskset")
    assert board.loc["x", "runs"] == 2 and board.loc["x", "successes"] == 2
    assert board.loc["y", "successes"] == 1


def test_leaderboard_of_empty_traces_has_the_base_columns_and_no_rows():
    board = leaderboard(pd.DataFrame(columns=["model", "task", "reward", "stop_reason"]))
    assert board.empty
    assert list(board.columns) == ["model", *BASE_COLUMNS]


def test_leaderboard_names_missing_columns():
    with pytest.raises(KeyError, match="stop_reason"):
        leaderboard(pd.DataFrame({"model": ["m"], "task": ["t"], "reward": [1.0]}))


# --- per task ------------------------------------------------------------------------------


def test_per_task_has_one_row_per_model_and_task_sorted():
    table = per_task(
        traces(
            runs("b", "t2", [1.0]),
            runs("a", "t2", [0.0, 1.0]),
            runs("a", "t1", [1.0, 1.0, 0.0]),
            runs("b", "t1", [0.0]),
        )
    )
    assert table.shape == (4, 2 + len(BASE_COLUMNS) + 3)
    assert list(zip(table["model"], table["task"], strict=True)) == [
        ("a", "t1"),
        ("a", "t2"),
        ("b", "t1"),
        ("b", "t2"),
    ]
    assert list(table["runs"]) == [3, 2, 1, 1]
    assert list(table["tasks"]) == [1, 1, 1, 1]
    assert table.iloc[0]["pass@3"] == 1.0
    assert np.isnan(table.iloc[1]["pass@3"])


# --- SQL and pandas agree ------------------------------------------------------------------

db = test_store.db  # the store on SQLite, and on PostgreSQL when a server answers


def test_clustered_intervals_and_timeouts_are_the_same_from_sql_and_from_the_runs(db):
    """Store.leaderboard sums runs per (model, task) in SQL; the intervals computed from
    those sums equal the ones from the runs, on SQLite and on PostgreSQL."""
    import random

    from workbench.leaderboard import per_task_from_cells
    from workbench.traces import Trace

    rng = random.Random(12)
    stored = []
    for model in ("scripted:expert", "scripted:weak", "openai:gpt-x"):
        for task in (f"t{i}" for i in range(6)):
            solid = rng.random() < 0.5  # runs of a task go mostly one way
            for g in range(rng.randint(1, 4)):
                stop = rng.choice(["done", "done", "done", "max_steps", "timeout", "error"])
                reward = 1.0 if solid and rng.random() < 0.9 else rng.choice([0.0, 0.5, 1.0])
                stored.append(
                    Trace(
                        job_id="job-c",
                        taskset="clustered",
                        task=task,
                        model=model,
                        group_index=g,
                        reward=reward,
                        stop_reason=stop,
                    )
                )
    db.add_traces(stored)
    runs_df = db.traces_df(taskset="clustered")
    board = stored_leaderboard(db, taskset="clustered")
    pd.testing.assert_frame_equal(board, leaderboard(runs_df))
    cells = db.run_cells(taskset="clustered", by=["model", "task"])
    pd.testing.assert_frame_equal(per_task_from_cells(cells), per_task(runs_df))
    totals = board[["runs", "successes", "failures", "errors", "timeouts"]].sum()
    assert totals["timeouts"] == sum(t.stop_reason == "timeout" and not t.success for t in stored)
    assert totals["failures"] == sum(
        t.stop_reason in ("done", "max_steps") and not t.success for t in stored
    )
    assert totals["runs"] == totals[["successes", "failures", "errors", "timeouts"]].sum()


async def test_runs_that_time_out_are_timeouts_not_failures(store):
    """A job whose runs outlive their time limit: every run a timeout, none a failure."""
    toy = workbench.resolve_environment(TOY)
    tasks = workbench.Taskset("toy-timeouts", [toy.task("count", target=t) for t in (1, 2, 3)])
    # scripted:slow waits 50 ms before anything else; the limit is 10 ms.
    job = await workbench.evaluate(tasks, "scripted:slow", group_size=2, timeout=0.01)
    row = job.leaderboard().iloc[0]
    counts = ("runs", "successes", "failures", "errors", "timeouts")
    assert tuple(row[list(counts)]) == (6, 0, 0, 0, 6)
    assert row["success_rate"] == 0.0


def test_the_taskset_leaderboard_never_pools_jobs_of_different_settings(workbench_home):
    """Two jobs of the weak policy at group sizes 1 and 3 are two rows, named by what
    differs; the expert's two alike jobs stay one row (issue 12)."""
    import asyncio

    from conftest import run_cli

    import workbench
    from workbench.leaderboard import leaderboard_from_cells, taskset_cells

    asyncio.run(workbench.evaluate("shop-basics", ["scripted:weak", "scripted:expert"]))
    asyncio.run(workbench.evaluate("shop-basics", "scripted:weak", group_size=3))
    asyncio.run(workbench.evaluate("shop-basics", "scripted:expert"))
    board = leaderboard_from_cells(taskset_cells(workbench.get_store(), "shop-basics"))
    rows = dict(zip(board["model"], board["runs"], strict=True))
    assert rows == {
        "scripted:weak · group 1": 11,
        "scripted:weak · group 3": 33,
        "scripted:expert": 22,
    }
    pass3 = board.set_index("model")["pass@3"]
    # pooled, pass@3 had no value (the group-1 runs have no three tries); split, it has one
    assert pass3.notna()["scripted:weak · group 3"] and pass3.isna()["scripted:weak · group 1"]
    shown = run_cli("leaderboard", "shop-basics")
    assert "scripted:weak · group 3" in shown.stdout and "scripted:weak · group 1" in shown.stdout


def test_a_mean_reward_that_never_varied_is_not_proved_exact():
    """Two runs that both scored 1.0 do not prove the mean reward is exactly 1: with 0/1
    rewards the reward interval is the success rate's, one run per task or several."""
    two = pd.concat([runs("m", "t1", [1.0]), runs("m", "t2", [1.0])])
    forty = pd.concat([runs("m", f"t{i}", [1.0] * 4) for i in range(10)])
    for frame in (two, forty):
        row = leaderboard(frame).iloc[0]
        assert row["mean_reward"] == 1.0 and row["reward_high"] == 1.0
        assert row["reward_low"] == pytest.approx(row["success_low"]) and row["reward_low"] < 0.7
    mean, low, high = mean_interval([0.5] * 10)  # a partial credit every time
    assert low < 0.5 < high


def test_models_with_equal_results_are_ranked_by_name_however_their_sums_were_added():
    # 0.1 + 0.1 + 0.4 and 0.4 + 0.1 + 0.1 differ in the last bit of a float
    b = [runs("b-model", f"t{i}", [r]) for i, r in enumerate((0.1, 0.1, 0.4))]
    a = [runs("a-model", f"t{i}", [r]) for i, r in enumerate((0.4, 0.1, 0.1))]
    assert list(leaderboard(pd.concat([*b, *a]))["model"]) == ["a-model", "b-model"]


def test_a_rate_reads_100_or_0_percent_only_when_it_is(workbench_home):
    from conftest import run_cli

    from workbench.formatting import percent, reward
    from workbench.traces import Trace

    assert percent(249 / 250) == "99.6%" and percent(1.0) == "100%" and percent(1 / 500) == "0.2%"
    assert percent(0.42) == "42%" and percent(0.004, signed=True) == "+0.4%"
    assert percent(0.0, signed=True) == "+0%" and reward(0.996) == "0.996" and reward(1.0) == "1.00"
    store = workbench.get_store()
    store.add_traces(
        Trace(taskset="big", task=f"t{i}", model="nearly", reward=float(i > 0)) for i in range(250)
    )
    shown = run_cli("leaderboard", "big").stdout
    assert "99.6% [" in shown and "100%" not in shown.split("99.6%")[1].split("]")[0].split(",")[0]
