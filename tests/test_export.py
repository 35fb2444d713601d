"""Export of traces and leaderboards (workbench.export): CSV, JSON Lines, Parquet."""

import io

import pandas as pd
import pytest

import workbench
from workbench import Trace, WorkbenchError
from workbench.export import export_leaderboard, export_traces


@pytest.fixture
async def job(store):
    return await workbench.evaluate(
        "shop-basics", ["scripted:expert", "scripted:weak"], store=store, group_size=1
    )


async def test_jsonl_holds_whole_traces_that_read_back(job, tmp_path):
    path = tmp_path / "out" / "traces.jsonl"  # the folder is made
    assert export_traces(job, path) == 22
    traces = [Trace.model_validate_json(line) for line in path.read_text().splitlines()]
    stored = {t.id: t for t in job.traces()}
    assert {t.id for t in traces} == set(stored)
    assert all(t == stored[t.id] for t in traces)  # nothing lost on the way


async def test_csv_and_parquet_hold_one_row_per_run_with_the_conversation(job, tmp_path):
    assert export_traces(job.id, tmp_path / "t.csv") == 22  # a job id works too
    csv = pd.read_csv(tmp_path / "t.csv")
    assert len(csv) == 22 and {"task", "model", "reward", "stop_reason", "messages"} <= set(csv)
    first = csv.iloc[0]
    assert "search_products" in first["tool_calls"] or "search_products" in first["messages"]
    assert export_traces(job, tmp_path / "t.parquet") == 22
    parquet = pd.read_parquet(tmp_path / "t.parquet")
    assert list(parquet.columns) == list(csv.columns) and len(parquet) == 22


async def test_a_filtered_traces_df_exports_those_runs_in_its_order(job, tmp_path):
    runs = job.traces_df()
    failures = runs[~runs.success].sort_values("task", ascending=False)
    assert 0 < export_traces(failures, tmp_path / "f.csv") == len(failures)
    assert list(pd.read_csv(tmp_path / "f.csv")["id"]) == list(failures["id"])
    buffer = io.BytesIO()
    export_traces(failures, buffer, format="jsonl", conversations=False)
    summary = pd.read_json(io.BytesIO(buffer.getvalue()), lines=True)
    assert len(summary) == len(failures) and "messages" not in summary.columns


async def test_a_leaderboard_exports_in_every_format(job, tmp_path):
    board = job.leaderboard()
    for suffix in ("csv", "jsonl", "parquet"):
        path = tmp_path / f"board.{suffix}"
        assert export_leaderboard(board, path) == 2
    read = {
        "csv": pd.read_csv(tmp_path / "board.csv"),
        "jsonl": pd.read_json(tmp_path / "board.jsonl", lines=True),
        "parquet": pd.read_parquet(tmp_path / "board.parquet"),
    }
    for frame in read.values():
        assert list(frame["model"]) == list(board["model"])
        assert frame["success_rate"].tolist() == pytest.approx(board["success_rate"].tolist())
    assert export_leaderboard(job, tmp_path / "job-board.csv") == 2  # a Job's own board


def test_an_unknown_format_is_a_one_line_error(tmp_path):
    with pytest.raises(WorkbenchError, match="cannot export as 'xlsx'"):
        export_traces([], tmp_path / "t.xlsx")
    with pytest.raises(WorkbenchError, match="say which format"):
        export_leaderboard(pd.DataFrame(), io.BytesIO())
