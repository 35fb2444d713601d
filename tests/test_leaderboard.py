"""Leaderboard statistics: intervals, pass@k, and how runs are ranked and counted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.leaderboard import (
    BASE_COLUMNS,
    leaderboard,
    mean_interval,
    pass_at_k,
    per_task,
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
    assert expert["success_low"] > weak["success_low"]
    assert weak["success_rate"] == pytest.approx(1 / 3)
    assert weak["mean_reward"] == pytest.approx(0.4)
    assert expert["tasks"] == 2 and weak["tasks"] == 1


def test_leaderboard_breaks_success_rate_ties_by_mean_reward():
    board = leaderboard(traces(runs("lucky", "t1", [0.5, 0.0]), runs("strong", "t1", [1.0, 0.2])))
    assert list(board["model"]) == ["strong", "lucky"]


def test_leaderboard_columns_come_in_documented_order():
    board = leaderboard(traces(runs("m", "t1", [1.0, 0.0])))
    assert list(board.columns) == ["model", *BASE_COLUMNS, "pass@1", "pass@2"]
    assert BASE_COLUMNS[:4] == ["runs", "successes", "failures", "errors"]


def test_errors_are_counted_apart_from_failures_and_score_zero():
    board = leaderboard(
        runs(
            "m",
            "t1",
            [1.0, 0.0, 0.0, 0.8],
            ["done", "max_steps", "timeout", "error"],
        )
    )
    row = board.iloc[0]
    assert (row["runs"], row["successes"], row["failures"], row["errors"]) == (4, 1, 2, 1)
    # The errored run's recorded reward (0.8, a "success") does not count.
    assert row["success_rate"] == pytest.approx(0.25)
    assert row["mean_reward"] == pytest.approx(0.25)


def test_cancelled_runs_are_ignored():
    with_cancelled = leaderboard(
        runs("m", "t1", [1.0, 0.0, 0.0, 0.0], ["done", "done", "cancelled", "cancelled"])
    )
    without = leaderboard(runs("m", "t1", [1.0, 0.0]))
    assert with_cancelled.iloc[0]["runs"] == 2
    assert with_cancelled.iloc[0]["failures"] == 1
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
