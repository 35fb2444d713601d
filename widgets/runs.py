"""The trace explorer's model: one summary row per run of a job, filtered, sorted and paged.

No widgets here: :class:`RunIndex` is plain pandas, so a 20,000-run job costs a few
milliseconds per redraw, and the explorer only ever sends the page on screen.

```python
index = RunIndex()
index.load(store.traces_df(job_id=job.id))        # stored runs: summaries, no conversations
index.put(run_key("t", "m", 0), status="running")  # live ones, from job events
index.apply()
keys = index.view(Filters(model="scripted:weak", failures=True), sort_by="reward")
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench import Store, Trace
from workbench.formatting import reward as reward_text

COLUMNS = ["task", "model", "group", "status", "steps", "reward", "tokens", "seconds", "started"]
COLUMNS += ["success", "id"]
DEFAULTS: dict[str, Any] = {
    "status": "running",
    "steps": 0,
    "reward": np.nan,
    "tokens": np.nan,
    "seconds": np.nan,
    "success": False,
    "id": "",
}
# What a header click sorts by: the shown column, or the raw one behind it.
SORT_COLUMNS = {"time": "seconds", "order": "started"}


def run_key(task: str, model: str, group_index: int) -> str:
    """A run's key within a job (what the table and ``selected`` use)."""
    return f"{task}|{model}|{group_index}"


def trace_summary(trace: Trace) -> dict[str, Any]:
    """A finished run's summary row (the same columns as a stored one's)."""
    usage = trace.usage or {}
    tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    seconds = trace.seconds
    return {
        "task": trace.task,
        "model": trace.model,
        "group": trace.group_index,
        "status": trace.stop_reason,
        "steps": trace.steps,
        "reward": trace.reward,
        "tokens": float(tokens) if usage else np.nan,
        "seconds": np.nan if seconds is None else seconds,
        "started": trace.started_at,
        "success": trace.success,
        "id": trace.id,
    }


def summaries(df: pd.DataFrame) -> pd.DataFrame:
    """``Store.traces_df`` rows as summary rows, indexed by run key."""
    if df.empty:
        return pd.DataFrame(columns=COLUMNS, index=pd.Index([], name="key"))
    group = df["group_index"].astype(int)
    tokens = df["prompt_tokens"].astype(float).fillna(0) + df["completion_tokens"].astype(
        float
    ).fillna(0)
    no_usage = df["prompt_tokens"].isna() & df["completion_tokens"].isna()
    out = pd.DataFrame(
        {
            "task": df["task"].astype(str),
            "model": df["model"].astype(str),
            "group": group,
            "status": df["stop_reason"].astype(str),
            "steps": df["steps"].astype(int),
            "reward": df["reward"].astype(float),
            "tokens": tokens.where(~no_usage, np.nan),
            "seconds": df["ended_at"].astype(float) - df["started_at"].astype(float),
            "started": df["started_at"].astype(float),
            "success": df["success"].astype(bool) & (df["stop_reason"] != "error"),
            "id": df["id"].astype(str),
        }
    )
    out.index = pd.Index(out["task"] + "|" + out["model"] + "|" + group.astype(str), name="key")
    return out[~out.index.duplicated(keep="first")]


@dataclass(frozen=True)
class Filters:
    """What the explorer shows: every field left empty shows everything."""

    model: str | None = None
    task: str | None = None
    status: str | None = None
    failures: bool = False  # finished runs that did not succeed (errors and timeouts too)
    search: str = ""  # text in the conversation; matched by ``search_runs`` and live checks

    @property
    def active(self) -> bool:
        return bool(self.model or self.task or self.status or self.failures or self.search)


class RunIndex:
    """Summary rows of one job's runs, keyed by ``task|model|group``; one row per run."""

    def __init__(self) -> None:
        self.frame = summaries(pd.DataFrame())
        self._pending: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.frame) + sum(1 for k in self._pending if k not in self.frame.index)

    def __contains__(self, key: str) -> bool:
        return key in self._pending or key in self.frame.index

    def load(self, df: pd.DataFrame, *, only_missing: bool = False) -> int:
        """Add stored runs (``Store.traces_df`` rows); a run already here as finished keeps
        its row, so reading the store after subscribing never counts a run twice. Returns
        how many rows were added or finished."""
        self.apply()
        stored = summaries(df)
        if stored.empty:
            return 0
        known = self.frame.index.intersection(stored.index)
        finished = known[self.frame.loc[known, "status"] != "running"]
        if only_missing or len(finished):
            stored = stored.drop(index=finished)
        replace = stored.index.intersection(self.frame.index)  # running here, stored now
        if len(replace):
            self.frame = self.frame.drop(index=replace)
        self.frame = stored if self.frame.empty else pd.concat([self.frame, stored])
        return len(stored)

    def put(self, key: str, **values: Any) -> None:
        """A row's new values (applied, in one batch, by :meth:`apply`)."""
        row = self._pending.get(key)
        if row is None:
            row = self.row(key) if key in self.frame.index else {**DEFAULTS}
            self._pending[key] = row
        row.update(values)

    def row(self, key: str) -> dict[str, Any]:
        if key in self._pending:
            return dict(self._pending[key])
        return self.frame.loc[key].to_dict()

    def apply(self) -> set[str]:
        """Fold the pending rows into the frame; the keys that changed."""
        if not self._pending:
            return set()
        pending, self._pending = self._pending, {}
        new = pd.DataFrame.from_dict(pending, orient="index")[COLUMNS]
        new.index.name = "key"
        here = new.index.isin(self.frame.index)
        if here.any():
            self.frame = self.frame.drop(index=new.index[here])
        self.frame = new if self.frame.empty else pd.concat([self.frame, new])
        return set(pending)

    # -- reading ------------------------------------------------------------------------

    def view(
        self,
        filters: Filters = Filters(),  # noqa: B008 - frozen
        *,
        sort_by: str = "",
        descending: bool = False,
        matches: set[str] | None = None,
    ) -> pd.Index:
        """The keys the filters keep, sorted (``matches``: the keys the search found)."""
        self.apply()
        f = self.frame
        keep = np.ones(len(f), dtype=bool)
        if filters.model:
            keep &= (f["model"] == filters.model).to_numpy()
        if filters.task:
            keep &= (f["task"] == filters.task).to_numpy()
        if filters.status:
            keep &= (f["status"] == filters.status).to_numpy()
        if filters.failures:
            keep &= ((f["status"] != "running") & ~f["success"].astype(bool)).to_numpy()
        if filters.search:
            keep &= f.index.isin(list(matches or ()))
        kept = f[keep]
        column = SORT_COLUMNS.get(sort_by, sort_by) or "started"
        if column not in kept.columns:
            column = "started"
        order = [column, "started"] if column != "started" else ["started"]
        kept = kept.sort_values(
            order,
            ascending=[not descending] + [True] * (len(order) - 1),
            kind="mergesort",
            na_position="last",
        )
        return kept.index

    def counts(self) -> dict[str, int]:
        """Runs known, finished, running and solved."""
        self.apply()
        status = self.frame["status"]
        running = int((status == "running").sum())
        return {
            "runs": len(self.frame),
            "finished": len(self.frame) - running,
            "running": running,
            "solved": int(self.frame["success"].astype(bool).sum()),
            "errors": int((status == "error").sum()),
            "timeouts": int((status == "timeout").sum()),
        }

    def options(self, column: str) -> list[str]:
        """The distinct values of a column, sorted (the filters' choices)."""
        self.apply()
        return sorted(str(v) for v in self.frame[column].unique())

    def display(self, keys: pd.Index) -> list[dict[str, Any]]:
        """Table rows for ``keys``: text cells, plus ``_reward`` for the tint and a class."""
        self.apply()
        rows = []
        for key, r in zip(keys, self.frame.loc[keys].itertuples(index=False), strict=True):
            running = r.status == "running"
            reward = None if running or pd.isna(r.reward) else float(r.reward)
            rows.append(
                {
                    "key": str(key),
                    "task": r.task,
                    "model": r.model,
                    "group": int(r.group),
                    "status": r.status,
                    "steps": int(r.steps),
                    "reward": "" if reward is None else reward_text(reward),
                    "tokens": "" if pd.isna(r.tokens) else f"{int(r.tokens):,}",
                    "time": "" if pd.isna(r.seconds) else f"{r.seconds:.2f} s",
                    "_reward": reward,
                    "_class": f"wb-status-{r.status}",
                }
            )
        return rows


def search_runs(store: Store, job_id: str, text: str) -> set[str]:
    """Keys of the job's stored runs whose conversation contains ``text`` (any case).

    Searched in the database (the messages of each stored trace, not its tool schemas), so
    no conversation is loaded to search it.
    """
    return {run_key(task, model, index) for task, model, index in store.search_runs(job_id, text)}


def mentions(messages: list[dict[str, Any]], text: str) -> bool:
    """Whether a conversation held in memory (a live run's) contains ``text`` (any case)."""
    import json

    return text.lower() in json.dumps(messages, ensure_ascii=False, default=str).lower()
