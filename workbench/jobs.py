"""Evaluation jobs: every task x model x group index, run concurrently, traces stored.

```python
job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"],
                               group_size=4, max_steps=10)
job.leaderboard()
```

In a notebook, ``job = workbench.start(...)`` returns at once: the job runs as a task on the
kernel's event loop; ``job.subscribe(fn)`` or ``async for event in job.events()`` follow it,
``job.cancel()`` stops it (finished runs stay stored) and ``await job`` waits for it.
A job interrupted any way (Ctrl-C, SIGKILL, cancel) resumes with ``workbench.resume(job_id)``:
stored runs are kept, missing ones are run, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.backends import check_backend, make_agent, open_backend, play  # noqa: F401
from workbench.errors import WorkbenchError
from workbench.models import ScriptedModel, get_model
from workbench.run_config import RunConfig
from workbench.runtimes import choose_runtime
from workbench.runtimes.isolated import job_scope as isolated_scope
from workbench.store import Store, get_store
from workbench.tasks import Task, Taskset, load_taskset
from workbench.traces import Trace

_log = logging.getLogger("workbench.jobs")
_RUNNING: set[str] = set()  # ids of the jobs this process is running now

# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    total: int
    already_done: int


@dataclass(frozen=True)
class RunStarted:
    job_id: str
    task: str
    model: str
    group_index: int


@dataclass(frozen=True)
class Step:
    job_id: str
    task: str
    model: str
    group_index: int
    step: int
    message: dict[str, Any]
    # What joined the conversation since the last step (the prompt, tool results), this
    # step's message last; and the run's token usage so far: a live view shows them.
    messages: tuple[dict[str, Any], ...] = ()
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class RunFinished:
    job_id: str
    trace: Trace


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    status: str
    done: int
    errors: int


Event = JobStarted | RunStarted | Step | RunFinished | JobFinished


# -- writing traces in batches ------------------------------------------------------------


def _write_patience() -> float:
    """Seconds a batch of traces is retried before the job fails (WORKBENCH_WRITE_PATIENCE)."""
    return float(os.environ.get("WORKBENCH_WRITE_PATIENCE", "120"))


def _transient(error: Exception) -> bool:
    """A write that may succeed if tried again: a lock held by another process, a dropped
    connection. A full disk or a corrupt file will not, so the job fails at once."""
    import sqlalchemy.exc

    if not isinstance(error, sqlalchemy.exc.OperationalError):
        return False
    text = str(error.orig).lower()
    return error.connection_invalidated or "locked" in text or "busy" in text


async def _patiently(write: Callable[..., Any], *args: Any, patience: float) -> None:
    """``write(*args)`` in a thread, tried again with backoff for ``patience`` seconds while
    the error is transient (another process holds the database's lock)."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + patience, 0.05
    while True:
        try:
            await asyncio.to_thread(write, *args)
            return
        except Exception as e:
            if not _transient(e) or loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)  # another process holds the lock: wait and retry
            delay = min(delay * 2, 5.0)


class TraceWriteError(WorkbenchError):
    """Finished runs could not be stored: the job fails rather than say it finished."""


class TraceWriter:
    """Buffers finished traces and writes them in one transaction per batch.

    A batch goes out when it is full or ``interval`` seconds after its first trace, so a
    killed process loses at most that much finished work (which a resume then re-runs).
    Writes run in a thread, one at a time and in order, so a slow or locked database never
    blocks the event loop. A failed write is retried with backoff for ``patience`` seconds
    while its traces stay buffered; if it still fails, :meth:`close` raises
    :class:`TraceWriteError` and the job fails: it never says "finished" with a run missing.
    """

    def __init__(
        self,
        store: Store,
        batch_size: int = 256,
        interval: float = 0.05,
        patience: float = 120.0,
    ):
        self.store = store
        self.batch_size = batch_size
        self.interval = interval
        self.patience = patience
        self.written = 0
        self._buffer: list[Trace] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task | None = None
        self._failed: BaseException | None = None

    async def add(self, trace: Trace) -> None:
        """Buffer a finished run; when the database falls behind by more than a few batches,
        wait for it (runs are produced faster than a slow disk takes them: memory would
        grow with the job)."""
        self._buffer.append(trace)
        if len(self._buffer) >= self.batch_size:
            self.flush()
            if len(self._buffer) >= 4 * self.batch_size and self._writing is not None:
                await asyncio.shield(self._writing)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Start writing what is buffered (unless a write is under way: it takes it next)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._buffer and self._failed is None:
            batch = self._buffer[: self.batch_size]
            try:
                await self._write(batch)
            except Exception as e:  # kept: close() reports it, the traces stay buffered
                self._failed = e
                return
            del self._buffer[: len(batch)]
            self.written += len(batch)

    async def _write(self, batch: list[Trace]) -> None:
        await _patiently(self.store.add_traces, batch, patience=self.patience)

    async def close(self) -> None:
        """Write everything buffered; raises :class:`TraceWriteError` if it cannot."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.shield(self._writing)
        if self._buffer and self._failed is None:
            self._writing = asyncio.get_running_loop().create_task(self._drain())
            await asyncio.shield(self._writing)
        if self._failed is not None or self._buffer:
            raise TraceWriteError(
                f"{len(self._buffer)} finished runs could not be stored "
                f"({type(self._failed).__name__}: {str(self._failed).splitlines()[0]}); "
                "the job is marked failed: resume it when the database is writable"
            )


# -- the job ------------------------------------------------------------------------------


class Job:
    """A running or finished evaluation; awaitable."""

    def __init__(self, job_id: str, taskset: Taskset, config: RunConfig, store: Store):
        self.id = job_id
        self.taskset = taskset
        self.config = config
        self.store = store
        self.total = len(taskset) * len(config.models) * config.group_size
        self.done = 0
        self.errors = 0
        self.status = "pending"
        self._listeners: list[tuple[Callable[[Event], None], bool]] = []  # (listener, steps)
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self.taskset.name!r}, {self.status}, {self.done}/{self.total})"

    # -- following ------------------------------------------------------------------------

    def subscribe(
        self, listener: Callable[[Event], None], *, steps: bool = True
    ) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns a function that unsubscribes.

        ``steps=False``: no ``RunStarted`` and ``Step`` events (a progress bar or a
        leaderboard needs only finished runs, and a job nobody watches step by step runs
        faster, on Ray most of all).
        """
        entry = (listener, steps)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry)

    async def events(self, *, steps: bool = True) -> AsyncIterator[Event]:
        """Every event from now until the job finishes (``steps``: as in :meth:`subscribe`)."""
        queue: asyncio.Queue = asyncio.Queue()
        self._listeners.append((queue.put_nowait, steps))
        try:
            while True:
                event = await queue.get()
                yield event
                if isinstance(event, JobFinished):
                    return
        finally:
            self._listeners.remove((queue.put_nowait, steps))

    def _emit(self, event: Event) -> None:
        """Tell every listener. A listener that raises is logged, never the job's or a
        run's failure: a bug in a progress bar or a widget changes no result."""
        live = isinstance(event, Step | RunStarted)
        for listener, steps in list(self._listeners):
            if steps or not live:
                try:
                    listener(event)
                except Exception:
                    _log.exception(
                        "job %s: a listener failed on %s (the job goes on)",
                        self.id,
                        type(event).__name__,
                    )

    @property
    def _watched(self) -> bool:
        """Someone follows finished runs."""
        return bool(self._listeners)

    @property
    def _watched_live(self) -> bool:
        """Someone follows runs step by step."""
        return any(steps for _, steps in self._listeners)

    # -- control --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the job; finished runs stay in the store and the job can be resumed."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _ended_early(self, task: asyncio.Task) -> None:
        """Done callback of a started job's task. A job cancelled before its task first ran
        never got to say so: it is "cancelled" (it can be resumed), with its JobFinished. A
        cancelled or failed job is reported through its status and events: asyncio must not
        log "exception was never retrieved" for a job nobody awaits."""
        if task.cancelled() and self.status == "pending":
            self.status = "cancelled"
            with contextlib.suppress(Exception):
                self.store.set_job_status(self.id, self.status)
            self._emit(JobFinished(self.id, self.status, self.done, self.errors))
        if not task.cancelled():
            task.exception()

    def __await__(self):
        return self.wait().__await__()

    async def wait(self) -> Job:
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise  # we were cancelled, not the job
        return self

    def is_done(self) -> bool:
        return self.status in ("finished", "cancelled", "failed")

    # -- results --------------------------------------------------------------------------

    def traces_df(self) -> pd.DataFrame:
        return self.store.traces_df(job_id=self.id)

    def to_inspect_log(self, log_dir: str | Path = "logs") -> list[Path]:
        """Write the job as Inspect AI ``.eval`` logs, one per model, for ``inspect view``
        (needs the ``inspect`` extra); returns their paths."""
        from workbench.inspect_bridge import to_inspect_log

        return to_inspect_log(self, log_dir)

    def traces(self) -> list[Trace]:
        return self.store.traces(job_id=self.id)

    @property
    def reward(self) -> float | None:
        """The mean reward of the job's stored runs, counted as the leaderboard counts them
        (an error is 0, a cancelled run is not a run); None before any run (HUD's
        ``job.reward``; per model, with intervals: :meth:`leaderboard`)."""
        cells = self.store.run_cells(job_id=self.id)
        runs = int(cells["runs"].sum()) if len(cells) else 0
        return float(cells["reward_sum"].sum()) / runs if runs else None

    def leaderboard(self) -> pd.DataFrame:
        from workbench.leaderboard import job_cells, leaderboard_from_cells

        return leaderboard_from_cells(job_cells(self.store, self.id))

    def per_task(self) -> pd.DataFrame:
        from workbench.leaderboard import job_cells, per_task_from_cells

        return per_task_from_cells(job_cells(self.store, self.id))

    # -- running --------------------------------------------------------------------------

    def _pending_runs(self, finished: set[tuple[str, str, int]]) -> Iterator[tuple[Task, str, int]]:
        # Group index outermost: a live leaderboard sees every model and task early.
        for group_index in range(self.config.group_size):
            for task in self.taskset:
                for model in self.config.models:
                    if (task.slug, model, group_index) not in finished:
                        yield task, model, group_index

    async def _run(self) -> None:
        _check_runnable(self)  # before anything changes: the job is someone else's
        _check_checkpoints(self)
        try:
            backend = await open_backend(self.id, self.taskset.name, self.config)
        except BaseException:  # Ray did not start: the job failed, it is not "running"
            self.status = "failed"
            self.store.set_job_status(self.id, "failed")
            self._emit(JobFinished(self.id, self.status, self.done, self.errors))
            raise
        writer = TraceWriter(self.store, patience=_write_patience())
        self._ended = "failed"
        heartbeat = None
        _RUNNING.add(self.id)
        try:
            finished = self.store.finished_runs(self.id)
            # a resumed job counts all its runs
            self.done = len(finished)
            self.errors = self.store.count_traces(self.id, stop_reason="error")
            self.status = "running"
            self.store.set_job_status(self.id, "running")
            self.store.claim_job(self.id)
            heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
            self._emit(JobStarted(self.id, self.total, self.done))
            # Fork servers of the isolated runtime made during the job die with it, run
            # processes included, before the job says it has ended.
            async with isolated_scope():
                await self._work(self._worker(backend, writer, self._pending_runs(finished)))
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            try:
                await self._finish(backend, writer)
            finally:
                _RUNNING.discard(self.id)

    def _worker(
        self, backend: Any, writer: TraceWriter, pending: Iterator[tuple[Task, str, int]]
    ) -> Callable[[], Any]:
        """One of the job's ``max_concurrent`` workers: they share ``pending``."""

        async def worker() -> None:
            for task, model, group_index in pending:
                on_step = self._step_emitter(task, model, group_index)
                trace = await backend.play(task, model, group_index, on_step)
                if trace.stop_reason == "cancelled":
                    continue  # not stored: a resume runs it again
                await writer.add(trace)
                self.done += 1
                self.errors += trace.stop_reason == "error"
                if self._watched:
                    self._emit(RunFinished(self.id, trace))

        return worker

    async def _finish(self, backend: Any, writer: TraceWriter) -> None:
        """Close the backend, store every buffered trace, then say how the job ended. It
        runs to its end even when the job is cancelled again meanwhile (a second Ctrl-C, a
        double-clicked Cancel): a job is never left "running" by an interrupted ending."""
        finishing = asyncio.ensure_future(self._close(backend, writer))
        interrupted = False
        while not finishing.done():
            try:
                await asyncio.shield(finishing)
            except asyncio.CancelledError:
                interrupted = True  # cancelled while ending: end first, then raise
        if finishing.exception() is not None:
            raise finishing.exception()
        if interrupted:
            raise asyncio.CancelledError

    async def _close(self, backend: Any, writer: TraceWriter) -> None:
        try:
            await backend.close()
            await writer.close()
            # Only now, with every run stored: a view that sees the job done and reads the
            # store then finds them all.
            self.status = self._ended
        except BaseException:  # TraceWriteError: never "finished" with a run missing
            self.status = "failed"
            raise
        finally:
            try:
                # retried as traces are: a busy moment at the end must not leave it "running"
                await _patiently(
                    self.store.set_job_status, self.id, self.status, patience=_write_patience()
                )
            except Exception:
                if self.status != "failed":  # the write error is the one to report
                    raise
            self._emit(JobFinished(self.id, self.status, self.done, self.errors))

    async def _heartbeat(self) -> None:
        """Tell later processes this job's process is alive (else it shows "interrupted")."""
        from workbench.store import HEARTBEAT_SECONDS

        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await asyncio.to_thread(self.store.job_heartbeat, self.id)
            except Exception:  # a busy database: the next beat will do
                pass

    async def _work(self, worker: Callable[[], Any]) -> None:
        """Run ``max_concurrent`` workers to the end; the job's status says how it ended.
        When one fails (or the job is cancelled) the others are stopped and waited for
        before the job ends: none plays on after its end, in a runtime already shut down."""
        workers = [asyncio.create_task(worker()) for _ in range(self.config.max_concurrent)]
        try:
            await asyncio.gather(*workers)
            self._ended = "finished"
        except BaseException as e:
            self._ended = "cancelled" if isinstance(e, asyncio.CancelledError) else "failed"
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    def _step_emitter(
        self, task: Task, model: str, group_index: int
    ) -> Callable[[int, dict[str, Any]], None] | None:
        """Announce a run; a callback for its steps, or None when nobody follows them."""
        if not self._watched_live:
            return None
        self._emit(RunStarted(self.id, task.slug, model, group_index))
        return lambda step, message, messages=(), usage=None: self._emit(
            Step(self.id, task.slug, model, group_index, step, message, messages, usage)
        )


def progress_bar(description: str = "evaluating") -> Callable[[Event], None]:
    """An ``on_event`` callback that draws a ``tqdm.auto`` bar (a widget in notebooks)."""
    from tqdm.auto import tqdm

    bar = None

    def on_event(event: Event) -> None:
        nonlocal bar
        if isinstance(event, JobStarted):
            bar = tqdm(total=event.total, initial=event.already_done, desc=description, unit="run")
        elif bar is not None and isinstance(event, RunFinished):
            bar.update(1)
        elif bar is not None and isinstance(event, JobFinished):
            bar.close()

    return on_event


# -- entry points -------------------------------------------------------------------------


def _as_taskset(taskset: Taskset | str | list[Task], store: Store) -> Taskset:
    if isinstance(taskset, Taskset):
        return taskset
    if isinstance(taskset, list | tuple):  # HUD: a plain list of tasks is a taskset
        return Taskset.of(taskset)
    return load_taskset(taskset, store=store)


def _check_models(models: Iterable[str], taskset: Taskset) -> None:
    """Resolve every model id now, so a typo fails before any run starts."""
    envs = {task.env: task for task in taskset}
    for model_id in models:
        model = get_model(model_id)
        if isinstance(model, ScriptedModel):
            for task in envs.values():
                model.policy_for(task)


def create_job(
    taskset: Taskset | str,
    models: str | list[str] | None = None,
    *,
    store: Store | None = None,
    config: RunConfig | None = None,
    **options: Any,
) -> Job:
    """Make and store a job without running it (``start`` and ``evaluate`` call this)."""
    store = store or get_store()
    if config is None:
        if isinstance(models, str):
            models = [models]
        config = RunConfig.of(models=models or [], **options)
    taskset = _as_taskset(taskset, store)
    if config.task_ids:
        taskset = taskset.select(config.task_ids)
    if not len(taskset):
        raise WorkbenchError(f"taskset '{taskset.name}' has no tasks to run")
    for task in taskset:
        task.validate_args()
    check_backend(config)  # e.g. no Ray installed: say so before the job exists
    for env in {task.env: task.environment() for task in taskset}.values():
        choose_runtime(env, config.runtime)  # a refused runtime fails before any run
    _check_models(config.models, taskset)
    job = Job(uuid.uuid4().hex[:12], taskset, config, store)
    store.create_job(job.id, taskset, config.model_dump_json(), job.total)
    return job


def start(
    taskset: Taskset | str,
    models: str | list[str] | None = None,
    *,
    store: Store | None = None,
    resume: str | None = None,
    **options: Any,
) -> Job:
    """Start a job in the background of the running event loop; returns it at once."""
    job = (
        load_job(resume, store=store)
        if resume
        else create_job(taskset, models, store=store, **options)
    )
    job._task = asyncio.get_running_loop().create_task(job._run(), name=f"workbench-job-{job.id}")
    job._task.add_done_callback(job._ended_early)
    return job


async def evaluate(
    taskset: Taskset | str | list[Task],
    models: str | list[str] | None = None,
    *,
    group_size: int | None = None,
    max_steps: int | None = None,
    max_concurrent: int | None = None,
    store: Store | None = None,
    on_event: Callable[[Event], None] | None = None,
    **options: Any,
) -> Job:
    """Evaluate models on a taskset and wait for the job to finish.

    Args:
        taskset: a Taskset, a list of tasks, a stored or shipped taskset name, or a task file.
        models: one model id or a list (``scripted:expert``, ``openai:gpt-4o-mini``, ...).
        group_size: runs per task per model (default 1).
        max_steps: model calls per run (default 10).
        max_concurrent: runs in flight at once (default 16).
        on_event: called with every event (progress bars, widgets).
        **options: the rest of :class:`RunConfig` (timeout, task_ids, temperature, ...).
    """
    job = create_job(
        taskset,
        models,
        store=store,
        group_size=group_size,
        max_steps=max_steps,
        max_concurrent=max_concurrent,
        **options,
    )
    return await run_job(job, on_event)


async def run_job(
    job: Job, on_event: Callable[[Event], None] | None = None, *, steps: bool = True
) -> Job:
    """Run a job made by ``create_job`` or ``load_job`` to the end, in this task."""
    if on_event is not None:
        job.subscribe(on_event, steps=steps)
    job._task = asyncio.current_task()
    await job._run()
    return job


def load_job(job_id: str, store: Store | None = None) -> Job:
    """A stored job: to read, or to resume (``run_job``, ``resume``)."""
    store = store or get_store()
    row = store.get_job(job_id)
    taskset = Taskset(row["taskset"], row["tasks"])
    job = Job(row["id"], taskset, RunConfig.model_validate(row["config"]), store)
    _check_models(job.config.models, taskset)
    return job


def _check_runnable(job: Job) -> None:
    """Refuse to run a job another process (or this one) is running: both would play the
    same missing runs and count them. (A job whose process died reads "interrupted".)"""
    import socket

    row = job.store.get_job(job.id)
    if row["status"] != "running" and job.id not in _RUNNING:
        return
    host, pid = job.store.job_owner(job.id) or ("?", 0)
    if job.id in _RUNNING or (host, pid) != (socket.gethostname(), os.getpid()):
        where = "this process" if job.id in _RUNNING else f"process {pid} on {host}"
        raise WorkbenchError(
            f"job {job.id} is running in {where}: stop it first (a job runs in one process "
            "at a time)"
        )


def _check_checkpoints(job: Job) -> None:
    """A fork named by its name plays its HEAD: if HEAD moved since the job's runs were
    played, resuming would mix two checkpoints in one job's numbers. Refuse, and say how."""
    forks = [m for m in job.config.models if ":" not in m and "@" not in m]
    if not forks:
        return
    from workbench.training import registry

    played = job.store.run_cells(job_id=job.id, models=forks, by=["model", "checkpoint"])
    for model in forks:
        found = registry.resolve(model, job.store)
        if found is None:
            continue
        head = found[1].id if found[1] is not None else None
        rows = played[played["model"] == model]["checkpoint"]
        before = {c if isinstance(c, str) else None for c in rows}
        if before and before != {head}:
            was = ", ".join(sorted(c or "the base" for c in before))
            raise WorkbenchError(
                f"job {job.id} played '{model}' at {was}; its HEAD is now "
                f"{head or 'the base'}: resuming would mix checkpoints in one job. Move HEAD "
                f"back (`workbench models head {model} --set CHECKPOINT`) to finish it, or start a "
                "new job"
            )


async def resume(
    job_id: str, *, store: Store | None = None, on_event: Callable[[Event], None] | None = None
) -> Job:
    """Finish an interrupted job: stored runs are kept, the missing ones run, none twice."""
    return await run_job(load_job(job_id, store=store), on_event)
