"""Leaderboards over evaluation traces: success rates, mean rewards and pass@k with intervals.

```python
from workbench.leaderboard import leaderboard
leaderboard(job.traces_df())     # one row per model, 95% intervals clustered by task
```

The input is a DataFrame with one row per run and at least the columns ``model``, ``task``,
``reward``, ``stop_reason`` and ``success``. Runs stopped as ``"cancelled"`` are left out
entirely. Every other run is exactly one of: a success, a failure, an error or a timeout.
An errored run (``"error"``) is unsuccessful with reward 0. A timed-out run (``"timeout"``)
keeps the reward it was graded (0 when it was not graded); when it had already reached a
success before the clock ran out it counts as a success, otherwise as a timeout. Neither
errors nor timeouts are ever counted as failures; both count in the success rate's
denominator (a run that did not succeed).

How the intervals are computed (95%, clustered by task)
-------------------------------------------------------
Runs of one task are not independent: a model that solves a task usually solves it again.
So the runs of a task are one cluster, and an interval rests on the number of tasks, not
only on the number of runs. For a group (a model) with T tasks, task i having n_i runs,
s_i successes and reward sum r_i, N = sum n_i:

- **One run per task** (every n_i = 1), or a single task (T = 1, as in the per-task
  table): the runs are independent and the intervals are exact as before: the Wilson
  score interval for the success rate, and the Student-t interval (N - 1 df) for the mean
  reward.
- **Several runs per task**: the estimate is the ratio p = sum s_i / N (the same success
  rate), and its variance is the cluster-robust (sandwich) variance of a ratio estimator,
  as Inspect AI's clustered standard error computes it:
  ``V = T / (T - 1) * sum (s_i - p n_i)^2 / N^2``.
  The success interval is the Wilson interval at the *effective sample size*
  ``n_eff = p (1 - p) / V`` with the Student-t quantile for T - 1 degrees of freedom in
  place of 1.96 (the effective-sample-size adjustment survey statistics makes for a
  proportion, as Korn and Graubard's does): it stays inside [0, 1] and keeps Wilson's
  behaviour near 0 and 1. ``n_eff`` is at most N: runs of a task are independent draws
  given the task, so clustering can only add variance, and an estimate of less (a design
  effect below 1) is noise that would make the interval too narrow. The clustered
  interval is therefore never narrower than the one for independent runs. When every run
  succeeded, or none did, the data cannot tell how correlated the runs are, and the
  interval takes the worst case, ``n_eff = T`` (one observation per task).
  The mean reward ``m = sum r_i / N`` gets the same sandwich variance with r_i in place of
  s_i, never below the variance of independent runs, and a t interval (T - 1 df) clipped
  to [0, 1]. When every reward is the same (all 1.0, say) there is no spread to estimate:
  as for success, the worst case, the Wilson interval at ``p = m`` with one observation
  per task (with independent runs, one per run), so that 0/1 rewards get exactly the
  success rate's interval and two runs never prove a mean of exactly 1.

So with runs of a task perfectly correlated (each task all-pass or all-fail), an interval
from T tasks x k runs is about as wide as one from T runs, not T x k; with one run per task
the intervals are exactly those of independent runs. Paired comparisons of two models on
the same tasks are in :mod:`workbench.compare`.

Everything is computed with vectorised group sums from per-(model, task) cells (runs,
successes, reward sum and sum of squares), which SQL computes too
(:meth:`workbench.store.Store.run_cells`), so a million runs take well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from workbench.store import cell_keys

__all__ = [
    "wilson_interval",
    "mean_interval",
    "clustered_success_interval",
    "clustered_mean_interval",
    "paired_interval",
    "pass_at_k",
    "leaderboard",
    "per_task",
    "run_cells",
    "leaderboard_from_cells",
    "per_task_from_cells",
    "merge_cells",
]

REQUIRED_COLUMNS = ("model", "task", "reward", "stop_reason", "success")

BASE_COLUMNS = [
    "runs",
    "successes",
    "failures",
    "errors",
    "timeouts",
    "success_rate",
    "success_low",
    "success_high",
    "mean_reward",
    "reward_low",
    "reward_high",
    "tasks",
]

# Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30.
# fmt: off
_T975_SMALL = np.array(
    [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ]
)
# fmt: on
# Beyond df = 30, the quantile of the largest tabulated df not above the actual one: it
# errs on the wide side, and is within 0.2% of the exact value from df = 1000 on (then 1.96).
_T975_LARGE_DF = np.array([40, 50, 60, 80, 100, 120, 200, 500])
_T975_LARGE = np.array([2.0211, 2.0086, 2.0003, 1.9901, 1.9840, 1.9799, 1.9719, 1.9647])
_T975_NORMAL_FROM_DF = 1000


def _t975(df: np.ndarray) -> np.ndarray:
    """95% two-sided Student-t quantile for each degrees of freedom (df >= 1)."""
    df = np.asarray(df, dtype=np.int64)
    small = _T975_SMALL[np.clip(df, 1, 30) - 1]
    large_index = np.searchsorted(_T975_LARGE_DF, df, side="right") - 1
    large = _T975_LARGE[np.clip(large_index, 0, len(_T975_LARGE) - 1)]
    out = np.where(df <= 30, small, np.where(df < _T975_LARGE_DF[0], _T975_SMALL[-1], large))
    return np.where(df >= _T975_NORMAL_FROM_DF, 1.96, out)


def _wilson(
    successes: np.ndarray, n: np.ndarray, z: float | np.ndarray = 1.96
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval (``n`` and ``z`` may be fractional, per group);
    groups with n == 0 get (0, 1)."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / n
        z2 = z * z
        denom = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # At p = 0 or p = 1 the bound is exact in theory; pin it so rounding cannot move it.
    low = np.where(s <= 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(s >= n, 1.0, np.clip(center + half, 0.0, 1.0))
    empty = n <= 0
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def _t_interval(
    n: np.ndarray, total: np.ndarray, total_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised mean and 95% t interval from counts, sums and sums of squares."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        # Values live in [0, 1], so the sum-of-squares form loses nothing that matters here.
        var = np.maximum(total_sq - n * mean * mean, 0.0) / (n - 1.0)
        half = _t975(np.maximum(n - 1, 1)) * np.sqrt(var / n)
    few = n < 2
    low = np.where(few, 0.0, np.clip(mean - half, 0.0, 1.0))
    high = np.where(few, 1.0, np.clip(mean + half, 0.0, 1.0))
    # Every value equal: no spread was seen, which is no proof there is none.
    flat_low, flat_high = _no_spread(mean, n, 1.96)
    flat = ~few & _flat(var, mean)
    return mean, np.where(flat, flat_low, low), np.where(flat, flat_high, high)


def _flat(var: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Groups whose values were all equal (up to the rounding of their sums)."""
    with np.errstate(invalid="ignore"):
        return var <= 1e-12 * np.maximum(mean * mean, 1e-12)


def _no_spread(
    mean: np.ndarray, n: np.ndarray, z: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of a mean of values in [0, 1] that all came out equal: the worst case,
    the values' spread as large as a variable in [0, 1] with that mean can have (a 0/1
    variable: the Wilson interval at ``p = mean``). For 0/1 rewards it is exactly the
    success rate's interval."""
    return _wilson(np.clip(mean, 0.0, 1.0) * n, n, z)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a success proportion (95% by default).

    ``n == 0`` carries no information and gives ``(0.0, 1.0)``.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    low, high = _wilson(np.array([successes]), np.array([n]), z)
    return float(low[0]), float(high[0])


def mean_interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean of rewards in [0, 1] and its 95% Student-t interval, clipped into [0, 1].

    With fewer than two values there is no spread to estimate, so the interval is the
    whole reward range ``(0.0, 1.0)``; the mean of no values is NaN. When every value is
    the same the sample shows no spread, which does not prove there is none: the interval
    is then the worst case for values in [0, 1] with that mean (for 0/1 rewards, the
    Wilson interval of the success rate), never a point.
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr.ravel()
    mean, low, high = _t_interval(
        np.array([arr.size]), np.array([arr.sum()]), np.array([np.square(arr).sum()])
    )
    return float(mean[0]), float(low[0]), float(high[0])


def _clustered_success(
    n: np.ndarray, s: np.ndarray, tasks: np.ndarray, dev_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Success intervals clustered by task, per group (see the module docstring).

    ``n``, ``s``: runs and successes; ``tasks``: clusters (>= 2); ``dev_sq``: the sum over
    tasks of (s_i - p n_i)^2. The Wilson interval at the effective sample size, with t(T-1).
    """
    n = np.asarray(n, dtype=np.float64)
    tasks = np.asarray(tasks, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(s, dtype=np.float64) / n
        var = tasks / (tasks - 1.0) * dev_sq / (n * n)
        spread = p * (1.0 - p)
        # var == 0 < spread (every task at the same rate): spread / var is inf, capped at n.
        # spread == 0 (all or nothing): the correlation is unknown; take the worst case.
        n_eff = np.where(spread > 0, np.minimum(n, spread / var), tasks)
    z = _t975(np.maximum(tasks - 1, 1))
    return _wilson(p * n_eff, n_eff, z)


def _clustered_mean(
    n: np.ndarray, total: np.ndarray, total_sq: np.ndarray, tasks: np.ndarray, dev_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean reward and its t interval clustered by task, per group (see the module docstring).

    ``dev_sq``: the sum over tasks of (r_i - m n_i)^2, r_i a task's reward sum. The variance
    is the sandwich one, never below that of independent runs; t with T - 1 df.
    """
    n = np.asarray(n, dtype=np.float64)
    tasks = np.asarray(tasks, dtype=np.float64)
    z = _t975(np.maximum(tasks - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        spread = np.maximum(total_sq - n * mean * mean, 0.0) / (n - 1.0)
        naive = spread / n
        clustered = tasks / (tasks - 1.0) * dev_sq / (n * n)
        half = z * np.sqrt(np.maximum(clustered, naive))
    # Every reward equal: the worst case, one observation per task (as for success).
    flat_low, flat_high = _no_spread(mean, tasks, z)
    flat = _flat(spread, mean)
    low = np.where(flat, flat_low, np.clip(mean - half, 0.0, 1.0))
    return mean, low, np.where(flat, flat_high, np.clip(mean + half, 0.0, 1.0))


def clustered_success_interval(
    successes: Iterable[int], runs: Iterable[int]
) -> tuple[float, float, float]:
    """Success rate over tasks (``successes[i]`` of ``runs[i]`` on task i) with its 95%
    interval, clustered by task: ``(rate, low, high)``.

    One run per task, or a single task: the Wilson interval, as :func:`wilson_interval`.
    Several runs per task: the Wilson interval at the effective sample size given by the
    cluster-robust variance (the module docstring says how).

    >>> clustered_success_interval([4, 4, 0, 0], [4, 4, 4, 4])  # each task all or nothing
    (0.5, 0.06..., 0.93...)
    """
    s = np.asarray(list(successes), dtype=np.float64)
    n = np.asarray(list(runs), dtype=np.float64)
    if s.shape != n.shape or (s < 0).any() or (s > n).any():
        raise ValueError("need one successes <= runs pair per task")
    total_n, total_s = n.sum(), s.sum()
    if len(n) < 2 or n.max(initial=0) <= 1:
        low, high = _wilson(np.array([total_s]), np.array([total_n]))
    else:
        dev_sq = np.square(s - total_s / total_n * n).sum()
        low, high = _clustered_success(
            np.array([total_n]), np.array([total_s]), np.array([len(n)]), np.array([dev_sq])
        )
    rate = total_s / total_n if total_n else math.nan
    return float(rate), float(low[0]), float(high[0])


def clustered_mean_interval(rewards: Iterable[Iterable[float]]) -> tuple[float, float, float]:
    """Mean reward with its 95% t interval clustered by task: ``rewards[i]`` are the rewards
    of task i's runs. One run per task, or a single task: :func:`mean_interval`."""
    groups = [np.asarray(list(r), dtype=np.float64) for r in rewards]
    groups = [g for g in groups if g.size]
    values = np.concatenate(groups) if groups else np.zeros(0)
    if len(groups) < 2 or max(g.size for g in groups) <= 1:
        return mean_interval(values)
    n = np.array([g.size for g in groups], dtype=np.float64)
    sums = np.array([g.sum() for g in groups])
    dev_sq = np.square(sums - values.mean() * n).sum()
    mean, low, high = _clustered_mean(
        np.array([n.sum()]),
        np.array([sums.sum()]),
        np.array([np.square(values).sum()]),
        np.array([len(groups)]),
        np.array([dev_sq]),
    )
    return float(mean[0]), float(low[0]), float(high[0])


def paired_interval(differences: Iterable[float], step: float = 1.0) -> tuple[float, float, float]:
    """Mean of paired per-task differences (each in [-1, 1]) with its 95% Student-t
    interval (n - 1 df), clipped to [-1, 1]: ``(mean, low, high)``.

    No differences: ``(nan, -1, 1)``; one: no spread to estimate, ``(d, -1, 1)``. When every
    task moved by the same amount the sample spread is 0 and a t interval would have no
    width (two tasks that both flipped would count as proof). The spread is then taken as
    that of the differences plus one task that moved the other way by as much (n df): the
    least disagreement the data could have shown. With one run per task, it takes five
    tasks that all flipped the same way for the interval to exclude 0 (the sign test
    needs six). When no task moved at all, that task moves by ``step``, the smallest
    change a task's rate can show (1 with one run per task per side; 1/k with k runs), so
    "no difference on 10 tasks" is an interval around 0, not the point 0.
    """
    d = np.asarray(list(differences), dtype=np.float64)
    if d.size == 0:
        return math.nan, -1.0, 1.0
    mean = float(d.mean())
    if d.size == 1:
        return mean, -1.0, 1.0
    df = d.size - 1
    if np.ptp(d) == 0.0:  # not std() == 0: the mean of equal floats can be off by an ulp
        d, df = np.append(d, -d[0] if d[0] != 0.0 else abs(step)), d.size
    half = float(_t975(np.array([df]))[0]) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, max(mean - half, -1.0), min(mean + half, 1.0)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimate from ``n`` samples with ``c`` correct (Chen et al. 2021).

    Computes ``1 - C(n-c, k) / C(n, k)`` as a product of terms in [0, 1], which neither
    overflows nor cancels. ``k > n`` cannot be estimated and gives NaN.
    """
    if n < 0 or c < 0 or c > n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k > n:
        return math.nan
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _pass_at_k_array(n: np.ndarray, c: np.ndarray, max_k: int) -> list[np.ndarray]:
    """pass@1..pass@max_k for many (n, c) cells at once; NaN where k > n.

    Uses C(n-c, k) / C(n, k) = prod_{j<k} (n-c-j) / (n-j), extended one factor per k. Once
    k exceeds n - c a factor is exactly 0, so the ratio stays 0 and pass@k is exactly 1.
    """
    n = np.asarray(n, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    ratio = np.ones_like(n)
    out = []
    for k in range(1, max_k + 1):
        j = k - 1
        factor = np.divide(n - c - j, n - j, out=np.zeros_like(n), where=(n - j) > 0)
        ratio = ratio * np.maximum(factor, 0.0)
        out.append(np.where(n >= k, 1.0 - ratio, np.nan))
    return out


def _group_codes(frame: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group id per row (in order of first appearance) and the key values per id."""
    codes = np.zeros(len(frame), dtype=np.int64)
    for key in keys:
        # use_na_sentinel=False keeps runs with a missing key as their own group.
        key_codes, key_uniques = pd.factorize(frame[key], use_na_sentinel=False)
        combined = codes * np.int64(len(key_uniques)) + key_codes
        codes, _ = pd.factorize(combined)
    first = _first_positions(codes)
    labels = frame[keys].iloc[first].reset_index(drop=True)
    return codes, labels


def _first_positions(codes: np.ndarray) -> np.ndarray:
    """Row position of each code's first appearance, given codes numbered by first appearance."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    running_max = np.maximum.accumulate(codes)
    is_first = np.empty(codes.size, dtype=bool)
    is_first[0] = True
    is_first[1:] = running_max[1:] > running_max[:-1]
    return np.flatnonzero(is_first)


def _empty_board(by_cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=by_cols + BASE_COLUMNS)


# Per (group, task) cell: what every statistic of the leaderboard is computed from.
CELL_COLUMNS = ["runs", "successes", "errors", "timeouts", "reward_sum", "reward_sq"]


def run_cells(traces: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """Runs summed per (``by``, task) cell: runs, successes, errors, timeouts, reward sum
    and sum of squares.

    Cancelled runs are left out; an errored run counts as an error, unsuccessful, reward 0;
    a timed-out run that did not succeed counts as a timeout (see the module docstring).
    :meth:`workbench.store.Store.run_cells` computes the same table in SQL.
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    keys = cell_keys(by_cols)
    if len(traces) == 0:
        return pd.DataFrame(columns=keys + CELL_COLUMNS)
    missing = [col for col in (*REQUIRED_COLUMNS, *by_cols) if col not in traces.columns]
    if missing:
        raise KeyError(f"traces lack column(s) {missing}")
    kept = (traces["stop_reason"] != "cancelled").to_numpy()
    runs = traces.loc[kept] if not kept.all() else traces
    error = (runs["stop_reason"] == "error").to_numpy(dtype=bool)
    success = runs["success"].fillna(False).to_numpy(dtype=bool) & ~error
    timeout = (runs["stop_reason"] == "timeout").to_numpy(dtype=bool) & ~success
    reward = np.where(error, 0.0, runs["reward"].to_numpy(dtype=np.float64))
    code, cells = _group_codes(runs, keys)
    for name, weights in (
        ("runs", None),
        ("successes", success),
        ("errors", error),
        ("timeouts", timeout),
        ("reward_sum", reward),
        ("reward_sq", reward * reward),
    ):
        cells[name] = np.bincount(code, weights=weights, minlength=len(cells))
    return cells


def merge_cells(cells: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Cell tables concatenated (stored runs, then live ones) with each cell summed once."""
    keys = keys or [c for c in cells.columns if c not in CELL_COLUMNS]
    code, labels = _group_codes(cells, keys)
    if len(labels) == len(cells):
        return cells
    weights = {c: cells[c].to_numpy(np.float64) for c in CELL_COLUMNS}
    return labels.assign(**{c: np.bincount(code, w, len(labels)) for c, w in weights.items()})


def leaderboard(traces: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """Rank groups of runs (by default, models) by success rate, then mean reward.

    One row per group with columns: the ``by`` columns, ``runs``, ``successes``,
    ``failures``, ``errors``, ``timeouts`` (these four add up to ``runs``),
    ``success_rate`` with its 95% interval (``success_low``, ``success_high``),
    ``mean_reward`` with its 95% interval (``reward_low``, ``reward_high``), ``tasks``
    (distinct tasks), then ``pass@1`` ... ``pass@K`` where K is the most runs any one
    (group, task) cell has. The intervals are clustered by task when a task has several
    runs, and exact (Wilson; t) with one run per task: the module docstring says how. A
    group's pass@k is the mean over its tasks with at least k runs of the unbiased pass@k
    estimate (NaN when no task has k runs). Cancelled runs are ignored; errored runs count
    as errors, not failures, and as unsuccessful with reward 0; timed-out runs that did not
    succeed count as timeouts, not failures.
    """
    return leaderboard_from_cells(run_cells(traces, by), by)


def stored_leaderboard(
    store,
    job_id: str | None = None,
    taskset: str | None = None,
    models: Iterable[str] | None = None,
    by: str | list[str] = "model",
) -> pd.DataFrame:
    """:func:`leaderboard` over a store's runs, summed in SQL (:meth:`Store.run_cells`)."""
    return leaderboard_from_cells(store.run_cells(job_id, taskset, models, by), by)


def leaderboard_from_cells(cells: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """:func:`leaderboard` from :func:`run_cells` tables (several are summed, e.g. stored
    runs plus live ones), so a million stored runs never have to leave the database."""
    by_cols = [by] if isinstance(by, str) else list(by)
    keys = cell_keys(by_cols)
    if len(cells) == 0:
        return _empty_board(by_cols)
    cells = merge_cells(cells, keys)
    cell_n = cells["runs"].to_numpy(np.float64)
    cell_c = cells["successes"].to_numpy(np.float64)
    cell_labels = cells[keys]

    group_code, board = _group_codes(cell_labels, by_cols)
    n_groups = len(board)

    def per_group(values: np.ndarray) -> np.ndarray:
        return np.bincount(group_code, weights=values, minlength=n_groups)

    def counts(column: str) -> np.ndarray:
        return per_group(cells[column].to_numpy(np.float64)).round().astype(np.int64)

    n = per_group(cell_n).round().astype(np.int64)
    successes = per_group(cell_c).round().astype(np.int64)
    errors, timeouts = counts("errors"), counts("timeouts")
    tasks = np.bincount(group_code, minlength=n_groups).astype(np.int64)
    cell_r = cells["reward_sum"].to_numpy(np.float64)
    reward_sum, reward_sq = per_group(cell_r), per_group(cells["reward_sq"].to_numpy(np.float64))
    board["runs"] = n
    board["successes"] = successes
    board["failures"] = n - successes - errors - timeouts
    board["errors"] = errors
    board["timeouts"] = timeouts
    board["success_rate"] = successes / n

    # Exact intervals where runs are independent; clustered by task where a task has several.
    low, high = _wilson(successes, n)
    mean, r_low, r_high = _t_interval(n, reward_sum, reward_sq)
    largest_cell = np.zeros(n_groups)
    np.maximum.at(largest_cell, group_code, cell_n)
    clustered = (tasks >= 2) & (largest_cell >= 2)
    if clustered.any():
        rate = (successes / n)[group_code]
        dev_s = per_group(np.square(cell_c - rate * cell_n))
        c_low, c_high = _clustered_success(n, successes, tasks, dev_s)
        low, high = np.where(clustered, c_low, low), np.where(clustered, c_high, high)
        dev_r = per_group(np.square(cell_r - (reward_sum / n)[group_code] * cell_n))
        _, c_low, c_high = _clustered_mean(n, reward_sum, reward_sq, tasks, dev_r)
        r_low, r_high = np.where(clustered, c_low, r_low), np.where(clustered, c_high, r_high)
    board["success_low"], board["success_high"] = low, high
    board["mean_reward"], board["reward_low"], board["reward_high"] = mean, r_low, r_high
    board["tasks"] = tasks

    passes = {}
    max_k = int(cell_n.max()) if len(cell_n) else 0
    for k, cell_pass in enumerate(_pass_at_k_array(cell_n, cell_c, max_k), start=1):
        has_k = ~np.isnan(cell_pass)
        counted = per_group(has_k.astype(np.float64))
        total = per_group(np.where(has_k, cell_pass, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            passes[f"pass@{k}"] = np.where(counted > 0, total / counted, np.nan)
    board = pd.concat([board, pd.DataFrame(passes, index=board.index)], axis=1)

    # Ties broken by name: rates are compared rounded, as equal rewards summed in another
    # order can differ in the last bit (0.19999999999999998 against 0.20000000000000004).
    keys = board.assign(
        _rate=board["success_rate"].round(12), _reward=board["mean_reward"].round(12)
    )
    order = keys.sort_values(
        ["_rate", "_reward", *by_cols],
        ascending=[False, False, *([True] * len(by_cols))],
        kind="mergesort",
        na_position="last",
    ).index
    return board.loc[order].reset_index(drop=True)


def per_task(traces: pd.DataFrame) -> pd.DataFrame:
    """Leaderboard statistics per (model, task), sorted by model then task."""
    return per_task_from_cells(run_cells(traces, ["model", "task"]))


def per_task_from_cells(cells: pd.DataFrame) -> pd.DataFrame:
    board = leaderboard_from_cells(cells, by=["model", "task"])
    return board.sort_values(["model", "task"], kind="mergesort").reset_index(drop=True)


# -- a taskset's leaderboard, never pooled silently ----------------------------------------

# The settings that make two jobs' runs different experiments (RunConfig fields), as shown.
SETTINGS = {
    "group_size": "group {}",
    "max_steps": "{} steps",
    "timeout": "timeout {} s",
    "temperature": "temperature {}",
    "top_p": "top-p {}",
    "max_tokens": "{} max tokens",
    "seed": "seed {}",
}


def job_cells(store, job_id: str) -> pd.DataFrame:
    """A job's stored runs summed per (model, task). A model whose runs come from several
    checkpoints (a fork whose HEAD moved while the job was stopped) gets a row per
    checkpoint, ``my-fork@ckpt``, as on the taskset's board: never pooled silently."""
    cells = store.run_cells(job_id=job_id, by=["model", "checkpoint", "task"])
    if cells.empty:
        return cells.drop(columns=["checkpoint"])
    checkpoint = cells["checkpoint"].astype(object).where(cells["checkpoint"].notna(), None)
    several = checkpoint.groupby(cells["model"]).nunique(dropna=False)
    split = set(several[several > 1].index)
    cells["model"] = [
        str(model) if model not in split else f"{model}@{ckpt}" if ckpt else f"{model} (base)"
        for model, ckpt in zip(cells["model"], checkpoint, strict=True)
    ]
    return merge_cells(cells.drop(columns=["checkpoint"]), ["model", "task"])


def job_settings(store, job_ids: Iterable[str | None]) -> dict[str | None, dict]:
    """The settings (:data:`SETTINGS`) of each job; ``{}`` for runs made outside a job (or
    of a job no longer stored)."""
    from workbench.errors import NotFoundError

    settings: dict[str | None, dict] = {}
    for job_id in job_ids:
        try:
            config = store.get_job(job_id)["config"] if job_id else {}
        except NotFoundError:
            config = {}
        settings[job_id] = {k: config.get(k) for k in SETTINGS} if config else {}
    return settings


def settings_label(config: dict, keys: Iterable[str]) -> str:
    """``group 4 · 10 steps``: the values of these settings, as rows are labelled."""
    return " · ".join(SETTINGS[k].format(config.get(k)) for k in keys)


def varying_settings(settings: dict[str | None, dict]) -> list[str]:
    """The settings whose values differ between these jobs."""
    return [k for k in SETTINGS if len({str(s.get(k)) for s in settings.values()}) > 1]


def taskset_cells(store, taskset: str) -> pd.DataFrame:
    """A taskset's stored runs summed per (row, task), where a row is a model, split by job
    settings when its jobs' settings differ (``scripted:weak · group 4``) and by checkpoint
    when a fork's runs come from several (``my-fork@ckpt``): the rows of a leaderboard that
    never pools different experiments silently. The ``model`` column holds the row's name.
    """
    jobs = store.jobs()
    jobs = jobs[jobs["taskset"] == taskset]
    cells = store.run_cells(taskset=taskset, by=["model", "checkpoint", "job_id", "task"])
    if cells.empty:
        return cells
    settings = job_settings(store, jobs["id"])
    for column in ("checkpoint", "job_id"):  # None, not NaN: NaN != NaN as a key
        cells[column] = cells[column].astype(object).where(cells[column].notna(), None)
    labels = {}
    for model, rows in cells.groupby("model", sort=False):
        varying = varying_settings({j: settings.get(j, {}) for j in rows["job_id"].unique()})
        several = rows["checkpoint"].nunique(dropna=False) > 1
        for key in rows[["checkpoint", "job_id"]].drop_duplicates().itertuples(index=False):
            label = str(model)
            if several:
                label += f"@{key.checkpoint}" if isinstance(key.checkpoint, str) else " (base)"
            config = settings.get(key.job_id, {})
            label += f" · {settings_label(config, varying)}" if varying else ""
            labels[(model, key.checkpoint, key.job_id)] = label
    cells["model"] = [
        labels[k] for k in zip(cells["model"], cells["checkpoint"], cells["job_id"], strict=True)
    ]
    return merge_cells(cells.drop(columns=["checkpoint", "job_id"]), ["model", "task"])
