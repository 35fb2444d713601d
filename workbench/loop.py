"""The Loop, end to end: evaluate, train on traces, use the trained model, repeat.

```python
result = await workbench.run_loop()                          # the teacher demo (README)
result = await workbench.run_loop(rounds=3, method="grpo", teacher=None)  # self-improvement
result.curve                                                 # held-out success per round
result.comparison                                            # last round against the base
```

**The teacher demo** (``teacher="scripted:calculator"``, the default) teaches SmolLM2-135M
to use the arithmetic environment's ``calculate`` tool from a scripted teacher's traces: the
base model almost never solves two-digit problems and never calls the tool, so its few
lucky guesses would teach guessing. One fork, one SFT checkpoint, evaluated on held-out
tasks next to the base model.

**Self-improvement rounds** (``teacher=None``): the model learns from its own runs, on the
``mental`` family (one-digit arithmetic that SmolLM2 gets right at temperature 1 about one
run in eight; see ``environments/mental``). Round 0 evaluates the base on the held-out
tasks. Each round then

1. samples HEAD on the round's slice of the training tasks, ``group_size`` runs per task at
   ``temperature`` (>= 0.7: the group needs a spread of rewards),
2. trains a child checkpoint of HEAD on those runs (``method``: ``rft`` or ``grpo``),
3. evaluates the child on the held-out tasks,
4. commits: attaches the held-out result to the checkpoint and moves HEAD to it.

Until step 4 the round leaves no trace in the tree: an interrupted round's checkpoint is
taken out again (at once on Ctrl-C, or by the next ``resume=True`` after a kill), so the
tree and HEAD stay as the last complete round left them. The loop's progress is kept in
``.workbench/loops/NAME.json``; ``resume=True`` continues from there, resuming a half-done
sampling or evaluation job rather than starting it again, and ``rounds=`` beyond the
rounds done extends a finished loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import pydantic

from workbench import config
from workbench.compare import Comparison, compare
from workbench.errors import OptionsError, WorkbenchError, one_line
from workbench.formatting import percent, rate_interval
from workbench.jobs import Job, create_job, evaluate, load_job, progress_bar, run_job
from workbench.leaderboard import leaderboard
from workbench.store import Store, get_store
from workbench.tasks import load_taskset
from workbench.training import registry
from workbench.training.trainer import train

CURVE_COLUMNS = ["round", "checkpoint", "runs", "success_rate", "success_low", "success_high"]


@dataclass
class LoopResult:
    base: str
    fork: str
    checkpoint: registry.Checkpoint
    before: Job
    teacher: Job | None
    after: Job
    leaderboard: pd.DataFrame  # base and fork(s) on the held-out taskset
    comparison: Comparison  # the last checkpoint (b) against the base model (a), paired by task
    curve: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CURVE_COLUMNS))

    @property
    def better(self) -> bool:
        """Whether the fork is better: the paired 95% interval of its gain lies above 0."""
        return self.comparison.better is True

    @property
    def separated(self) -> bool:
        """Whether the fork's 95% interval lies wholly above the base model's."""
        rows = self.leaderboard.set_index("model")
        return bool(rows.loc[self.fork, "success_low"] > rows.loc[self.base, "success_high"])


def _free_name(name: str, store: Store) -> str:
    candidate, n = name, 1
    while registry.get_fork(candidate, store) is not None:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


async def run_loop(
    *,
    teacher: str | None = "scripted:calculator",
    rounds: int | None = None,
    method: str | None = None,
    resume: bool = False,
    store: Store | None = None,
    say: Callable[[str], None] = print,
    **options: Any,
) -> LoopResult:
    """Run the Loop: the teacher demo, or ``rounds`` of self-improvement with ``teacher=None``.

    Args:
        teacher: a model whose successful runs teach the fork (one SFT round), or None: the
            fork learns from its own runs, round after round.
        rounds: self-improvement rounds (``teacher=None``); default 3.
        method: ``rft`` or ``grpo`` (self-improvement; default ``grpo``), ``sft`` (teacher).
        resume: continue the last loop (or the one ``name=`` names) where it stopped.
        **options: the teacher demo's ``base``, ``name``, ``train_taskset``,
            ``heldout_taskset``, ``group_size``, ``max_tokens``, ``epochs`` and training
            options; for rounds, the fields of :class:`RoundsConfig`.
    """
    store = store or get_store()
    if teacher is None:
        return await _rounds(rounds, method, resume, store, say, options)
    if rounds not in (None, 1) or method not in (None, "sft") or resume:
        raise OptionsError(
            "a teacher's loop is one round of sft: give teacher=None (--teacher none) for "
            "rounds, rft, grpo or resume"
        )
    return await _teacher_loop(store=store, say=say, teacher=teacher, **options)


# -- the teacher demo -----------------------------------------------------------------------


async def _teacher_loop(
    *,
    base: str = "smollm2-135m",
    name: str = "smollm2-calculator",
    train_taskset: str = "arithmetic-train",
    heldout_taskset: str = "arithmetic-heldout",
    teacher: str = "scripted:calculator",
    group_size: int = 2,
    max_tokens: int = 128,
    epochs: float = 2,
    store: Store,
    say: Callable[[str], None] = print,
    **train_options: Any,
) -> LoopResult:
    sampling = {"max_tokens": max_tokens}
    name = _free_name(name, store)
    say(f"1/5 fork {base} as '{name}'")
    registry.fork(base, name, store)
    # The base as its fork's checkpoints are served (on llama.cpp: merged weights at 8 bits,
    # where `local:BASE` is the shipped 4-bit file): the two arms differ by training alone.
    base_id = f"{name}@base"
    say(f"2/5 evaluate the base ('{base_id}') on {heldout_taskset} (group size {group_size})")
    before = await evaluate(
        heldout_taskset, base_id, group_size=group_size, store=store, **sampling
    )
    say(f"3/5 collect successful traces: {teacher} on {train_taskset}")
    taught = await evaluate(train_taskset, teacher, store=store)
    say(f"4/5 train '{name}' on the successful traces of job {taught.id} ({epochs:g} epochs)")
    checkpoint = await _train_in_thread(
        "the Loop was interrupted: no checkpoint was kept",
        name,
        jobs=[taught.id],
        epochs=epochs,
        store=store,
        **train_options,
    )
    say(f"5/5 evaluate '{name}' (checkpoint {checkpoint.id}) on {heldout_taskset}")
    after = await evaluate(
        heldout_taskset,
        name,
        group_size=group_size,
        store=store,
        on_event=progress_bar(name),
        **sampling,
    )
    board = leaderboard(pd.concat([before.traces_df(), after.traces_df()], ignore_index=True))
    registry.record_eval(name, checkpoint.id, heldout_taskset, _eval_row(board, name, after), store)
    comparison = compare(before, after, store=store)
    return LoopResult(base_id, name, checkpoint, before, taught, after, board, comparison)


def _eval_row(board: pd.DataFrame, model: str, job: Job) -> dict[str, Any]:
    row = board.set_index("model").loc[model]
    cols = ["runs", "success_rate", "success_low", "success_high", "mean_reward"]
    return {
        "job": job.id,
        **{k: row[k].item() if hasattr(row[k], "item") else row[k] for k in cols},
    }


# -- self-improvement rounds ------------------------------------------------------------------


class RoundsConfig(pydantic.BaseModel):
    """Everything that configures self-improvement rounds (API, CLI and notebook fill this).

    The defaults are the measured recipe of the README: 3 rounds on ``mental``, a third of
    the training tasks per round, group size 8 at temperature 1.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    rounds: int = pydantic.Field(3, ge=1, le=100)
    method: Literal["rft", "grpo"] = "grpo"
    base: str = "smollm2-135m"
    name: str | None = None  # default: smollm2-<method>
    train_taskset: str = "mental-train"
    heldout_taskset: str = "mental-heldout"
    tasks_per_round: int | None = pydantic.Field(24, ge=1)  # None: every training task
    group_size: int = pydantic.Field(8, ge=2, description="runs per task when sampling")
    heldout_group_size: int = pydantic.Field(4, ge=1)
    temperature: float = pydantic.Field(1.0, ge=0.7, le=2)
    max_tokens: int = pydantic.Field(12, ge=1)
    max_concurrent: int = pydantic.Field(32, ge=1)
    train: dict[str, Any] = {}  # TrainConfig fields; the method's defaults fill the rest

    @property
    def fork_name(self) -> str:
        return self.name or f"smollm2-{self.method}"

    def train_options(self) -> dict[str, Any]:
        return {**METHOD_DEFAULTS[self.method], **self.train, "method": self.method}


# What `resume` may change: how many rounds, how many runs in flight.
RESUMABLE_CHANGES = frozenset({"rounds", "max_concurrent"})

# Per method, what one round trains with (measured on the 2-core CPU; see the README).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "rft": {"epochs": 2, "lr": 1e-3, "batch_size": 8},
    "grpo": {"epochs": 1, "lr": 1e-3, "batch_size": 8, "beta": 0.0, "epsilon": 0.2},
}


def _state_path(name: str):
    return config.home() / "loops" / f"{name}.json"


def _save(state: dict[str, Any]) -> None:
    path = _state_path(state["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(state, indent=2, default=str))
    os.replace(partial, path)  # whole or not at all


def _load(name: str) -> dict[str, Any] | None:
    path = _state_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def _latest(method: str | None) -> dict[str, Any] | None:
    """The most recently saved loop (of this method, if one is given)."""
    found = []
    for path in (config.home() / "loops").glob("*.json"):
        state = json.loads(path.read_text())
        if method in (None, state["config"]["method"]):
            found.append((path.stat().st_mtime, state))
    return max(found, key=lambda f: f[0])[1] if found else None


def _config(rounds, method, options: dict[str, Any]) -> RoundsConfig:
    given = {"rounds": rounds, "method": method, **options}
    try:
        return RoundsConfig(**{k: v for k, v in given.items() if v is not None})
    except pydantic.ValidationError as e:
        raise OptionsError(one_line(e, RoundsConfig)) from None


async def _rounds(rounds, method, resume, store: Store, say, options) -> LoopResult:
    if resume:
        name = options.get("name")
        state = _load(name) if name else _latest(method)
        if state is None:
            what = f"no loop named '{name}'" if name else "no loop"
            raise WorkbenchError(f"{what} to resume: start one without --resume")
        stored = state["config"]
        if method not in (None, stored["method"]):
            raise OptionsError(
                f"loop '{state['name']}' trains by {stored['method']}: resume it with that method"
            )
        given = {k: v for k, v in options.items() if v is not None and k != "name"}
        # What the rounds measure and train on stays as the loop began: a held-out set,
        # sampling or base changed half-way would put two experiments on one curve.
        changed = sorted(
            k for k, v in given.items() if k not in RESUMABLE_CHANGES and stored.get(k) != v
        )
        if changed:
            was = ", ".join(f"{k}={stored.get(k)!r}" for k in changed)
            raise OptionsError(
                f"loop '{state['name']}' runs with {was}: a resumed loop keeps its settings "
                f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change); start a new loop "
                "to try others"
            )
        cfg = _config(None, None, {**stored, **given, "rounds": rounds or stored["rounds"]})
        state["config"] = cfg.model_dump()
        say(f"resuming loop '{state['name']}' after round {len(state['rounds'])} of {cfg.rounds}")
    else:
        cfg = _config(rounds, method, options)
        cfg.name = _free_name(cfg.fork_name, store)
        state = {
            "name": cfg.name,
            "config": cfg.model_dump(),
            "base_job": None,
            "rounds": [],
            "pending": None,
        }
    return await _run_rounds(cfg, state, store, say)


async def _run_rounds(cfg: RoundsConfig, state: dict[str, Any], store: Store, say) -> LoopResult:
    from workbench.models.hf import materialize_base

    name, total = state["name"], cfg.rounds
    train_tasks = load_taskset(cfg.train_taskset, store)
    sampling = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if registry.get_fork(name, store) is None:
        # The de-quantised copy of a bundled GGUF loads in a second instead of 15-80: each
        # round loads the base twice (to train, and to evaluate the new checkpoint).
        say(f"0/{total} fork {cfg.base} as '{name}' (its de-quantised copy, made once)")
        base_folder = await asyncio.to_thread(materialize_base, cfg.base)
        registry.fork(str(base_folder), name, store)
        _save(state)

    heldout = cfg.heldout_taskset
    if state["base_job"] is None or not _finished(state["base_job"], store):
        say(
            f"0/{total} evaluate the base ({name} before any round) on {heldout}, "
            f"group size {cfg.heldout_group_size}"
        )
    before = await _job(
        state, "base_job", heldout, name, cfg.heldout_group_size, cfg, sampling, store
    )

    while len(state["rounds"]) < total:
        r = len(state["rounds"]) + 1
        started = time.time()
        pending = state.get("pending") or {}
        if pending.get("round") != r:
            pending = state["pending"] = {"round": r}
            _save(state)
        if _committed(name, pending, store):  # killed between the commit and the save
            _finish(state, pending)
            continue
        try:
            _drop_uncommitted(name, state, store)
            await _round(r, cfg, state, pending, train_tasks, sampling, store, say)
        except BaseException:
            # Ctrl-C, a cancelled task, a failure: the round did not finish, so its checkpoint
            # leaves the tree. Training in its thread stops at its next step (see
            # _train_in_thread; a kill leaves the clean-up to the next resume).
            _drop_uncommitted(name, state, store)
            raise
        pending["seconds"] = round(time.time() - started, 1)
        _finish(state, pending)
    return _result(cfg, state, before, store)


async def _round(r, cfg, state, pending, train_tasks, sampling, store, say) -> None:
    name, total, heldout = state["name"], cfg.rounds, cfg.heldout_taskset
    head = registry.require_fork(name, store).head
    slugs = _slice(train_tasks, cfg.tasks_per_round, r)
    say(
        f"{r}/{total} sample {name} (HEAD {head or 'base'}) on {len(slugs)} tasks of "
        f"{cfg.train_taskset}, {cfg.group_size} runs each at temperature {cfg.temperature:g}"
    )
    sample = await _job(
        pending,
        "sample_job",
        cfg.train_taskset,
        name,
        cfg.group_size,
        cfg,
        sampling,
        store,
        task_ids=slugs,
        state=state,
    )
    runs = sample.traces()
    say(
        f"{r}/{total} train a child of {head or 'the base'} by {cfg.method} on job {sample.id} "
        f"({sum(t.success for t in runs)} of {len(runs)} runs succeeded)"
    )

    ckpt = await _train_in_thread(
        "the round was interrupted: no checkpoint was kept",
        name,
        jobs=[sample.id],
        move_head=False,
        store=store,
        **cfg.train_options(),
    )
    pending["checkpoint"] = ckpt.id
    _save(state)
    pinned = f"{name}@{ckpt.id}"
    say(f"{r}/{total} evaluate {pinned} on {heldout}")
    after = await _job(
        pending,
        "heldout_job",
        heldout,
        pinned,
        cfg.heldout_group_size,
        cfg,
        sampling,
        store,
        state=state,
    )
    board = leaderboard(after.traces_df())
    result = {**_eval_row(board, pinned, after), "round": r}
    registry.record_eval(name, ckpt.id, heldout, result, store)
    registry.set_head(name, ckpt.id, store)  # the round's commit
    say(
        f"{r}/{total} HEAD -> {ckpt.id}: held-out success "
        + rate_interval(result["success_rate"], result["success_low"], result["success_high"])
    )


class RoundInterrupted(WorkbenchError):
    """Raised in the training thread when the round it trains for (or the teacher demo's
    training step) was interrupted."""


async def _train_in_thread(interrupted: str, name: str, **options: Any) -> registry.Checkpoint:
    """:func:`train` in a worker thread, which nothing can kill: if this is interrupted (Ctrl-C,
    a cancelled task), the thread raises ``RoundInterrupted(interrupted)`` at its next step
    instead of training on, unseen, to the end; no checkpoint is kept."""
    stop = threading.Event()
    on_step = options.pop("on_step", None)

    def step(metrics: dict[str, Any]) -> None:  # in the training thread
        if stop.is_set():
            raise RoundInterrupted(interrupted)
        if on_step is not None:
            on_step(metrics)

    try:
        return await asyncio.to_thread(train, name, on_step=step, **options)
    except BaseException:
        stop.set()
        raise


async def _job(
    record, key, taskset, model, group_size, cfg, sampling, store, task_ids=None, state=None
):
    """Run (or resume) the job whose id ``record[key]`` keeps, saving the id before it runs."""
    job_id = record.get(key)
    if job_id is not None:
        job = load_job(job_id, store)
    else:
        job = create_job(
            taskset,
            model,
            store=store,
            group_size=group_size,
            max_concurrent=cfg.max_concurrent,
            task_ids=task_ids,
            **sampling,
        )
        record[key] = job.id
        _save(state or record)
    if not _finished(job.id, store):
        await run_job(job, progress_bar(model))
    return job


def _finished(job_id: str, store: Store) -> bool:
    return store.get_job(job_id)["status"] == "finished"


def _slice(taskset, per_round: int | None, r: int) -> list[str]:
    """Round r's training tasks: consecutive slices of the taskset, wrapping around."""
    slugs = [t.slug for t in taskset.tasks]
    if per_round is None or per_round >= len(slugs):
        return slugs
    start = (r - 1) * per_round
    return [slugs[(start + k) % len(slugs)] for k in range(per_round)]


def _committed(name: str, pending: dict, store: Store) -> bool:
    """A round whose HEAD already moved (a kill between the commit and the state's save)."""
    ckpt = pending.get("checkpoint")
    return ckpt is not None and registry.require_fork(name, store).head == ckpt


def _drop_uncommitted(name: str, state: dict, store: Store) -> None:
    """Take out of the tree every checkpoint of the loop's fork that no finished round
    committed (the fork is the loop's own: nothing else trains it while the loop runs)."""
    kept = {r["checkpoint"] for r in state["rounds"]}
    head = registry.require_fork(name, store).head
    for ckpt in reversed(registry.checkpoints(name, store)):  # children before parents
        if ckpt.id not in kept and ckpt.id != head:
            registry.remove_checkpoint(name, ckpt.id, store)
    pending = state.get("pending") or {}
    if pending.get("checkpoint") not in (None, head):
        pending.pop("checkpoint")
        pending.pop("heldout_job", None)  # it evaluated the checkpoint just removed
        _save(state)


def _finish(state: dict, pending: dict) -> None:
    state["rounds"].append(pending)
    state["pending"] = None
    _save(state)


def _result(cfg: RoundsConfig, state: dict, before: Job, store: Store) -> LoopResult:
    name = state["name"]
    jobs = [before] + [load_job(r["heldout_job"], store) for r in state["rounds"]]
    board = leaderboard(pd.concat([j.traces_df() for j in jobs], ignore_index=True))
    curve = learning_curve(name, cfg.heldout_taskset, store)
    last = registry.get_checkpoint(name, state["rounds"][-1]["checkpoint"], store)
    comparison = compare(before, jobs[-1], store=store)
    return LoopResult(
        name, f"{name}@{last.id}", last, before, None, jobs[-1], board, comparison, curve
    )


def learning_curve(
    name: str, taskset: str | None = None, store: Store | None = None
) -> pd.DataFrame:
    """Held-out success along a fork's HEAD lineage, one row per checkpoint with its 95%
    interval (clustered by task), from the evaluations attached to the tree; round 0 is the
    base model where a self-improvement loop evaluated it. Works for any fork whose
    checkpoints were evaluated (``taskset``: which evaluation; default: the loop's held-out
    taskset, else the first one found). For the notebook's plot and the dashboard."""
    store = store or get_store()
    fork_ = registry.require_fork(name, store)
    chain = registry.lineage(name, fork_.head, store)
    state = _load(name)
    if taskset is None:
        found = [ts for c in chain for ts in c.evals]
        taskset = state["config"]["heldout_taskset"] if state else (found[0] if found else None)
    rows = []
    # round 0: the base, measured on the loop's held-out set (only a curve on that set)
    base_job = state.get("base_job") if state else None
    on_heldout = bool(state) and state["config"]["heldout_taskset"] == taskset
    if base_job and on_heldout and _finished(base_job, store):
        job = load_job(base_job, store)
        board = leaderboard(job.traces_df()).iloc[0]
        rows.append(
            {"round": 0, "checkpoint": "base", **{c: board[c] for c in _STATS}, "job": job.id}
        )
    for k, ckpt in enumerate(chain, start=1):
        result = ckpt.evals.get(taskset)
        if result is not None:
            rows.append(
                {
                    "round": result.get("round", k),
                    "checkpoint": ckpt.id,
                    **{c: result.get(c) for c in _STATS},
                    "job": result.get("job"),
                }
            )
    curve = pd.DataFrame(rows, columns=[*CURVE_COLUMNS, "mean_reward", "job"])
    return curve.astype({"round": int, "runs": int})


_STATS = ["runs", "success_rate", "success_low", "success_high", "mean_reward"]


def render_curve(curve: pd.DataFrame, title: str = "held-out success per round") -> Any:
    """A rich table of a learning curve, for the CLI: round, checkpoint, runs, success with
    its 95% interval, and the change against the round before."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("round", "right"),
        ("checkpoint", "left"),
        ("runs", "right"),
        ("success [95% CI]", "right"),
        ("change", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "checkpoint")
    previous = None
    for r in curve.to_dict("records"):
        rate = r["success_rate"]
        table.add_row(
            str(r["round"]),
            str(r["checkpoint"]),
            str(r["runs"]),
            rate_interval(rate, r["success_low"], r["success_high"]),
            "" if previous is None else percent(rate - previous, signed=True),
        )
        previous = rate
    return table
