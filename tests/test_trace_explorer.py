"""The trace explorer (TraceViewer), driven the way a user drives it, without a browser.

Filters, search, sort, colour, the compare view, export; counts that are right however late
a viewer joins a running job; and a 20,000-run job that costs a page of rows, not a job's.
"""

import asyncio
import io
import json
import time
import uuid

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import ipywidgets as w  # noqa: E402
from conftest import TOY  # noqa: E402

import workbench  # noqa: E402
from widgets import Leaderboard, TraceViewer  # noqa: E402
from workbench import RunFinished, Step, Taskset  # noqa: E402


async def two_models(store, group_size=2):
    return await workbench.evaluate(
        "shop-basics", ["scripted:expert", "scripted:weak"], store=store, group_size=group_size
    )


# -- counts that are always right -------------------------------------------------------------


async def test_a_viewer_created_mid_job_ends_with_exactly_the_jobs_run_count(store):
    """A run's RunFinished event comes when its trace is handed to the trace writer, which
    stores traces in batches: a viewer created then must neither miss it nor count it twice."""
    job = workbench.start(
        "shop-basics", ["scripted:expert", "scripted:weak"], store=store, group_size=2
    )
    late: list = []

    def join_late(event):
        # Inside the event of the 10th run: its trace is not in the store yet.
        if isinstance(event, RunFinished) and job.done == 10 and not late:
            late.append(TraceViewer(job))
            late.append(Leaderboard(job))

    job.subscribe(join_late)

    async def join_between_events():  # as a notebook cell run while the job goes on
        while job.done < 30:
            await asyncio.sleep(0)
        return TraceViewer(job), Leaderboard(job)

    between = asyncio.create_task(join_between_events())
    await job
    viewers_and_boards = [*late, *await between]
    assert job.total == 44 and store.count_traces(job.id) == 44
    for viewer in viewers_and_boards[::2]:
        assert len(viewer.table.rows) == 44  # every run once: none missed, none twice
        assert viewer.counts["finished"] == 44 and viewer.counts["total"] == 44
        assert "44 of 44 runs finished" in viewer.summary.value
    for board in viewers_and_boards[1::2]:
        assert board.runs == 44
        assert board.board.equals(job.leaderboard())


# -- filters, search, sort, colour ------------------------------------------------------------


async def test_filters_keep_what_they_say_and_the_counts_say_x_of_n(store):
    job = await two_models(store)
    viewer = TraceViewer(job.id, store=store)
    runs = job.traces_df()
    assert len(viewer.rows) == 44 and "44 of 44 runs finished" in viewer.summary.value

    viewer.filter(model="scripted:weak", failures=True)
    expected = runs[(runs.model == "scripted:weak") & ~runs.success]
    assert len(viewer.rows) == len(expected) > 0
    assert {r["model"] for r in viewer.rows} == {"scripted:weak"}
    assert all(float(r["reward"]) < 1 for r in viewer.rows)
    assert f"{len(expected)} of 44 match the filters" in viewer.summary.value

    task = expected.iloc[0]["task"]
    viewer.filter(task=task)
    assert {r["task"] for r in viewer.rows} == {task}
    viewer.filter(clear=True, status="max_steps")
    assert len(viewer.rows) == (runs.stop_reason == "max_steps").sum()
    viewer.filter(clear=True)
    assert len(viewer.rows) == 44 and "match the filters" not in viewer.summary.value


async def test_search_finds_text_in_the_conversations(store):
    job = await two_models(store)
    viewer = TraceViewer(job.id, store=store)
    mentioning = {
        (t.task, t.model, t.group_index)
        for t in job.traces()
        if "coupon" in json.dumps(t.messages).lower()
    }
    assert 0 < len(mentioning) < 44
    viewer.filter(search="COUPON")  # any case
    found = {(r["task"], r["model"], r["group"]) for r in viewer.rows}
    assert found == mentioning
    viewer.filter(search="no such words anywhere")
    assert viewer.rows == [] and "0 of 44 match" in viewer.summary.value


async def test_any_column_sorts_both_ways_and_rewards_are_coloured(store):
    job = await two_models(store)
    viewer = TraceViewer(job.id, store=store)
    for column in ("reward", "steps", "task", "model", "group", "status", "time"):
        for descending in (False, True):
            viewer.sort(column, descending=descending)
            shown = [r[column] for r in viewer.rows]
            key = (lambda v: float(v.split()[0])) if column == "time" else None
            assert shown == sorted(shown, key=key, reverse=descending), column
    viewer.table.sort_by, viewer.table.descending = "reward", True  # a header click
    assert viewer.rows[0]["reward"] == "1.00" and viewer.rows[-1]["reward"] == "0.00"
    assert {r["_reward"] for r in viewer.rows} == {0.0, 1.0}  # the tint of each reward cell
    assert viewer.table.shade == ["reward"]


async def test_pages_hold_a_page_of_rows_and_the_counts_stay_whole(store):
    job = await two_models(store)
    viewer = TraceViewer(job.id, store=store, page_size=10)
    assert len(viewer.rows) == 10 and "rows 1–10 of 44" in viewer.page_label.value
    viewer.next_button.click()
    assert "rows 11–20 of 44" in viewer.page_label.value
    for _ in range(5):
        viewer.next_button.click()
    assert "rows 41–44 of 44" in viewer.page_label.value and viewer.next_button.disabled
    assert len(viewer.run_keys()) == 44


async def test_a_click_on_a_linked_leaderboard_filters_the_viewer(store):
    job = await two_models(store)
    viewer, board = TraceViewer(job.id, store=store), Leaderboard(job)
    board.link(viewer)
    task = board.heatmap.data[0].x[0]
    board.heatmap.clicked = {"x": task, "y": "scripted:weak", "at": 1}  # a heatmap cell
    assert board.selection["model"] == "scripted:weak" and board.selection["task"] == task
    assert {(r["model"], r["task"]) for r in viewer.rows} == {("scripted:weak", task)}
    assert len(viewer.rows) == 2  # its two runs (group size 2)
    board.bars.clicked = {"x": "scripted:expert", "y": 1.0, "at": 2}  # a bar: every task
    assert {r["model"] for r in viewer.rows} == {"scripted:expert"} and len(viewer.rows) == 22


# -- one run, two runs ------------------------------------------------------------------------


async def test_a_click_reads_one_trace_and_compare_shows_two_of_a_task_side_by_side(store):
    job = await two_models(store)
    viewer = TraceViewer(job.id, store=store)
    viewer.filter(model="scripted:expert")
    viewer.table.selected = viewer.rows[0]["key"]  # a click on a row
    task = viewer.rows[0]["task"]
    assert "tool call → search_products" in viewer.detail.value
    others = [value for _, value in viewer.compare_with.options if value]
    assert len(others) == 3  # the same task: the weak model's two runs, the expert's other
    assert all(key.startswith(task + "|") for key in others)
    weak = next(key for key in others if "scripted:weak" in key)
    viewer.compare_with.value = weak  # the "compare with" choice
    assert viewer.detail.value.count('<div class="wb-title">') == 2
    assert 'class="wb-side"' in viewer.detail.value and "scripted:weak" in viewer.detail.value
    viewer.table.selected = viewer.rows[1]["key"]  # another run: one trace again
    assert 'class="wb-side"' not in viewer.detail.value


async def test_a_running_run_shows_what_it_has_done_so_far(store):
    toy = workbench.resolve_environment(TOY)
    job = workbench.start(
        Taskset("toy-slow", [toy.task("count", target=3)]), "scripted:slow", store=store
    )
    viewer = TraceViewer(job)
    seen: list[str] = []

    def look(event):
        if isinstance(event, Step) and event.step == 2:
            viewer._redraw.flush()
            viewer.select(0)
            seen.append(viewer.detail.value)

    job.subscribe(look)
    await job
    live = seen[0]
    assert "running, step 2" in live and "tool call → increment" in live
    assert "&quot;target&quot;: 3" in live or '"target": 3' in live  # the task's arguments
    if getattr(Step, "__dataclass_fields__", {}).get("messages") is None:
        pytest.skip("Step events carry only the model's message: no prompt or tool results yet")
    assert "Increment the counter to 3" in live and "tool result ← wait" in live


# -- scale ------------------------------------------------------------------------------------


class Sent:
    """Every message the widgets send to the page (new widgets, updates), with its size."""

    def __init__(self, monkeypatch):
        from ipywidgets.widgets import widget as widget_module

        self.messages: list[tuple[w.Widget | None, dict]] = []
        original_send, original_open = w.Widget._send, widget_module.comm.create_comm

        def record(widget, msg, buffers=None):
            self.messages.append((widget, msg))
            return original_send(widget, msg, buffers=buffers)

        def record_open(**kwargs):
            self.messages.append((None, kwargs.get("data") or {}))
            return original_open(**kwargs)

        monkeypatch.setattr(w.Widget, "_send", record)
        monkeypatch.setattr(widget_module.comm, "create_comm", record_open)

    def clear(self):
        self.messages = []

    def rows(self, table) -> int:
        """Table rows sent: whole pages (state updates) and changed rows (patches)."""
        count = 0
        for widget, msg in self.messages:
            if widget is not table:
                continue
            if msg.get("method") == "update" and "rows" in msg.get("state", {}):
                count += len(msg["state"]["rows"])
            elif msg.get("method") == "custom":
                count += len(msg["content"].get("rows", []))
        return count

    def bytes(self) -> int:
        return sum(len(json.dumps(msg, default=str)) for _, msg in self.messages)


def fill_job(store, taskset: Taskset, models: list[str], group_size: int, leave_out: int) -> str:
    """A job of taskset x models x group stored straight into the traces table, all runs but
    the last ``leave_out``, so resuming it runs only those."""
    from workbench.store import traces_table

    job = workbench.create_job(taskset, models, store=store, group_size=group_size)
    then = time.time() - 60  # stored runs started before any live one
    rows = []
    for g in range(group_size):
        for task in taskset:
            for model in models:
                rows.append(
                    {
                        "id": uuid.uuid4().hex, "job_id": job.id, "taskset": taskset.name,
                        "task": task.slug, "model": model, "group_index": g,
                        "reward": float(len(rows) % 3 == 0), "success": len(rows) % 3 == 0,
                        "stop_reason": "done", "steps": 2, "started_at": then + len(rows) * 1e-4,
                        "ended_at": then + len(rows) * 1e-4 + 0.01, "data": '{"messages": []}',
                    }
                )  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(traces_table.insert(), rows[: len(rows) - leave_out])
    store.set_job_status(job.id, "cancelled")
    return job.id


async def test_a_20000_run_job_costs_a_page_of_rows_to_show_and_only_changes_to_update(
    store, monkeypatch
):
    toy = workbench.resolve_environment(TOY)
    taskset = Taskset(
        "toy-big", [toy.task("count", target=t % 5 + 1, note=str(t)) for t in range(1000)]
    )
    job_id = fill_job(store, taskset, ["scripted:expert", "scripted:slow"], 10, leave_out=8)
    sent = Sent(monkeypatch)

    viewer = TraceViewer(job_id, store=store)  # a stored job of 20,000 runs, 19,992 stored
    assert viewer.total == 20_000 and viewer.counts["finished"] == 19_992
    assert sent.rows(viewer.table) <= viewer.page_size == 100  # one page, not 20,000 rows
    assert sent.bytes() < 100_000

    job = workbench.start(taskset, store=store, resume=job_id)  # the 8 missing runs
    sent.clear()
    viewer.watch(job)
    assert sent.rows(viewer.table) <= 100
    viewer.sort("order", descending=True)  # newest first: the live runs are on the page
    sent.clear()
    await job
    assert viewer.counts["finished"] == 20_000 and "20000 of 20000" in viewer.summary.value
    # Each update sent the rows that changed (a run starting, stepping, finishing), not the
    # page again and again, let alone the job.
    assert 8 <= sent.rows(viewer.table) <= 8 * 12
    assert sent.bytes() < 300_000
    viewer.filter(model="scripted:slow", failures=True)
    sent.clear()
    viewer.next_button.click()  # the next page of 100
    assert sent.rows(viewer.table) == 100


# -- export -----------------------------------------------------------------------------------


async def test_export_writes_the_runs_the_filters_keep(store, tmp_path):
    job = await two_models(store, group_size=1)
    viewer = TraceViewer(job.id, store=store)
    viewer.filter(model="scripted:weak", failures=True)
    kept = viewer.counts["matching"]
    assert viewer.export(tmp_path / "f.jsonl") == kept > 0
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    traces = [workbench.Trace.model_validate_json(line) for line in lines]
    assert {t.model for t in traces} == {"scripted:weak"} and all(not t.success for t in traces)
    assert all(t.messages for t in traces)  # whole conversations
    assert viewer.export(tmp_path / "f.csv") == kept
    assert len(pd.read_csv(tmp_path / "f.csv")) == kept
    viewer.export_format.value = "parquet"
    viewer.export_button.click()  # the browser gets the file
    assert viewer.download.filename == f"traces-{job.id}-filtered.parquet"
    buffer = io.BytesIO()
    viewer.export(buffer, format="parquet")
    assert viewer.download.size == len(buffer.getvalue())
    frame = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    assert len(frame) == kept and "messages" in frame.columns
