"""The README's main job: the whole Loop on the CPU, with the bundled model; and rounds of
self-improvement, their commits, interruptions and resumes, on a tiny model."""

from pathlib import Path

import pytest

import workbench

# -- the teacher demo, with the bundled model (slow) -----------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_the_loop_lifts_held_out_success_with_non_overlapping_intervals(store):
    said = []
    result = await workbench.run_loop(say=said.append)
    assert [s[:3] for s in said] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    board = result.leaderboard.set_index("model")
    assert result.base == f"{result.fork}@base"  # served as the checkpoint is: 8-bit weights
    base, trained = board.loc[result.base], board.loc[result.fork]
    assert base["runs"] == trained["runs"] == 60
    assert trained["success_low"] > base["success_high"], result.leaderboard.to_string()
    assert result.separated and result.better  # paired by task, the interval excludes 0
    # the checkpoint remembers its data and its held-out result
    ckpt = workbench.checkpoints(result.fork)[0]
    assert ckpt.manifest["data"]["jobs"] == [result.teacher.id]
    assert ckpt.evals["arithmetic-heldout"]["success_rate"] == trained["success_rate"]


# -- self-improvement rounds, on a tiny random model (seconds, not minutes) -----------------


@pytest.fixture
def tiny_loop(tmp_path):
    """A tiny base model and an environment it wins half the time, as loop options."""
    from tiny import ENV, save_tiny_model

    tasks = workbench.Taskset(
        "evens", [workbench.resolve_environment(ENV).task("guess", n=n) for n in range(12)]
    )
    train = tasks.save_jsonl(tmp_path / "evens-train.jsonl")
    heldout = workbench.Taskset("evens-heldout", tasks.tasks[:3])
    return {
        "base": str(save_tiny_model(tmp_path / "tiny-base")),
        "train_taskset": str(train),
        "heldout_taskset": str(heldout.save_jsonl(tmp_path / "evens-heldout.jsonl")),
        "tasks_per_round": 4,
        "group_size": 4,
        "heldout_group_size": 2,
        "max_tokens": 3,
        "name": "tiny",
        # a learning rate that barely moves it: the test is about the rounds, not learning
        # (a tiny model that learns to answer with an empty string wins nothing to learn from)
        "train": {"lr": 1e-6},
    }


def chain(name):
    return [(c.id, c.parent) for c in workbench.checkpoints(name)]


@pytest.mark.parametrize("method", ["grpo", "rft"])
async def test_rounds_train_a_chain_of_checkpoints_each_with_its_held_out_result(tiny_loop, method):
    said = []
    result = await workbench.run_loop(
        teacher=None, rounds=2, method=method, say=said.append, **tiny_loop
    )
    first, second = workbench.checkpoints("tiny")
    assert chain("tiny") == [(first.id, None), (second.id, first.id)]
    assert workbench.training.get_fork("tiny").head == second.id == result.checkpoint.id
    assert first.method == second.method == method
    if method == "grpo":  # the fork's own runs: the KL from the parent has an estimate
        kls = [c.manifest["metrics"]["final_kl"] for c in (first, second)]
        assert all(c.manifest["data"]["on_policy"] for c in (first, second)), kls
        assert all(kl is not None and kl >= 0 for kl in kls), kls
    for r, ckpt in ((1, first), (2, second)):
        held_out = ckpt.evals[tiny_loop["heldout_taskset"]]
        assert held_out["round"] == r and held_out["runs"] == 6
    assert result.curve["round"].tolist() == [0, 1, 2]
    assert result.curve["checkpoint"].tolist() == ["base", first.id, second.id]
    assert result.curve["runs"].tolist() == [6, 6, 6]
    # a curve on another taskset has no round 0 measured on the held-out one
    assert workbench.learning_curve("tiny", tiny_loop["train_taskset"]).empty
    assert result.comparison.n_tasks == 3 and result.teacher is None
    assert [s[:3] for s in said if s[1] == "/"] == ["0/2", "0/2"] + ["1/2"] * 4 + ["2/2"] * 4
    # sampled at the group size, on consecutive slices of the training tasks
    sample_jobs = [r["sample_job"] for r in workbench.loop._load("tiny")["rounds"]]
    slices = [sorted({t.task for t in workbench.load_job(j).traces()}) for j in sample_jobs]
    assert len(slices[0]) == len(slices[1]) == 4 and not set(slices[0]) & set(slices[1])
    assert len(workbench.load_job(sample_jobs[0]).traces()) == 16

    # the dashboard's tab draws the same curve for the fork, one point per round
    from widgets import Dashboard

    view = Dashboard().curves
    view.fork = "tiny"
    (points,) = view.chart.figure.data
    assert list(points.x) == [0, 1, 2] and list(points.text) == ["base", first.id, second.id]
    assert list(points.y) == pytest.approx(result.curve["success_rate"].tolist())
    assert view.chart.spec["data"]  # sent to the page
    assert view.tasksets.value == tiny_loop["heldout_taskset"]
    assert "+" in view.table.value or "-" in view.table.value  # the change per round


async def test_an_interrupted_round_leaves_tree_and_head_as_the_last_complete_round(tiny_loop):
    def interrupt_at(prefix):
        def say(text):
            if text.startswith(prefix):
                raise KeyboardInterrupt

        return say

    with pytest.raises(KeyboardInterrupt):  # round 1 done; round 2 trained, not yet evaluated
        await workbench.run_loop(
            teacher=None, rounds=2, say=interrupt_at("2/2 evaluate"), **tiny_loop
        )
    (first,) = workbench.checkpoints("tiny")  # round 2's checkpoint left the tree
    assert workbench.training.get_fork("tiny").head == first.id
    state = workbench.loop._load("tiny")
    sampled = state["pending"]["sample_job"]
    assert len(state["rounds"]) == 1 and "checkpoint" not in state["pending"]

    result = await workbench.run_loop(teacher=None, resume=True, name="tiny", say=print)
    first_, second = workbench.checkpoints("tiny")
    assert first_.id == first.id and second.parent == first.id
    assert workbench.training.get_fork("tiny").head == second.id == result.checkpoint.id
    state = workbench.loop._load("tiny")
    assert state["rounds"][1]["sample_job"] == sampled  # the finished sampling was kept
    assert result.curve["round"].tolist() == [0, 1, 2]

    # a resume keeps what the rounds measure: another held-out set would mix two curves
    from workbench.errors import OptionsError

    with pytest.raises(OptionsError, match="heldout_taskset=.*a resumed loop keeps its settings"):
        await workbench.run_loop(
            teacher=None, resume=True, rounds=3, heldout_taskset=tiny_loop["train_taskset"]
        )
    # a resume asking for more rounds extends the loop
    more = await workbench.run_loop(teacher=None, resume=True, rounds=3, say=print)
    assert more.curve["round"].tolist() == [0, 1, 2, 3]
    assert chain("tiny")[-1][1] == second.id


async def test_a_killed_round_is_cleaned_up_by_the_resume(tiny_loop, monkeypatch):
    from workbench import loop

    real = loop._drop_uncommitted
    monkeypatch.setattr(loop, "_drop_uncommitted", lambda *a: None)  # as if killed: no clean-up

    def kill(text):
        if text.startswith("1/1 evaluate"):
            raise SystemExit(9)

    with pytest.raises(SystemExit):
        await workbench.run_loop(teacher=None, rounds=1, say=kill, **tiny_loop)
    (orphan,) = workbench.checkpoints("tiny")  # trained, never committed
    assert workbench.training.get_fork("tiny").head is None
    monkeypatch.setattr(loop, "_drop_uncommitted", real)
    result = await workbench.run_loop(teacher=None, resume=True, name="tiny", say=print)
    (kept,) = workbench.checkpoints("tiny")
    assert kept.id != orphan.id and kept.id == result.checkpoint.id
    assert not Path(orphan.path).exists()


async def test_loop_options_are_checked_with_one_line_errors(tiny_loop):
    from workbench.errors import OptionsError, WorkbenchError

    with pytest.raises(OptionsError, match="teacher=None"):
        await workbench.run_loop(rounds=3)
    with pytest.raises(OptionsError, match="temperature"):
        await workbench.run_loop(teacher=None, temperature=0.2)
    with pytest.raises(OptionsError, match="method"):
        await workbench.run_loop(teacher=None, method="sft")
    with pytest.raises(WorkbenchError, match="no loop named 'nobody' to resume"):
        await workbench.run_loop(teacher=None, resume=True, name="nobody")


async def test_the_teacher_demo_still_runs_its_five_steps(tiny_loop):
    said = []
    result = await workbench.run_loop(
        base=tiny_loop["base"], group_size=1, max_tokens=3, epochs=1, say=said.append
    )
    assert [s[:3] for s in said] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert result.teacher is not None and result.checkpoint.method == "sft"
    (ckpt,) = workbench.checkpoints(result.fork)
    assert ckpt.evals["arithmetic-heldout"]["runs"] == 30 and result.comparison.n_tasks == 30


async def test_an_interrupted_teacher_demo_stops_training_at_its_next_step(tiny_loop):
    """Training runs in a worker thread; a cancelled Loop (Ctrl-C in a notebook, a timeout)
    stops it at its next step instead of letting it train on, unseen, to the end."""
    import asyncio

    steps = []
    loop = asyncio.create_task(
        workbench.run_loop(
            base=tiny_loop["base"],
            name="interrupted",
            group_size=1,
            max_tokens=3,
            epochs=500,  # far longer than the test waits
            on_step=steps.append,
            say=print,
        )
    )
    while not steps:
        await asyncio.sleep(0.05)
        assert not loop.done(), loop.exception()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    seen = len(steps)
    await asyncio.sleep(2)  # a tiny model's step takes milliseconds
    assert len(steps) <= seen + 1
    assert workbench.checkpoints("interrupted") == []  # no checkpoint half made


def test_the_cli_runs_rounds_without_a_teacher_and_resumes_to_more(tiny_loop):
    from conftest import run_cli

    # a learning rate that barely moves it (see tiny_loop)
    args = ["--base", tiny_loop["base"], "--name", "tiny", "--group-size", "4", "--lr", "1e-6"]
    args += ["--train-taskset", tiny_loop["train_taskset"]]
    args += ["--heldout-taskset", tiny_loop["heldout_taskset"]]
    out = run_cli("loop", "--teacher", "none", "--rounds", "1", "--method", "rft", *args)
    assert out.returncode == 0, out.stderr
    assert "held-out success per round" in out.stdout and "paired by task" in out.stdout
    (first,) = workbench.checkpoints("tiny")
    assert first.method == "rft" and workbench.training.get_fork("tiny").head == first.id

    more = run_cli("loop", "--teacher", "none", "--resume", "--name", "tiny", "--rounds", "2")
    # (a resume keeps the loop's saved options: its learning rate too)
    assert more.returncode == 0, more.stderr
    assert chain("tiny")[-1][1] == first.id  # round 2 is a child of round 1
    tree = run_cli("models", "checkpoints", "tiny")
    assert tree.stdout.count("rft on") == 2 and "HEAD" in tree.stdout

    bad = run_cli("loop", "--teacher", "none", "--epochs", "3")
    assert bad.returncode == 2 and "--epochs is the teacher demo's" in bad.stderr
