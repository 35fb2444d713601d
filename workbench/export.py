"""Export traces and leaderboards to CSV, JSON Lines or Parquet.

```python
from workbench.export import export_traces, export_leaderboard

export_traces(job, "traces.jsonl")                  # every run of a job, conversations included
runs = job.traces_df()
export_traces(runs[runs.reward < 1], "failures.csv")  # the runs of a (filtered) traces_df
export_leaderboard(job.leaderboard(), "board.parquet")
```

The format comes from the file's suffix (``.csv``, ``.jsonl``, ``.parquet``) or from
``format=`` (needed when writing to a binary file object, e.g. ``io.BytesIO``).

- **JSON Lines** holds one whole :class:`~workbench.traces.Trace` per line
  (``Trace.model_validate_json(line)`` reads one back).
- **CSV** and **Parquet** hold one row per run: the columns of ``Store.traces_df`` and, with
  ``conversations=True`` (the default), ``args``, ``messages``, ``tools``, ``tool_calls``,
  ``info`` and ``usage`` as JSON text.

With ``conversations=False`` every format holds only the summary columns, read from the
rows given, and nothing is fetched. Parquet needs ``pyarrow`` (installed with ``datasets``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.jobs import Job
from workbench.store import SUMMARY_COLUMNS, Store, get_store, trace_row
from workbench.traces import Trace

__all__ = ["FORMATS", "export_leaderboard", "export_traces", "export_format"]

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
_DATA_COLUMNS = ("args", "messages", "tools", "tool_calls", "info", "usage")


def export_format(path: str | Path | IO[bytes], format: str | None = None) -> str:
    """The format to write: ``format`` if given, else the path's suffix."""
    if format is None:
        if not isinstance(path, str | Path):
            raise WorkbenchError("say which format to write to a file object: format='csv'")
        format = Path(path).suffix.lstrip(".").lower()
        format = {"ndjson": "jsonl", "pq": "parquet"}.get(format, format)
    if format not in FORMATS:
        raise WorkbenchError(
            f"cannot export as '{format}': use {', '.join(FORMATS)} (a .csv, .jsonl or .parquet file)"
        )
    return format


def export_traces(
    traces: Job | str | pd.DataFrame | Iterable[Trace],
    path: str | Path | IO[bytes],
    *,
    format: Format | None = None,
    conversations: bool = True,
    store: Store | None = None,
) -> int:
    """Write runs to ``path``; returns how many.

    Args:
        traces: a :class:`~workbench.jobs.Job` or job id (all its runs), a DataFrame of runs
            with an ``id`` column (``Store.traces_df``, filtered as you like; the rows keep
            their order), or :class:`~workbench.traces.Trace` objects.
        path: a file path, or a binary file object (then give ``format``).
        format: ``csv``, ``jsonl`` or ``parquet``; default: the path's suffix.
        conversations: with the conversation of each run (fetched from the store), or only
            the summary columns.
    """
    fmt = export_format(path, format)
    if isinstance(traces, pd.DataFrame) and not conversations:
        frame = traces[[c for c in SUMMARY_COLUMNS if c in traces.columns]]
        return _write(frame.reset_index(drop=True), path, fmt)
    found = _traces(traces, store)
    if fmt == "jsonl" and conversations:
        lines = "".join(t.model_dump_json() + "\n" for t in found).encode()
        _write_bytes(lines, path)
        return len(found)
    rows = [trace_row(t) for t in found]
    frame = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, "data"])
    data = frame.pop("data")
    if conversations:
        parsed = [json.loads(d) for d in data]
        for column in _DATA_COLUMNS:
            frame[column] = [json.dumps(p.get(column), ensure_ascii=False) for p in parsed]
    return _write(frame, path, fmt)


def export_leaderboard(
    board: pd.DataFrame | Job,
    path: str | Path | IO[bytes],
    *,
    format: Format | None = None,
) -> int:
    """Write a leaderboard (``workbench.leaderboard(...)``, ``job.leaderboard()``, a Job) to
    ``path``, one row per model; returns how many rows."""
    if isinstance(board, Job):
        board = board.leaderboard()
    return _write(board.reset_index(drop=True), path, export_format(path, format))


def _traces(source: Job | str | pd.DataFrame | Iterable[Trace], store: Store | None) -> list[Trace]:
    if isinstance(source, Job):
        return (store or source.store).traces(job_id=source.id)
    store = store or get_store()
    if isinstance(source, str):
        return store.traces(job_id=store.get_job(source)["id"])
    if isinstance(source, pd.DataFrame):
        if "id" not in source.columns:
            raise WorkbenchError("the runs to export need an 'id' column (Store.traces_df has one)")
        wanted = [str(i) for i in source["id"]]
        jobs = source["job_id"].dropna().unique() if "job_id" in source.columns else []
        by_id: dict[str, Trace] = {}
        for job_id in jobs:  # whole jobs read once each, rather than a query per run
            by_id.update((t.id, t) for t in store.traces(job_id=str(job_id)))
        for trace_id in wanted:
            if trace_id not in by_id:
                by_id[trace_id] = store.get_trace(trace_id)
        return [by_id[i] for i in wanted]
    return list(source)


def _write(frame: pd.DataFrame, path: str | Path | IO[bytes], fmt: str) -> int:
    if fmt == "csv":
        _write_bytes(frame.to_csv(index=False).encode(), path)
    elif fmt == "jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False) if len(frame) else ""
        _write_bytes(text.encode(), path)
    else:
        buffer = io.BytesIO()
        try:
            frame.to_parquet(buffer, index=False)
        except ImportError:
            raise WorkbenchError(
                "writing Parquet needs pyarrow: `pip install pyarrow` (or export as csv/jsonl)"
            ) from None
        _write_bytes(buffer.getvalue(), path)
    return len(frame)


def _write_bytes(data: bytes, path: str | Path | IO[Any]) -> None:
    if isinstance(path, str | Path):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(path).expanduser().write_bytes(data)
    else:
        path.write(data)
