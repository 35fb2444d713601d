"""Leaderboards over evaluation traces: success rates, mean rewards and pass@k with intervals.

The input is a DataFrame with one row per run and at least the columns ``model``, ``task``,
``group_index``, ``reward``, ``stop_reason`` and ``success``. Runs stopped as ``"cancelled"``
are left out entirely. Runs stopped as ``"error"`` count as runs and as errors (never as
failures), and score as unsuccessful with reward 0.

Everything is computed with vectorised group sums, so a million runs take well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "wilson_interval",
    "mean_interval",
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


def _wilson(successes: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval; groups with n == 0 get (0, 1)."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
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
    return mean, low, high


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
    whole reward range ``(0.0, 1.0)``; the mean of no values is NaN.
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr.ravel()
    mean, low, high = _t_interval(
        np.array([arr.size]), np.array([arr.sum()]), np.array([np.square(arr).sum()])
    )
    return float(mean[0]), float(low[0]), float(high[0])


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
CELL_COLUMNS = ["runs", "successes", "errors", "reward_sum", "reward_sq"]


def _cell_keys(by_cols: list[str]) -> list[str]:
    return by_cols if "task" in by_cols else [*by_cols, "task"]


def run_cells(traces: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """Runs summed per (``by``, task) cell: runs, successes, errors, reward sum and squares.

    Cancelled runs are left out; an errored run counts as an error, unsuccessful, reward 0.
    :meth:`workbench.store.Store.run_cells` computes the same table in SQL.
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    keys = _cell_keys(by_cols)
    if len(traces) == 0:
        return pd.DataFrame(columns=keys + CELL_COLUMNS)
    missing = [col for col in (*REQUIRED_COLUMNS, *by_cols) if col not in traces.columns]
    if missing:
        raise KeyError(f"traces lack column(s) {missing}")
    kept = (traces["stop_reason"] != "cancelled").to_numpy()
    runs = traces.loc[kept] if not kept.all() else traces
    error = (runs["stop_reason"] == "error").to_numpy(dtype=bool)
    success = runs["success"].fillna(False).to_numpy(dtype=bool) & ~error
    reward = np.where(error, 0.0, runs["reward"].to_numpy(dtype=np.float64))
    code, cells = _group_codes(runs, keys)
    for name, weights in (
        ("runs", None),
        ("successes", success),
        ("errors", error),
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
    ``failures``, ``errors``, ``success_rate`` with its 95% Wilson interval
    (``success_low``, ``success_high``), ``mean_reward`` with its 95% t interval
    (``reward_low``, ``reward_high``), ``tasks`` (distinct tasks), then ``pass@1`` ...
    ``pass@K`` where K is the most runs any one (group, task) cell has. A group's pass@k is
    the mean over its tasks with at least k runs of the unbiased pass@k estimate (NaN when
    no task has k runs). Cancelled runs are ignored; errored runs count as errors, not
    failures, and as unsuccessful with reward 0.
    """
    return leaderboard_from_cells(run_cells(traces, by), by)


def leaderboard_from_cells(cells: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """:func:`leaderboard` from :func:`run_cells` tables (several are summed, e.g. stored
    runs plus live ones), so a million stored runs never have to leave the database."""
    by_cols = [by] if isinstance(by, str) else list(by)
    keys = _cell_keys(by_cols)
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

    n = per_group(cell_n).round().astype(np.int64)
    successes = per_group(cell_c).round().astype(np.int64)
    errors = per_group(cells["errors"].to_numpy(np.float64)).round().astype(np.int64)
    board["runs"] = n
    board["successes"] = successes
    board["failures"] = n - successes - errors
    board["errors"] = errors
    board["success_rate"] = successes / n
    board["success_low"], board["success_high"] = _wilson(successes, n)
    mean, low, high = _t_interval(
        n,
        per_group(cells["reward_sum"].to_numpy(np.float64)),
        per_group(cells["reward_sq"].to_numpy(np.float64)),
    )
    board["mean_reward"], board["reward_low"], board["reward_high"] = mean, low, high
    board["tasks"] = np.bincount(group_code, minlength=n_groups).astype(np.int64)

    passes = {}
    max_k = int(cell_n.max()) if len(cell_n) else 0
    for k, cell_pass in enumerate(_pass_at_k_array(cell_n, cell_c, max_k), start=1):
        has_k = ~np.isnan(cell_pass)
        counted = per_group(has_k.astype(np.float64))
        total = per_group(np.where(has_k, cell_pass, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            passes[f"pass@{k}"] = np.where(counted > 0, total / counted, np.nan)
    board = pd.concat([board, pd.DataFrame(passes, index=board.index)], axis=1)

    order = board.sort_values(
        ["success_rate", "mean_reward", *by_cols],
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
