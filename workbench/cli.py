"""The ``workbench`` command: evaluate, inspect tasksets, jobs and traces, rank models."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from workbench.errors import OptionsError, WorkbenchError, missing_extra
from workbench.formatting import percent, rate_interval, reward, reward_interval

app = typer.Typer(
    help="Workbench: evaluate agents on tasksets, read their traces, rank models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tasks_app = typer.Typer(help="Tasksets: list, show, import, export.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
models_app = typer.Typer(
    help="Models: base models, forks, training, checkpoints, HEAD.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
env_app = typer.Typer(
    help="Environments: serve one over MCP, build its Docker image.", no_args_is_help=True
)
app.add_typer(env_app, name="env")

# Piped output (CI logs, `| less`) is not squeezed into rich's default 80 columns.
_piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
console = Console(width=120 if _piped else None)


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, not a traceback."""
    try:
        app()
    except WorkbenchError as e:
        _fail(str(e))
    except OSError as e:  # a path too long, a full disk, a read-only folder: the user's to fix
        name = str(e.filename or "")
        name = name if len(name) <= 120 else f"{name[:60]}…{name[-40:]}"
        where = f" ({name})" if name else ""
        _fail(f"{e.strerror or e}{where}")
    except Exception as e:
        message = _database_problem(e)
        if message is None:
            raise  # a bug: keep the traceback
        _fail(message)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(2)


def _database_problem(error: Exception) -> str | None:
    """A one-line message for a database that cannot be used (corrupt, read-only, locked)."""
    import sqlalchemy.exc

    if not isinstance(error, sqlalchemy.exc.DBAPIError | sqlalchemy.exc.ArgumentError):
        return None
    from workbench.config import database_url

    cause = str(getattr(error, "orig", None) or error).splitlines()[0]
    url = database_url().split("@")[-1]  # no password in the message
    return (
        f"the database {url} cannot be used: {cause} "
        "(set WORKBENCH_HOME to a writable folder, or WORKBENCH_DATABASE_URL)"
    )


# -- eval ---------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    taskset: str = typer.Argument(
        None, help="Stored or shipped taskset name, or a task file (.jsonl, .json, .py)."
    ),
    models: list[str] = typer.Argument(None, help="Model ids, e.g. scripted:expert."),
    group_size: int = typer.Option(
        None, "--group-size", "--group", "-g", help="Runs per task per model [default: 1]."
    ),
    max_steps: int = typer.Option(None, "--max-steps", help="Model calls per run [default: 10]."),
    max_concurrent: int = typer.Option(
        None, "--max-concurrent", help="Runs in flight at once [default: 16]."
    ),
    timeout: float = typer.Option(None, "--timeout", help="Seconds per run."),
    task_ids: str = typer.Option(
        None,
        "--task-ids",
        help="Comma-separated task slugs (or 0-based positions, as HUD's, when no slug matches).",
    ),
    temperature: float = typer.Option(None, "--temperature"),
    top_p: float = typer.Option(None, "--top-p"),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Tokens per model answer."),
    seed: int = typer.Option(None, "--seed"),
    resume: str = typer.Option(None, "--resume", help="Finish an interrupted job by id."),
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="isolated, inprocess, subprocess or docker (default: each environment's own).",
    ),
    backend: str = typer.Option(
        None, "--backend", help="asyncio (this process, the default) or ray (Ray actors)."
    ),
    address: str = typer.Option(
        None, "--address", help="Ray cluster address (default: start a local Ray on 127.0.0.1)."
    ),
    workers: int = typer.Option(
        None, "--workers", help="Ray actors (default: one per CPU of the cluster)."
    ),
    grader: str = typer.Option(
        None, "--grader", help="Inspect tasks: the model id that model_graded_* scorers use."
    ),
    task_arg: list[str] = typer.Option(
        None, "-T", "--task-arg", help="Inspect tasks: an argument of the @task, KEY=VALUE."
    ),
) -> None:
    """Evaluate models on a taskset, with a live progress bar and a leaderboard at the end.

    TASKSET may also be an Inspect AI task, FILE.py@task_name (the `inspect` extra)."""
    from workbench import jobs

    if resume:
        job = jobs.load_job(resume)
    else:
        if not taskset or not models:
            raise WorkbenchError(
                "give a taskset and at least one model, e.g. "
                "`workbench eval shop-basics scripted:expert scripted:weak`"
            )
        if _inspect_task_file(taskset):  # Inspect AI: FILE.py@task, or a file of @task
            from workbench.inspect_bridge import from_inspect, parse_task_args

            taskset = from_inspect(taskset, task_args=parse_task_args(task_arg), grader=grader)
        elif grader or task_arg:
            raise WorkbenchError("--grader and -T go with an Inspect task: FILE.py[@task_name]")
        ids = [t.strip() for t in task_ids.split(",")] if task_ids else None
        if ids and all(i.isdigit() for i in ids):
            taskset, ids = _select_by_position(taskset, ids)
        # Only what was given goes on: RunConfig holds the defaults and checks every value.
        job = jobs.create_job(
            taskset,
            models,
            group_size=group_size,
            max_steps=max_steps,
            max_concurrent=max_concurrent,
            timeout=timeout,
            task_ids=ids,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            runtime=runtime,
            backend=backend,
            address=address,
            workers=workers,
        )
    console.print(
        f"job [bold]{job.id}[/]: {len(job.taskset)} tasks x {len(job.config.models)} models "
        f"x group {job.config.group_size} = {job.total} runs"
    )
    if job.config.backend == "ray":
        where = job.config.address or "a local Ray on 127.0.0.1 (it takes a few seconds)"
        console.print(f"[dim]runs go to Ray actors: {where}[/]")
    _run_with_progress(job)
    console.print(_leaderboard_table(job.leaderboard(), f"{job.taskset.name} · job {job.id}"))
    console.print(f"traces: `workbench trace ID` (ids: `workbench jobs {job.id}`)")


def _select_by_position(taskset, ids: list[str]):
    """``--task-ids 0,2``: slugs when the taskset has tasks of those slugs, else 0-based
    positions (HUD's CLI takes both). Returns the taskset (loaded) and the slugs."""
    from workbench.tasks import Taskset, load_taskset

    loaded = taskset if isinstance(taskset, Taskset) else load_taskset(taskset)
    if any(i in loaded.slugs for i in ids):
        return loaded, ids
    beyond = [i for i in ids if int(i) >= len(loaded)]
    if beyond:
        raise WorkbenchError(
            f"taskset '{loaded.name}' has {len(loaded)} tasks (positions 0 to {len(loaded) - 1}) "
            f"and no task '{beyond[0]}'"
        )
    return loaded, [loaded.tasks[int(i)].slug for i in ids]


def _run_with_progress(job) -> None:
    from workbench.jobs import JobStarted, RunFinished, run_job

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("errors {task.fields[errors]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("evaluating", total=job.total, errors=0)

        def on_event(event) -> None:
            if isinstance(event, RunFinished):
                progress.update(bar, completed=job.done, errors=job.errors)
            elif isinstance(event, JobStarted):
                progress.update(bar, completed=event.already_done)

        try:
            asyncio.run(run_job(job, on_event, steps=False))
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"[yellow]interrupted[/]: {job.done}/{job.total} runs stored; "
                f"resume with `workbench eval --resume {job.id}`"
            )
            raise typer.Exit(130) from None
        progress.update(bar, completed=job.done, errors=job.errors)


def _leaderboard_table(df, title: str) -> Table:
    """Success rate and mean reward with 95% intervals (clustered by task), pass@k at the
    largest k, errors and timeouts (apart from failures)."""
    table = Table(title=f"Leaderboard · {title}", title_justify="left")
    table.add_column("model", style="bold", overflow="fold", min_width=15)
    table.add_column("runs", justify="right")
    table.add_column("success [95% CI]", justify="right", no_wrap=True)
    table.add_column("reward [95% CI]", justify="right", no_wrap=True)
    pass_cols = [c for c in df.columns if c.startswith("pass@")][-1:]  # all of them: the API
    for col in pass_cols:
        table.add_column(col, justify="right")
    table.add_column("errors", justify="right")
    table.add_column("timeouts", justify="right")
    for r in df.to_dict("records"):
        table.add_row(
            r["model"],
            str(r["runs"]),
            rate_interval(r["success_rate"], r["success_low"], r["success_high"]),
            reward_interval(r["mean_reward"], r["reward_low"], r["reward_high"]),
            *[_fmt(r[c]) for c in pass_cols],
            str(r["errors"]),
            str(r["timeouts"]),
        )
    return table


def _fmt(value) -> str:
    return reward(value)


@app.command("leaderboard")
def leaderboard_command(
    taskset: str = typer.Argument(..., help="Taskset name."),
    job: str = typer.Option(None, "--job", help="Only this job."),
    by_task: bool = typer.Option(False, "--per-task", help="One row per model x task."),
) -> None:
    """Rank every model evaluated on a taskset (all its jobs, or one). Runs of jobs with
    different settings, or of a fork's different checkpoints, get rows of their own."""
    from workbench.leaderboard import (
        job_cells,
        leaderboard_from_cells,
        per_task_from_cells,
        taskset_cells,
    )
    from workbench.store import get_store

    store = get_store()
    job_id = store.get_job(job)["id"] if job else None
    if job_id:
        cells = job_cells(store, job_id)
    else:
        cells = taskset_cells(store, taskset)
    if cells.empty:
        raise WorkbenchError(
            f"no runs stored for taskset '{taskset}': run `workbench eval {taskset} MODEL` first"
        )
    if by_task:
        table = Table(title=f"Per task · {taskset}", title_justify="left")
        for col in ("model", "task", "runs", "success", "mean reward", "errors", "timeouts"):
            table.add_column(col)
        for r in per_task_from_cells(cells).to_dict("records"):
            table.add_row(
                r["model"],
                r["task"],
                str(r["runs"]),
                percent(r["success_rate"]),
                reward(r["mean_reward"]),
                str(r["errors"]),
                str(r["timeouts"]),
            )
        console.print(table)
        return
    console.print(_leaderboard_table(leaderboard_from_cells(cells), taskset))


@app.command("compare")
def compare_command(
    a: str = typer.Argument(..., help="Baseline: a job id (or prefix), or a model id."),
    b: str = typer.Argument(..., help="Compared with A: a job id (or prefix), or a model id."),
    taskset: str = typer.Option(
        None, "--taskset", "-t", help="Taskset of model ids (default: a job's taskset)."
    ),
) -> None:
    """Paired comparison of B against A on the tasks both ran: the difference in success
    rate with its 95% interval, and the tasks that flipped each way."""
    from workbench.compare import compare, render_comparison

    console.print(render_comparison(compare(a, b, taskset=taskset)))


@app.command("export")
def export_command(
    job: str = typer.Argument(..., help="A job id (or unique prefix)."),
    fmt: str = typer.Option("inspect", "--format", help="inspect: Inspect AI .eval logs."),
    out: Path = typer.Option(Path("logs"), "--out", help="The folder to write to."),
) -> None:
    """Write a job in another tool's format: Inspect AI logs, one .eval per model."""
    if fmt != "inspect":
        raise WorkbenchError(f"unknown export format '{fmt}': use inspect")
    from workbench.inspect_bridge import to_inspect_log

    for path in to_inspect_log(job, out):
        console.print(f"wrote {path}")
    console.print(f"open them with `inspect view --log-dir {out}`")


# -- jobs and traces ----------------------------------------------------------------------


@app.command("jobs")
def jobs_command(
    job: str = typer.Argument(None, help="A job id (prefix): list its runs."),
    limit: int = typer.Option(20, "--limit", "-n"),
) -> None:
    """List jobs, or the runs of one job with their trace ids."""
    from workbench.store import get_store

    store = get_store()
    if job:
        row = store.get_job(job)
        df = store.traces_df(job_id=row["id"]).sort_values(["task", "model", "group_index"])
        table = Table(title=f"job {row['id']} · {row['taskset']} · {row['status']}")
        if row["status"] == "interrupted":
            console.print(
                f"[yellow]interrupted[/]: its process is gone; resume with "
                f"`workbench eval --resume {row['id']}`"
            )
        for col in ("trace", "task", "model", "group", "reward", "stop", "steps"):
            table.add_column(col)
        for r in df.head(limit).to_dict("records"):
            table.add_row(
                r["id"][:12],
                r["task"],
                r["model"],
                str(r["group_index"]),
                reward(r["reward"]),
                r["stop_reason"],
                str(r["steps"]),
            )
        console.print(table)
        if len(df) > limit:
            console.print(f"… {len(df) - limit} more (--limit)")
        return
    df = store.jobs().head(limit)
    table = Table(title="jobs")
    for col in ("job", "taskset", "models", "status", "runs", "errors", "mean reward", "created"):
        table.add_column(col)
    for r in df.to_dict("records"):
        mean = r["mean_reward"]
        table.add_row(
            r["id"],
            r["taskset"],
            r["models"],
            r["status"],
            f"{r['done']}/{r['total']}",
            str(r["errors"]),
            reward(mean),
            str(r["created_at"])[:19],
        )
    console.print(table)
    stopped = df.loc[df["status"] == "interrupted", "id"].tolist()
    if stopped:
        console.print(
            f"interrupted jobs (their process died) resume with "
            f"`workbench eval --resume {stopped[0]}`" + (" (and the others)" if stopped[1:] else "")
        )


def _inspect_task_file(taskset: str) -> bool:
    """``FILE.py@task``, or a ``.py`` file that imports Inspect AI (``inspect eval file.py``
    runs its only task); a file of Workbench tasks does not import it."""
    if "@" in taskset and taskset.rpartition("@")[0].endswith(".py"):
        return True
    path = Path(taskset)
    if path.suffix != ".py" or not path.is_file():
        return False
    return bool(re.search(r"^\s*(from|import)\s+inspect_ai\b", path.read_text(), re.M))


# Terminal control characters but tab and newline (C0, DEL, C1): in a model's or a tool's
# text they could clear the screen, rewrite the printed reward or set the clipboard.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(value: object) -> str:
    """Text from a run, safe to print: rich markup escaped, and control characters (ESC
    ...) shown as escapes (``\\x1b``), never sent to the terminal."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))


@app.command("trace")
def trace_command(trace_id: str = typer.Argument(..., help="Trace id or unique prefix.")) -> None:
    """Show one run: the conversation, tool calls and results, reward and stop reason."""
    from workbench.store import get_store

    trace = get_store().get_trace(trace_id)
    seconds = f"{trace.seconds:.2f}s" if trace.seconds is not None else "–"
    console.print(
        f"[bold]trace {trace.id}[/]  task [bold]{_shown(trace.task)}[/] "
        f"({_shown(trace.env)}/{_shown(trace.scenario)}) model [bold]{_shown(trace.model)}[/]"
        + (f"@{_shown(trace.checkpoint)}" if trace.checkpoint else "")
        + f" group {trace.group_index} job {trace.job_id or '–'}"
    )
    styles = {"system": "dim", "user": "cyan", "assistant": "green", "tool": "yellow"}
    for message in trace.messages:
        role = message.get("role", "?")
        body = _shown(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            fn = call.get("function", {})
            body += f"\n→ [bold]{_shown(fn.get('name', ''))}[/]({_shown(fn.get('arguments', ''))})"
        title = role
        if role == "tool":
            record = next(
                (t for t in trace.tool_calls if t.id == message.get("tool_call_id")), None
            )
            if record is not None:
                title = f"tool · {_shown(record.name)}" + (
                    " · [red]error[/]" if record.error else ""
                )
        console.print(
            Panel(
                body.strip() or "[dim](empty)[/]",
                title=title,
                title_align="left",
                border_style=styles.get(role, "white"),
            )
        )
    verdict = "[green]success[/]" if trace.success else "[red]no success[/]"
    console.print(
        f"reward [bold]{reward(trace.reward)}[/] ({verdict})  stop [bold]{trace.stop_reason}[/]  "
        f"steps {trace.steps}  time {seconds}"
    )
    if trace.info:
        console.print(f"info {_shown(json.dumps(trace.info, default=str))}")
    if trace.error_type:
        console.print(f"[red]{_shown(trace.error_type)}: {_shown(trace.error_message or '')}[/]")


# -- models and training ------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """Base models and forks (with their HEAD checkpoint)."""
    from workbench.training.registry import BASE_MODELS, checkpoints, list_forks

    table = Table(title="models")
    for col in ("model id", "kind", "base", "HEAD", "checkpoints"):
        table.add_column(col)
    for name, description in BASE_MODELS.items():
        table.add_row(f"local:{name}", "base", description, "–", "–")
    for f in list_forks():
        table.add_row(f.name, "fork", f.base, f.head or "(base)", str(len(checkpoints(f.name))))
    console.print(table)


@models_app.command("fork")
def models_fork(
    base: str = typer.Argument(..., help="A base model, e.g. smollm2-135m, or a HF folder."),
    name: str = typer.Option(..., "--name", help="The new model id."),
) -> None:
    """Fork a base model: the name becomes a model id that follows its HEAD checkpoint."""
    from workbench.training.registry import fork

    console.print(f"forked {base} as [bold]{fork(base, name)}[/]")


@models_app.command("train")
def models_train(
    name: str = typer.Argument(..., help="A fork."),
    method: str = typer.Option(
        None, "--method", help="sft (default), rft (its own wins) or grpo (grouped runs)."
    ),
    taskset: str = typer.Option(None, "--taskset", help="Train on this taskset's traces."),
    jobs: str = typer.Option(None, "--jobs", help="Comma-separated job ids to take traces from."),
    min_reward: float = typer.Option(None, "--min-reward", help="sft, rft (default 1.0)."),
    max_per_task: int = typer.Option(None, "--max-per-task", help="sft, rft."),
    epochs: float = typer.Option(None, "--epochs", help="Default 1."),
    lr: float = typer.Option(None, "--lr", help="Default 1e-3."),
    lora_r: int = typer.Option(None, "--lora-r", help="Default 16."),
    batch_size: int = typer.Option(None, "--batch-size", help="Default 8."),
    beta: float = typer.Option(None, "--beta", help="grpo: KL weight to the parent (0)."),
    epsilon: float = typer.Option(None, "--epsilon", help="grpo: clip range (0.2)."),
    keep_head: bool = typer.Option(False, "--keep-head", help="Do not move HEAD to the result."),
) -> None:
    """Train a fork on traces (sft, rft or grpo); the new checkpoint becomes HEAD."""
    from workbench.training.trainer import train

    ckpt = train(
        name,
        taskset=taskset,
        jobs=[j.strip() for j in jobs.split(",")] if jobs else None,
        move_head=not keep_head,
        method=method,
        min_reward=min_reward,
        max_per_task=max_per_task,
        epochs=epochs,
        lr=lr,
        lora_r=lora_r,
        batch_size=batch_size,
        beta=beta,
        epsilon=epsilon,
    )
    m = ckpt.metrics
    console.print(
        f"checkpoint [bold]{ckpt.id}[/] of {name} ({ckpt.method}): "
        f"{ckpt.manifest['data']['traces']} traces, {m['steps']} steps, "
        f"loss {m['final_loss']}, {m['train_tokens_per_second']} tokens/s"
        + ("" if keep_head else " · now HEAD")
    )


@models_app.command("checkpoints")
def models_checkpoints(name: str = typer.Argument(..., help="A fork.")) -> None:
    """The checkpoint tree of a fork, HEAD marked, with training metrics and evaluations."""
    from rich.tree import Tree

    from workbench.training.registry import checkpoints, require_fork

    fork_ = require_fork(name)
    ckpts = checkpoints(name)
    head = "  [bold green]← HEAD[/]"
    root = Tree(f"[bold]{name}[/] (base {fork_.base})" + (head if fork_.head is None else ""))
    nodes = {None: root}
    for c in ckpts:  # oldest first: parents come before children
        m = c.metrics
        evals = " ".join(f"{ts}: {percent(r.get('success_rate'))}" for ts, r in c.evals.items())
        label = (
            f"{c.id}  {c.method} on {c.manifest['data']['traces']} traces · "
            f"loss {m.get('final_loss')} · {m.get('steps')} steps"
            + (f" · {evals}" if evals else "")
            + (head if c.id == fork_.head else "")
        )
        nodes[c.id] = nodes.get(c.parent, root).add(label)
    console.print(root)


@models_app.command("head")
def models_head(
    name: str = typer.Argument(..., help="A fork."),
    set_: str = typer.Option(
        None, "--set", help="A checkpoint id (prefix), or 'base' for the base model."
    ),
) -> None:
    """Show or set the checkpoint a fork's name resolves to."""
    from workbench.training.registry import require_fork, set_head

    if set_ is None:
        console.print(require_fork(name).head or "(base)")
        return
    new = set_head(name, None if set_ == "base" else set_)
    console.print(f"{name} HEAD → [bold]{new or '(base)'}[/]")


@app.command("loop")
def loop_command(
    teacher: str = typer.Option(
        "scripted:calculator",
        "--teacher",
        help="A model whose wins teach the fork (one sft round), or 'none': the fork learns "
        "from its own runs, round after round.",
    ),
    rounds: int = typer.Option(None, "--rounds", help="Self-improvement rounds (default 3)."),
    method: str = typer.Option(None, "--method", help="rft or grpo (default) without a teacher."),
    resume: bool = typer.Option(False, "--resume", help="Continue the last loop where it stopped."),
    name: str = typer.Option(None, "--name", help="Name of the new fork."),
    base: str = typer.Option(None, "--base", help="The base model to fork (smollm2-135m)."),
    train_taskset: str = typer.Option(None, "--train-taskset", help="Where it learns."),
    heldout_taskset: str = typer.Option(None, "--heldout-taskset", help="Where it is measured."),
    group_size: int = typer.Option(None, "--group-size", "-g"),
    epochs: float = typer.Option(None, "--epochs", help="The teacher demo's epochs (2)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (the method's default)."),
) -> None:
    """The Loop: evaluate SmolLM2, train a fork (on a teacher's runs or its own), evaluate again."""
    from workbench.loop import render_curve, run_loop

    no_teacher = teacher.lower() in ("none", "")
    options = {
        "name": name,
        "base": base,
        "train_taskset": train_taskset,
        "heldout_taskset": heldout_taskset,
        "group_size": group_size,
    }
    if no_teacher:
        if epochs is not None:
            raise OptionsError("--epochs is the teacher demo's: rounds train by their method")
        if lr is not None:
            options["train"] = {"lr": lr}
    else:
        options["epochs"] = epochs if epochs is not None else 2.0
        options["lr"] = lr
    result = asyncio.run(
        run_loop(
            teacher=None if no_teacher else teacher,
            rounds=rounds,
            method=method,
            resume=resume,
            say=lambda text: console.print(f"[bold cyan]{text}[/]"),
            **{k: v for k, v in options.items() if v is not None},
        )
    )
    heldout = result.after.taskset.name
    console.print(_leaderboard_table(result.leaderboard, f"{heldout} · before and after"))
    if not result.curve.empty:
        console.print(render_curve(result.curve))
    from workbench.compare import render_comparison

    console.print(render_comparison(result.comparison))
    verdict = "[green]better[/]" if result.better else "[red]not shown to be better[/]"
    console.print(
        f"{result.fork} against {result.base} on the held-out tasks, paired by task: "
        f"{verdict}. `workbench models checkpoints {result.fork.partition('@')[0]}` shows the tree."
    )


# -- gateway ------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback default)."),
    port: int = typer.Option(8000, "--port"),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="WORKBENCH_API_KEY",
        help="Require this bearer key (default: a fresh one, printed at start).",
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without a key: any local process may call it."
    ),
    env: list[str] = typer.Option(
        None,
        "--env",
        help="Also serve tasks of this environment (shop, pkg.module:attr, path/to/file.py:attr); "
        "the shipped ones are always served. Its code is imported at start.",
    ),
    max_body_mb: float = typer.Option(4.0, "--max-body-mb", help="Largest request body, in MB."),
    max_connections: int = typer.Option(
        1024, "--max-connections", help="Open connections at most (the oldest idle one yields)."
    ),
    preload: list[str] = typer.Option(
        None,
        "--preload",
        help="Load a model before serving, e.g. local:smollm2-135m; a local:PATH model is "
        "served only if preloaded.",
    ),
) -> None:
    """Serve every model id over an OpenAI-compatible API (/v1/models, /v1/chat/completions)."""
    try:
        from workbench.gateway import allowed_environments, check_api_key, new_api_key, serve
    except ImportError as e:
        raise missing_extra("gateway", "the gateway", e) from None

    if max_body_mb <= 0 or max_connections < 1:
        raise WorkbenchError("--max-body-mb and --max-connections must be positive")
    if api_key is None:  # click reads an empty variable as unset; here it must be an error
        api_key = os.environ.get("WORKBENCH_API_KEY")
    if no_auth and api_key:
        raise WorkbenchError("--no-auth and an API key (--api-key or WORKBENCH_API_KEY) contradict")
    api_key = None if no_auth else api_key
    check_api_key(api_key)
    allowed_environments(env or ())  # a bad --env fails now, before anything is printed
    if no_auth:
        Console(stderr=True).print(
            "[bold yellow]warning:[/] serving without an API key (--no-auth): any process on "
            "this machine that can reach the port may use these models"
        )
    elif api_key is None:
        api_key = new_api_key()
        console.print(
            f"API key: {api_key}  (choose one with --api-key or WORKBENCH_API_KEY)", soft_wrap=True
        )
    for model_id in preload or []:
        console.print(f"loading {model_id} …")
    console.print(f"serving the OpenAI-compatible API at http://{host}:{port}/v1", soft_wrap=True)
    serve(
        host=host,
        port=port,
        api_key=api_key,
        preload=preload,
        no_auth=no_auth,
        environments=env or (),
        max_body=int(max_body_mb * (1 << 20)),
        max_connections=max_connections,
    )


@app.command("dashboard")
def dashboard_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback default)."),
    port: int = typer.Option(8866, "--port"),
    no_token: bool = typer.Option(
        False, "--no-token", help="Serve without a token (any local program can use it)."
    ),
) -> None:
    """Serve the notebook dashboard with Voila: tasksets, runs, live traces, leaderboards.
    Open the printed address: it carries the page's token."""
    import importlib.util

    from workbench.dashboard import serve_dashboard

    if importlib.util.find_spec("voila") is None:
        raise WorkbenchError(
            "the dashboard needs the notebook extra: `pip install -e '.[notebook]'`"
        )
    raise typer.Exit(serve_dashboard(host=host, port=port, token=None if no_token else ""))


# -- environments -------------------------------------------------------------------------


@env_app.command("clean")
def env_clean(
    everything: bool = typer.Option(False, "--all", help="Also containers of live processes."),
    job: str = typer.Option(None, "--job", help="Only this job's containers."),
) -> None:
    """Remove leftover containers: exited ones, and those whose process died (e.g. SIGKILL)."""
    from workbench.runtimes.docker import clean

    removed = clean(everything=everything, job=job)
    console.print(f"removed {removed} container{'' if removed == 1 else 's'}")


@env_app.command("serve")
def env_serve(
    env: str = typer.Argument(..., help="shop, package.module:attr or path/to/file.py:attr"),
    transport: str = typer.Option(
        "stdio",
        "--transport",
        help="stdio, or http (127.0.0.1; asks for the bearer token it prints, or "
        "$WORKBENCH_MCP_TOKEN).",
    ),
    port: int = typer.Option(8765, "--port", help="Port for --transport http (0: any free one)."),
    no_token: bool = typer.Option(
        False,
        "--no-token",
        help="With --transport http: no bearer token (anyone who can reach the port may call "
        "the tools).",
    ),
) -> None:
    """Serve an environment over MCP: its tools, and its scenarios as prompts and resources;
    each run plays where `workbench eval` would play it (pycode in its container)."""
    from workbench.runtimes.mcp_server import serve

    serve(env, transport, port=port, no_token=no_token)


@env_app.command("build")
def env_build(
    env: str = typer.Argument(..., help="shop, package.module:attr or path/to/file.py:attr"),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if up to date."),
) -> None:
    """Build an environment's Docker image (no registry: a debootstrap base, reused)."""
    from workbench.runtimes.images import ensure_image
    from workbench.tasks import resolve_environment

    console.print(f"image [bold]{ensure_image(resolve_environment(env), rebuild=rebuild)}[/]")


# -- tasksets -----------------------------------------------------------------------------


@tasks_app.command("list")
def tasks_list() -> None:
    """Stored tasksets and the ones shipped with the example environments."""
    from workbench.store import get_store
    from workbench.tasks import builtin_tasksets

    stored = get_store().list_tasksets()
    table = Table(title="tasksets")
    for col in ("name", "tasks", "where"):
        table.add_column(col)
    for name, count in sorted(stored.items()):
        table.add_row(name, str(count), "stored")
    for name, path in builtin_tasksets().items():
        if name not in stored:
            count = sum(1 for line in path.read_text().splitlines() if line.strip())
            table.add_row(name, str(count), f"shipped ({path.parent.parent.name})")
    console.print(table)


@tasks_app.command("show")
def tasks_show(taskset: str = typer.Argument(..., help="Taskset name or JSONL file.")) -> None:
    """The tasks of a taskset: slug, environment, scenario, arguments."""
    from workbench.tasks import load_taskset

    ts = load_taskset(taskset)
    table = Table(title=f"{ts.name} · {len(ts)} tasks")
    # HUD's task fields (columns, metadata, agent_config, ...) are shown where any task has
    # them: whatever a user set is visible, never dropped.
    extra = sorted({k for t in ts for k in t.to_dict()} - {"slug", "env", "scenario", "args"})
    for col in ("slug", "env", "scenario", "args", *extra):
        table.add_column(col)
    for t in ts:
        record = t.to_dict()
        cells = [escape(json.dumps(record[k])) if k in record else "" for k in extra]
        table.add_row(t.slug, t.env, t.scenario, escape(json.dumps(t.args)), *cells)
    console.print(table)


@tasks_app.command("import")
def tasks_import(
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A .jsonl, a HUD .json task file, or a .py."
    ),
    name: str = typer.Option(None, "--name", help="Name to store it under (default: file stem)."),
    inspect_dataset: bool = typer.Option(
        False, "--inspect", help="An Inspect dataset (.jsonl, .json, .csv: input, target, id...)."
    ),
    scorer: str = typer.Option(
        "match", "--scorer", help="With --inspect: match, includes, exact, f1, model_graded_*."
    ),
    grader: str = typer.Option(None, "--grader", help="With --inspect: model_graded_*'s model."),
) -> None:
    """Store a taskset from a task file (every task is validated first).

    Validating a task imports the environment its `env` names, which runs that code: read a
    file you did not write before importing it.
    """
    from workbench.store import get_store
    from workbench.tasks import Taskset

    if inspect_dataset:
        from workbench.inspect_bridge import from_inspect_dataset

        ts = from_inspect_dataset(path, name, scorer=scorer, grader=grader)
    else:
        ts = Taskset.from_file(path, name=name)
    for task in ts:
        task.validate_args()
    get_store().save_taskset(ts)
    console.print(f"stored taskset [bold]{ts.name}[/] ({len(ts)} tasks)")


@tasks_app.command("export")
def tasks_export(
    taskset: str = typer.Argument(...),
    path: Path = typer.Argument(..., dir_okay=False, help="Where to write the JSONL file."),
) -> None:
    """Write a taskset to a JSONL file."""
    from workbench.tasks import load_taskset

    written = load_taskset(taskset).save_jsonl(path)
    console.print(f"wrote {written}")


if __name__ == "__main__":
    main()
