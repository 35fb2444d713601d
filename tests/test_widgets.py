"""The notebook widgets, driven the way a user drives them: set values, click, read the view.

No browser: ipywidgets run headless, and the job events that feed them are real.
"""

import enum
import time
from typing import Literal

import pytest

pytest.importorskip("ipywidgets")

from conftest import TOY  # noqa: E402

import workbench  # noqa: E402
from environments.shop import env as shop  # noqa: E402
from widgets import (  # noqa: E402
    Dashboard,
    Leaderboard,
    RunDialog,
    ScenarioForm,
    TraceViewer,
    TrainingPanel,
)
from workbench import Environment, RunFinished, Taskset  # noqa: E402
from workbench.dashboard import voila_command  # noqa: E402
from workbench.models.scripted import answer  # noqa: E402
from workbench.training import registry  # noqa: E402

# -- ScenarioForm ----------------------------------------------------------------------------


class Size(enum.Enum):
    small = "S"
    large = "L"


kinds = Environment("kinds")


@kinds.scenario("everything")
async def everything(
    name: str,
    count: int,
    ratio: float = 0.5,
    loud: bool = False,
    color: Literal["red", "green"] = "green",
    size: Size = Size.small,
    tags: list[str] = [],  # noqa: B006
    limit: int | None = None,
):
    """A scenario with one argument of each kind.

    Args:
        name: who it is for.
        count: how many.
    """
    yield "hi"
    yield 1.0


def test_form_builds_one_field_per_argument_with_defaults_and_help():
    form = ScenarioForm(kinds.scenarios["everything"])
    f = form.fields
    assert {n: f[n].kind for n in f} == {
        "name": "text",
        "count": "text",
        "ratio": "text",
        "loud": "bool",
        "color": "choice",
        "size": "choice",
        "tags": "list",
        "limit": "text",
    }
    assert f["ratio"].value == "0.5" and f["color"].value == "green" and f["size"].value == "S"
    assert list(f["color"].input.options) == [("red", "red"), ("green", "green")]
    assert "who it is for" in f["name"].help.value
    assert "count *" in f["count"].widget.description  # required fields are marked


def test_form_adds_valid_tasks_and_converts_text_to_the_declared_types():
    form = ScenarioForm(kinds.scenarios["everything"])
    form.fields["name"].value = "ada"
    form.fields["count"].value = "3"
    form.fields["tags"].value = ["x", "y"]
    form.fields["size"].value = "L"
    task = form.add()
    assert task is not None and form.errors == {}
    assert task.args["name"] == "ada" and task.args["count"] == 3  # "3" became an int
    assert task.args["size"] == "L" and task.args["tags"] == ["x", "y"]
    assert "limit" not in task.args  # left empty: the default applies
    assert len(form.taskset) == 1 and task.slug in form.table.value


def test_a_bad_value_shows_an_inline_error_and_adds_nothing():
    form = ScenarioForm(workbench.resolve_environment(TOY).scenarios["count"])
    form.fields["target"].value = "many"
    form.add_button.click()
    assert len(form.taskset) == 0
    assert "valid integer" in form.fields["target"].error.value
    assert "many" in form.fields["target"].error.value
    assert form.fields["note"].error.value == ""
    form.fields["target"].value = ""
    form.add_button.click()
    assert "required" in form.fields["target"].error.value and len(form.taskset) == 0
    form.fields["target"].value = "2"
    form.add_button.click()
    assert form.fields["target"].error.value == "" and form.taskset.slugs == ["count-2"]
    form.add_button.click()  # the same task again: the taskset refuses the duplicate slug
    assert len(form.taskset) == 1 and "already has a task" in form.status.value


def test_save_taskset_stores_it_under_the_name_given(store):
    form = ScenarioForm(shop.scenarios["checkout"])
    assert form.save_button.disabled  # nothing to save yet
    form.fields["product_name"].value = "Gaming Mouse"
    form.fields["apply_coupon"].value = True
    form.add_button.click()
    form.name.value = "my-shop"
    form.save_button.click()
    saved = workbench.load_taskset("my-shop", store=store)
    assert saved.slugs == ["checkout-gaming-mouse-apply-coupon"]
    assert "saved taskset 'my-shop'" in form.status.value


def test_a_form_given_an_empty_taskset_adds_its_tasks_to_that_taskset():
    given = Taskset("empty")  # no tasks yet: falsy, and still the one the user chose
    form = ScenarioForm(shop.scenarios["checkout"], given)
    assert form.taskset is given and form.name.value == "empty"
    form.fields["product_name"].value = "Gaming Mouse"
    form.add_button.click()
    assert given.slugs == ["checkout-gaming-mouse"]


# -- RunDialog -------------------------------------------------------------------------------


def toy_taskset(n=4):
    toy = workbench.resolve_environment(TOY)
    return Taskset("toy-count", [toy.task("count", target=t) for t in range(1, n + 1)])


def test_dialog_is_an_overlay_that_opens_and_closes():
    dialog = RunDialog("shop-basics", models=["scripted:expert"])
    assert dialog.overlay.layout.display == "none" and "wb-overlay" in dialog.overlay._dom_classes
    dialog.open_button.click()
    assert dialog.is_open and dialog.overlay.layout.display == "flex"
    assert "shop-basics" in dialog.title.value
    dialog.close_button.click()
    assert not dialog.is_open and dialog.overlay.layout.display == "none"


def test_dialog_offers_known_models_and_fills_a_run_config():
    dialog = RunDialog("shop-basics")
    assert {"scripted:expert", "scripted:weak"} <= set(dialog.models.options)
    dialog.models.value = ("scripted:expert",)
    dialog.other_models.value = "scripted:weak, scripted:expert"
    dialog.group_size.value = 3
    dialog.timeout.value = "2.5"
    config = dialog.config()
    assert config.models == ["scripted:expert", "scripted:weak"]
    assert config.group_size == 3 and config.timeout == 2.5 and config.temperature is None
    assert config.backend == "asyncio" and dialog.address.disabled
    dialog.backend.value = "ray"
    dialog.address.value = "ray://head:10001"
    assert not dialog.address.disabled
    assert dialog.config().backend == "ray" and dialog.config().address == "ray://head:10001"


def test_dialog_offers_only_models_that_can_play_the_taskset(store):
    workbench.fork("smollm2-135m", "my-fork")
    toy = RunDialog(toy_taskset(), store=store)
    offered = set(toy.models.options)
    assert {"scripted:expert", "scripted:slow", "scripted:crasher", "my-fork"} <= offered
    assert "scripted:weak" not in offered  # a shop policy: the toy environment has none
    shop_dialog = RunDialog("shop-basics", store=store)
    assert {"scripted:expert", "scripted:weak", "my-fork"} <= set(shop_dialog.models.options)
    assert "scripted:slow" not in shop_dialog.models.options
    shop_dialog.taskset = toy_taskset()  # another taskset: the offer follows it
    assert "scripted:slow" in shop_dialog.models.options


async def test_dialog_runs_a_subset_of_tasks_and_says_how_many_runs_first(store):
    dialog = RunDialog("shop-basics", store=store)
    dialog.show()
    assert len(dialog.tasks.value) == 11  # every task, until some are picked
    dialog.models.value = ("scripted:expert", "scripted:weak")
    dialog.tasks.value = dialog.tasks.options[:3]
    dialog.group_size.value = 2
    assert "3 tasks × 2 models × group 2 = 12 runs" in dialog.size.value
    dialog.seed.value, dialog.top_p.value, dialog.max_tokens.value = "7", "0.9", "64"
    config = dialog.config()
    assert (config.seed, config.top_p, config.max_tokens) == (7, 0.9, 64)
    job = dialog.run()
    await job
    assert job.total == 12 and store.count_traces(job.id) == 12
    assert set(job.traces_df()["task"]) == set(dialog.tasks.options[:3])
    dialog.all_tasks.click()
    assert "11 tasks × 2 models × group 2 = 44 runs" in dialog.size.value


async def test_dialog_reports_every_bad_entry_at_once_and_clamps_nothing(store):
    dialog = RunDialog("shop-basics", store=store)
    dialog.show()
    dialog.other_models.value = "scripted:expert, nosuch:model"
    dialog.group_size.value = 0
    dialog.max_steps.value = -3
    dialog.temperature.value = "warm"
    dialog.top_p.value = "high"
    assert dialog.run() is None
    problems = dialog.error_line.value
    for expected in ("group size", "max steps", "temperature", "top p", "nosuch"):
        assert expected in problems, expected
    assert problems.count("<br>") == 4  # five problems, one line each
    assert dialog.group_size.value == 0  # not clamped to 1: an error, shown
    assert "group 0 = 0 runs" in dialog.size.value
    assert dialog.is_open and dialog.job is None and store.jobs().empty
    dialog.tasks.value = ()
    assert "choose at least one task" in "\n".join(dialog.problems())


async def test_dialog_run_starts_a_background_job_and_shows_its_progress(store):
    dialog = RunDialog("shop-basics", store=store)
    dialog.show()
    dialog.models.value = ("scripted:expert", "scripted:weak")
    job = dialog.run()
    assert job is not None and dialog.job is job and not dialog.is_open
    assert dialog.cancel_button.layout.display is None  # running: Cancel is offered
    await job
    assert job.status == "finished" and store.count_traces(job.id) == job.total == 22
    assert dialog.status.startswith("finished: 22/22 runs")
    assert dialog.cancel_button.layout.display == "none"
    assert dialog.progress.children  # the tqdm bar is embedded in the dialog


async def test_dialog_errors_stay_in_the_dialog_and_start_nothing(store):
    dialog = RunDialog("shop-basics", store=store)
    dialog.show()
    assert dialog.run() is None and "choose at least one model" in dialog.error_line.value
    dialog.other_models.value = "nosuch:model"
    assert dialog.run() is None and "nosuch" in dialog.error_line.value
    dialog.other_models.value = "scripted:expert"
    dialog.temperature.value = "warm"
    assert dialog.run() is None and "temperature" in dialog.error_line.value
    assert dialog.is_open and dialog.job is None and store.jobs().empty


async def test_cancel_keeps_finished_runs_and_resume_finishes_the_job(store):
    dialog = RunDialog(toy_taskset(), store=store, models=[])
    dialog.other_models.value = "scripted:slow"
    dialog.group_size.value = 5
    dialog.max_concurrent.value = 2
    job = dialog.run()
    job.subscribe(lambda e: isinstance(e, RunFinished) and job.done >= 4 and dialog.cancel())
    await job
    stored = store.count_traces(job.id)
    assert job.status == "cancelled" and 4 <= stored < job.total
    assert dialog.resume_button.layout.display is None and "Resume" in dialog.status
    resumed = dialog.resume()
    await resumed
    assert resumed.id == job.id and resumed.status == "finished"
    assert store.count_traces(job.id) == job.total  # nothing run twice, nothing missing
    assert dialog.resume_button.layout.display == "none"


# -- TraceViewer and Leaderboard -------------------------------------------------------------


async def test_trace_viewer_fills_live_and_shows_a_runs_tool_calls(store):
    job = workbench.start("shop-basics", ["scripted:expert", "scripted:weak"], store=store)
    viewer = TraceViewer(job)
    seen_running = []
    job.subscribe(lambda e: seen_running.append(viewer.counts["running"] > 0))
    await job
    assert any(seen_running)  # rows appeared as runs started, before they finished
    rows = viewer.table.rows
    assert len(rows) == 22 and all(r["status"] in ("done", "max_steps") for r in rows)
    assert {r["model"] for r in rows} == {"scripted:expert", "scripted:weak"}
    viewer.table.selected = rows[0]["key"]  # a click in the table
    assert "tool call → search_products" in viewer.detail.value
    assert "tool result ← search_products" in viewer.detail.value
    assert "reward 1.00" in viewer.detail.value and "stop: done" in viewer.detail.value
    assert "22 runs finished" in viewer.summary.value


async def test_trace_viewer_shows_errors_and_reads_a_stored_job_by_id(store):
    job = await workbench.evaluate(toy_taskset(1), "scripted:crasher", store=store)
    viewer = TraceViewer(job.id[:6], store=store)  # an id prefix, as `workbench jobs` shows
    assert [r["status"] for r in viewer.table.rows] == ["error"]
    viewer.select(0)
    assert "ConnectionError" in viewer.detail.value and "model went away" in viewer.detail.value


async def test_leaderboard_updates_live_and_ranks_models_with_intervals(store):
    job = workbench.start(
        "shop-basics", ["scripted:weak", "scripted:expert"], store=store, group_size=2
    )
    board = Leaderboard(job)
    assert board.runs == 0
    await job
    assert board.models == ["scripted:expert", "scripted:weak"] and board.runs == 44
    bar = board.bars.data[0]
    assert list(bar.x) == board.models and bar.y[0] == 1.0 and bar.y[1] < 1.0
    assert all(v >= 0 for v in bar.error_y.arrayminus) and bar.error_y.array[1] > 0
    assert "pass@2" in board.table.value and "[95% CI]" in board.table.value
    heat = board.heatmap.data[0]
    assert list(heat.y) == board.models and len(heat.x) == 11
    assert board.board.equals(job.leaderboard())  # the library's numbers, drawn


async def test_leaderboard_of_a_taskset_counts_its_stored_runs(store):
    await workbench.evaluate("shop-basics", "scripted:expert", store=store)
    await workbench.evaluate("shop-basics", "scripted:weak", store=store)
    board = Leaderboard("shop-basics", store=store)
    assert board.models == ["scripted:expert", "scripted:weak"] and board.runs == 22
    assert "shop-basics" in board.title.value


# -- TrainingPanel ---------------------------------------------------------------------------


def fake_checkpoint(name, ckpt_id, parent, loss):
    registry.add_checkpoint(
        registry.Checkpoint(
            id=ckpt_id,
            model=name,
            parent=parent,
            created_at=time.time(),
            method="sft",
            path="/nowhere",
            manifest={"data": {"traces": 5}, "metrics": {"final_loss": loss, "steps": 3}},
        ),
        move_head=True,
    )


def test_training_panel_forks_and_reports_bad_names(store):
    panel = TrainingPanel()
    panel.fork_name.value = "my-model"
    panel.fork_button.click()
    assert panel.model == "my-model" and "my-model" in panel.models.options
    assert workbench.training.get_fork("my-model").base == "smollm2-135m"
    panel.fork_button.click()  # the same name again
    assert "already exists" in panel.message.value
    panel.fork_name.value = "bad:name"
    panel.fork_button.click()
    assert "not a valid model name" in panel.message.value


def test_training_panel_refuses_a_fork_named_like_a_base_model(store):
    panel = TrainingPanel()
    for name in ("smollm2-135m", "SmolLM2-135M", "claude"):
        panel.fork_name.value = name
        panel.fork_button.click()
        assert "the name of a base model" in panel.message.value, name
    assert workbench.training.list_forks() == []


def test_training_panel_checks_hyperparameters_before_training(store):
    workbench.fork("smollm2-135m", "m")
    panel = TrainingPanel("m")
    panel.params["epochs"].value = "-1"
    assert panel.train() is None and "epochs" in panel.message.value
    assert not panel.training and panel.config  # nothing started


async def test_time_left_is_estimated_before_the_first_step(store):
    """Progress and an ETA from the moment Train is pressed: steps from the runs chosen, the
    time per step from the last training run (a first guess without one)."""
    from widgets.eta import likely_examples, plan, prior

    teacher = await workbench.evaluate(toy_taskset(6), "scripted:expert", store=store)
    config = workbench.training.TrainConfig(batch_size=4, epochs=2)
    assert likely_examples(store, None, [teacher.id], config) == 6
    assert plan(6, config) == 4  # 2 batches of 4 (then 2) per epoch, 2 epochs
    overhead, per_step, source = prior(store, config)
    assert overhead > 0 and per_step > 0 and "first guess" in source
    workbench.fork("smollm2-135m", "m")
    registry.add_checkpoint(
        registry.Checkpoint(
            id="20260101-000000-aaaaaa", model="m", parent=None, created_at=time.time(),
            method="sft", path="/nowhere",
            manifest={"hyperparameters": {"batch_size": 8},
                      "metrics": {"steps": 10, "train_seconds": 50.0, "seconds": 70.0}},
        ),
        move_head=True,
    )  # fmt: skip
    overhead, per_step, source = prior(store, config)
    assert (overhead, per_step, source) == (20.0, 2.5, "the last training run")


def test_checkpoint_tree_marks_head_and_set_head_moves_it(store):
    workbench.fork("smollm2-135m", "m")
    fake_checkpoint("m", "20260101-000000-aaaaaa", None, 0.9)
    fake_checkpoint("m", "20260101-000001-bbbbbb", "20260101-000000-aaaaaa", 0.4)
    panel = TrainingPanel("m")
    labels = [label for label, _ in panel.tree.options]
    assert len(labels) == 3 and "(base)" in labels[0]
    assert labels[2].startswith("● HEAD") and "loss 0.4" in labels[2]
    assert labels[2].index("└") > labels[1].index("└")  # the child is indented under its parent
    panel.tree.value = "base"
    panel.head_button.click()
    assert workbench.training.get_fork("m").head is None
    assert panel.tree.options[0][0].startswith("● HEAD")
    panel.tree.value = "20260101-000000-aaaaaa"
    panel.head_button.click()
    assert workbench.training.get_fork("m").head == "20260101-000000-aaaaaa"
    assert '"final_loss": 0.9' in panel.details.value


async def test_training_reports_an_empty_selection_inline(store):
    job = await workbench.evaluate(toy_taskset(2), "scripted:looper", store=store, max_steps=2)
    workbench.fork("smollm2-135m", "m")
    panel = TrainingPanel("m")
    panel.jobs.value = (job.id,)
    task = panel.train()
    assert task is not None and panel.training
    assert await task is None
    assert not panel.training
    assert "no traces qualify for training: found 2" in panel.message.value


@pytest.mark.slow
async def test_training_panel_trains_with_a_live_loss_curve(store):
    pytest.importorskip("trl")
    teacher = await workbench.evaluate(
        "arithmetic-train",
        "scripted:calculator",
        store=store,
        task_ids=workbench.load_taskset("arithmetic-train").slugs[:4],
    )
    panel = TrainingPanel()
    panel.fork_name.value = "tiny"
    panel.fork_button.click()
    panel.jobs.value = (teacher.id,)
    panel.params["batch_size"].value = "2"
    checkpoint = await panel.train()
    assert checkpoint is not None, panel.message.value
    assert list(panel.loss.data[0].x) == [1, 2] and all(y > 0 for y in panel.loss.data[0].y)
    assert workbench.training.get_fork("tiny").head == checkpoint.id
    assert panel.tree.value == checkpoint.id and "HEAD" in panel.message.value
    # "Evaluate this checkpoint": its held-out results join its entry in the tree.
    heldout = workbench.load_taskset("arithmetic-heldout").slugs[:2]
    job = panel.evaluate("arithmetic-heldout", task_ids=heldout, max_steps=2, max_tokens=24)
    assert job.config.models == [f"tiny@{checkpoint.id}"]
    await job
    label = dict((v, k) for k, v in panel.tree.options)[checkpoint.id]
    assert "arithmetic-heldout: " in label and "%" in label
    assert workbench.checkpoints("tiny")[0].evals["arithmetic-heldout"]["job"] == job.id


@pytest.mark.slow
async def test_stop_ends_training_with_nothing_half_written(store, workbench_home):
    pytest.importorskip("trl")
    teacher = await workbench.evaluate(
        "arithmetic-train",
        "scripted:calculator",
        store=store,
        task_ids=workbench.load_taskset("arithmetic-train").slugs[:8],
    )
    workbench.fork("smollm2-135m", "stopped")
    panel = TrainingPanel("stopped")
    panel.jobs.value = (teacher.id,)
    panel.params["batch_size"].value = "2"
    task = panel.train()
    # From the first second: the steps to come and the time they should take.
    assert panel.eta.startswith("step 0 of 4 · about ") and " left " in panel.eta
    assert panel.stop_button.layout.display is None and panel.progress.max == 4
    panel.stop_button.click()
    assert await task is None
    assert "training stopped: no checkpoint was written" in panel.message.value
    assert workbench.checkpoints("stopped") == [] and not panel.training
    folder = workbench_home / "models" / "stopped"
    assert not folder.exists() or list(folder.iterdir()) == []  # no partial checkpoint


# -- Dashboard -------------------------------------------------------------------------------


async def test_dashboard_lists_stored_jobs_and_follows_a_run_from_its_dialog(store):
    old = await workbench.evaluate("shop-basics", "scripted:weak", store=store)
    dash = Dashboard(store=store)
    assert dash.taskset == "shop-basics" and dash.jobs.value == old.id
    assert len(dash.traces.table.rows) == 11 and dash.leaderboard.models == ["scripted:weak"]
    dash.dialog.open_button.click()
    dash.dialog.models.value = ("scripted:expert",)
    dash.dialog.run_button.click()
    job = dash.dialog.job
    await job
    assert dash.jobs.value == job.id and len(dash.traces.table.rows) == 11
    assert dash.leaderboard.models == ["scripted:expert", "scripted:weak"]
    assert "finished" in dict((v, k) for k, v in dash.jobs.options)[job.id]


async def test_switching_to_a_taskset_without_jobs_shows_none_of_the_previous_traces(store):
    await workbench.evaluate("shop-basics", "scripted:weak", store=store)
    dash = Dashboard(store=store)
    assert len(dash.traces.rows) == 11
    dash.tasksets.value = "arithmetic-basics"  # no job has run on it
    assert dash.jobs.options == () and dash.traces.rows == []
    assert "no jobs on this taskset yet" in dash.traces.summary.value
    assert dash.traces.detail.value.count("wb-title") == 0
    assert "scripted:weak" not in dash.traces.model_filter.options
    assert dash.leaderboard.models == [] and dash.leaderboard.runs == 0


async def test_the_address_names_the_taskset_job_and_trace_and_opens_them(store):
    first = await workbench.evaluate("shop-basics", "scripted:weak", store=store)
    await workbench.evaluate("shop-basics", "scripted:expert", store=store)
    dash = Dashboard(store=store)
    dash.jobs.value = first.id
    dash.traces.select(2)
    trace_id = dash.traces.index.row(dash.traces.selected)["id"]
    assert dash.address.query == f"taskset=shop-basics&job={first.id}&trace={trace_id}"
    # A shared address opens the same view (the page says it when it opens: Voila).
    other = Dashboard(store=store)
    assert other.jobs.value != first.id
    other.address.opened(f"?taskset=shop-basics&job={first.id[:6]}&trace={trace_id[:8]}")
    assert other.jobs.value == first.id and other.traces.selected == dash.traces.selected
    assert trace_id[:12] in other.traces.detail.value or "reward" in other.traces.detail.value
    third = Dashboard(store=store, address=f"job={first.id}")  # QUERY_STRING under Voila
    assert third.taskset == "shop-basics" and third.jobs.value == first.id


async def test_a_click_on_a_bar_or_a_heatmap_cell_opens_the_matching_traces(store):
    old = await workbench.evaluate("shop-basics", "scripted:expert", store=store)
    new = await workbench.evaluate("shop-basics", "scripted:weak", store=store)
    dash = Dashboard(store=store)
    assert dash.jobs.value == new.id
    dash.leaderboard.bars.clicked = {"x": "scripted:expert", "y": 1.0, "at": 1}  # a bar
    assert dash.jobs.value == old.id  # the job that ran that model
    assert {r["model"] for r in dash.traces.rows} == {"scripted:expert"}
    assert len(dash.traces.rows) == 11 and dash.traces.selected
    task = dash.leaderboard.heatmap.data[0].x[3]
    dash.leaderboard.heatmap.clicked = {"x": task, "y": "scripted:weak", "at": 2}  # a cell
    assert dash.jobs.value == new.id
    assert [(r["model"], r["task"]) for r in dash.traces.rows] == [("scripted:weak", task)]
    assert task in dash.traces.detail.value  # its trace is open


async def test_the_compare_tab_shows_flipped_tasks_first_and_opens_a_task_side_by_side(store):
    job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"], store=store)
    dash = Dashboard(store=store)
    view = dash.comparison
    assert {"scripted:expert", "scripted:weak"} <= {v for _, v in view.a.options}
    view.a.value, view.b.value = "scripted:weak", "scripted:expert"
    view.compare_button.click()
    c = view.comparison
    assert c.flipped_up and not c.flipped_down and c.better in (True, None)
    flipped = [r["key"] for r in view.table.rows[: len(c.flipped_up)]]
    assert flipped == c.flipped_up  # the flipped tasks come first
    assert all(r["flip"].startswith("up") for r in view.table.rows[: len(flipped)])
    assert c.summary in view.verdict.value
    view.table.selected = flipped[0]  # a click on a task
    assert dash.tabs.selected_index == 0 and dash.jobs.value == job.id
    assert 'class="wb-side"' in dash.traces.detail.value  # weak and expert, side by side
    assert dash.traces.detail.value.count(flipped[0]) >= 2


async def test_a_taskset_leaderboard_never_pools_runs_of_different_settings(store):
    await workbench.evaluate("shop-basics", "scripted:weak", store=store, group_size=1)
    await workbench.evaluate("shop-basics", "scripted:weak", store=store, group_size=2)
    board = Leaderboard("shop-basics", store=store)
    assert sorted(board.models) == ["scripted:weak · group 1", "scripted:weak · group 2"]
    assert sorted(board.board["runs"]) == [11, 22]


def test_a_forks_runs_from_two_checkpoints_are_two_rows_of_the_leaderboard(store):
    workbench.fork("smollm2-135m", "m")
    job = workbench.create_job(toy_taskset(2), "m", store=store)
    store.add_traces(
        workbench.Trace(
            job_id=job.id, taskset="toy-count", task=task.slug, model="m", checkpoint=ckpt,
            group_index=0 if ckpt == "c1" else 1, reward=float(ckpt == "c2"),
        )
        for task in job.taskset
        for ckpt in ("c1", "c2")
    )  # fmt: skip
    board = Leaderboard("toy-count", store=store)
    assert board.models == ["m@c2", "m@c1"] and list(board.board["runs"]) == [2, 2]


def test_voila_command_serves_the_dashboard_on_the_given_address():
    cmd = voila_command("127.0.0.1", 9999)
    assert cmd[1:3] == ["-m", "voila"] and cmd[3].endswith("notebooks/dashboard.ipynb")
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=9999" in cmd and "--no-browser" in cmd


def test_voila_culls_the_kernels_of_closed_pages():
    cmd = voila_command("127.0.0.1", 9999, cull_idle=60, cull_every=10)
    assert "--MappingKernelManager.cull_idle_timeout=60" in cmd
    assert "--MappingKernelManager.cull_interval=10" in cmd
    assert "--MappingKernelManager.cull_connected=False" in cmd  # an open page keeps its own


# -- live counts that stay right -------------------------------------------------------------


def slow_job_from_a_dashboard(store):
    """A dashboard on a saved taskset, and a 20-run job of a slow model started from its
    run dialog, two at a time."""
    store.save_taskset(toy_taskset())
    dash = Dashboard("toy-count", store=store)
    dialog = dash.dialog
    dialog.models.value, dialog.other_models.value = (), "scripted:slow"
    dialog.group_size.value, dialog.max_concurrent.value = 5, 2
    return dash, dialog, dialog.run()


async def test_a_job_resumed_from_the_dashboard_is_counted_live_on_its_leaderboard(store):
    dash, dialog, job = slow_job_from_a_dashboard(store)
    job.subscribe(lambda e: isinstance(e, RunFinished) and job.done >= 4 and dialog.cancel())
    await job
    assert dash.leaderboard.runs == store.count_traces(job.id) < job.total
    resumed = dialog.resume()  # a new Job object with the same id
    await resumed
    assert dash.leaderboard.runs == store.count_traces(job.id) == job.total  # no refresh


async def test_refreshing_the_dashboard_mid_job_keeps_the_leaderboard_live(store):
    dash, _, job = slow_job_from_a_dashboard(store)
    pressed = []

    def press(event):
        if isinstance(event, RunFinished) and job.done >= 4 and not pressed:
            pressed.append(job.done)
            dash.refresh_button.click()

    job.subscribe(press)
    await job
    assert pressed and dash.leaderboard.runs == job.total == 20


async def test_a_run_stored_while_the_leaderboard_reads_is_counted_once(store, monkeypatch):
    """The trace writer commits from a thread: between the board's read of the sums and of
    the stored runs (dropped from both), or before the board reads with its event after
    (counted twice). Both interleavings, forced."""
    taskset = toy_taskset(2)
    job = workbench.create_job(taskset, "scripted:expert", store=store)
    job.status = "running"
    board = Leaderboard(job)

    def run(task):
        return workbench.Trace(
            job_id=job.id, taskset=taskset.name, task=task, model="scripted:expert",
            group_index=0, reward=1.0, success=True, stop_reason="done",
        )  # fmt: skip

    first, second = run(taskset.slugs[0]), run(taskset.slugs[1])
    job._emit(RunFinished(job.id, first))  # the event, then the commit (mid-read)
    read = store.finished_runs

    def committed_meanwhile(job_id):
        store.add_traces([first])
        return read(job_id)

    monkeypatch.setattr(store, "finished_runs", committed_meanwhile)
    board.watch(job)
    monkeypatch.setattr(store, "finished_runs", read)
    assert board.runs == 1
    store.add_traces([second])  # the commit, the board's read, then the event
    board.watch(job)
    job._emit(RunFinished(job.id, second))
    assert board.runs == 2


def test_a_rate_or_reward_near_one_is_never_drawn_as_one(store):
    """One failed run in 250 (reward 0.996): nowhere in the views reads 1.00 or 100%."""
    taskset = toy_taskset(1)
    job = workbench.create_job(taskset, "scripted:expert", store=store, group_size=250)
    runs = [
        workbench.Trace(
            job_id=job.id,
            taskset=taskset.name,
            task=taskset.slugs[0],
            model="scripted:expert",
            group_index=i,
            reward=0.996 if i == 249 else 1.0,
            stop_reason="done",
        )  # fmt: skip
        for i in range(250)
    ]
    store.add_traces(runs)
    store.set_job_status(job.id, "finished")
    viewer = TraceViewer(job.id, store=store)
    viewer.filter(failures=True)
    assert [r["reward"] for r in viewer.rows] == ["0.996"]
    viewer.select(0)
    assert "reward 0.996" in viewer.detail.value and "reward 1.00<" not in viewer.detail.value
    board = Leaderboard(taskset.name, store=store)
    heat, bar = board.heatmap.data[0], board.bars.data[0]
    assert [list(row) for row in heat.text] == [["99.6%"]] and "%{text}" in heat.texttemplate
    assert list(bar.text) == ["99.6%"] and "%{text}" in bar.hovertemplate
    assert ".0%}" not in heat.hovertemplate + bar.hovertemplate


optional = Environment("optional-fields")


@optional.scenario("greet")
async def greet(
    tags: list[str],
    loud: bool | None = None,
    ids: list[int] | None = None,
    greeting: str = "hi",
    on: __import__("datetime").date = __import__("datetime").date(2024, 1, 1),
):
    yield f"{greeting} {tags} {loud} {ids} {on}"
    yield 1.0


def test_a_form_sends_only_what_the_user_gave():
    form = ScenarioForm(optional.scenarios["greet"])  # a date default: a JSON field
    form.add_button.click()  # nothing filled in: the required list is missing, not []
    assert "required" in form.fields["tags"].error.value and len(form.taskset) == 0
    form.fields["tags"].value = ["x"]
    task = form.add()
    assert task.args == {
        "tags": ["x"],
        "greeting": "hi",
        "on": "2024-01-01",
    }  # no loud=False, ids=[]
    form.fields["loud"].value = False
    form.fields["greeting"].value = ""  # cleared: the empty greeting, not "hi"
    assert form.add().args == {"tags": ["x"], "loud": False, "greeting": "", "on": "2024-01-01"}


def test_the_dialog_reopened_keeps_the_tasks_picked(store):
    dialog = RunDialog("shop-basics", store=store)
    dialog.show()
    dialog.models.value = ("scripted:expert",)
    dialog.tasks.value = dialog.tasks.options[:3]
    dialog.close()
    dialog.show()
    assert len(dialog.tasks.value) == 3 and "3 tasks × 1 models" in dialog.size.value


def test_training_panel_refuses_infinite_epochs(store):
    workbench.fork("smollm2-135m", "m")
    panel = TrainingPanel("m")
    panel.params["epochs"].value = "inf"
    assert panel.train() is None and "epochs" in panel.message.value
    assert not panel.training and not panel.train_button.disabled


async def test_the_trace_viewer_opens_a_live_run_whose_info_is_not_json(store):
    dated = Environment("dated")

    @dated.scenario("on-day")
    async def on_day():
        yield "what day is it?"
        yield {"reward": 1.0, "info": {"checked_at": __import__("datetime").datetime(2024, 1, 2)}}

    @dated.policy("expert")
    def expert(ctx):
        return answer("a Tuesday")

    job = workbench.start(Taskset("dated", [dated("on-day")]), "scripted:expert", store=store,
                          runtime="inprocess")  # fmt: skip
    viewer = TraceViewer(job)
    await job
    viewer.select(0)
    assert "2024-01-02" in viewer.detail.value and "reward 1.00" in viewer.detail.value


async def test_a_leaderboard_named_by_a_job_id_shows_that_job(store):
    job = await workbench.evaluate("shop-basics", "scripted:expert", store=store)
    board = Leaderboard(job.id[:6], store=store)
    assert board.runs == 11 and job.id in board.title.value
    with pytest.raises(workbench.WorkbenchError, match="no taskset or job named 'shop-basicz'"):
        Leaderboard("shop-basicz", store=store)


def test_the_trace_viewer_marks_an_answer_cut_off_by_max_tokens(store):
    taskset = toy_taskset(1)
    job = workbench.create_job(taskset, "scripted:expert", store=store)
    turns = [{"role": "user", "content": "count"}, {"role": "assistant", "content": "1, 2,"}]
    store.add_traces([
        workbench.Trace(job_id=job.id, taskset=taskset.name, task=taskset.slugs[0],
                        model="scripted:expert", messages=turns, finish_reasons=["length"])
    ])  # fmt: skip
    store.set_job_status(job.id, "finished")
    viewer = TraceViewer(job.id, store=store)
    viewer.select(0)
    assert viewer.detail.value.count("cut off by max_tokens") == 1
