"""Persistence: tasksets, jobs and traces in SQLite (WAL) or PostgreSQL, via SQLAlchemy Core.

The default database is ``$WORKBENCH_HOME/workbench.db`` (``./.workbench/``);
``WORKBENCH_DATABASE_URL`` or ``Store(url)`` selects another, e.g. ``postgresql+psycopg://...``.
A trace is unique per (job, task, model, group index): writing one twice keeps the first, so
a resumed or retried job never duplicates a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from workbench import config
from workbench.errors import NotFoundError, WorkbenchError
from workbench.tasks import Task, Taskset
from workbench.traces import SUCCESS_THRESHOLD, ToolCallRecord, Trace, json_default

metadata = sa.MetaData()

tasksets_table = sa.Table(
    "tasksets",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tasks", sa.Text, nullable=False),  # JSON list of task dicts
    sa.Column("created_at", sa.Float, nullable=False),
)

jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("taskset", sa.String, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON RunConfig
    sa.Column("tasks", sa.Text, nullable=False),  # JSON snapshot: a job resumes without its file
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
)

# Which process runs a job, so that any later process can tell a running job from one whose
# process died (SIGKILL, a crash, a reboot): its status then reads "interrupted".
job_owners_table = sa.Table(
    "job_owners",
    metadata,
    sa.Column("job_id", sa.String, primary_key=True),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("pid_started", sa.String, nullable=False),  # boot id + start time of the pid
    sa.Column("heartbeat", sa.Float, nullable=False),
)
HEARTBEAT_SECONDS = 20.0  # a job's process says it is alive this often
_STALE_SECONDS = 6 * HEARTBEAT_SECONDS  # ... and is taken for dead after this long silent


def _process_token(pid: int) -> str:
    """What tells this pid's process from a later one with the same pid: boot id + start."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        return f"{boot}:{started}"
    except (OSError, IndexError):
        return ""  # not Linux: the heartbeat decides


def _owner_alive(row) -> bool:
    import socket

    if row.host == socket.gethostname() and row.pid_started:
        return _process_token(row.pid) == row.pid_started
    return time.time() - row.heartbeat < _STALE_SECONDS


traces_table = sa.Table(
    "traces",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("job_id", sa.String, index=True),
    sa.Column("taskset", sa.String, index=True),
    sa.Column("task", sa.String, nullable=False),
    sa.Column("task_id", sa.String),
    sa.Column("env", sa.String),
    sa.Column("scenario", sa.String),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("checkpoint", sa.String),
    sa.Column("group_index", sa.Integer, nullable=False),
    sa.Column("reward", sa.Float, nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("stop_reason", sa.String, nullable=False),
    sa.Column("error_type", sa.String),
    sa.Column("error_message", sa.Text),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("data", sa.Text, nullable=False),  # JSON: args, messages, tools, tool_calls, info
    sa.UniqueConstraint("job_id", "task", "model", "group_index", name="one_trace_per_run"),
)

# Leaderboards are sums over these columns: with them in an index, SQL aggregates a
# taskset's or a job's runs without reading the table (a million runs in a fraction of a s).
_CELL_INPUTS = ("model", "task", "stop_reason", "success", "reward")
LEADERBOARD_INDEXES = [
    sa.Index("ix_traces_cells_by_taskset", traces_table.c.taskset, *_CELL_INPUTS),
    sa.Index("ix_traces_cells_by_job", traces_table.c.job_id, *_CELL_INPUTS),
]

# The model registry: forks of base models, and each fork's tree of checkpoints.
models_table = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("base", sa.String, nullable=False),
    sa.Column("head", sa.String),  # a checkpoint id; None: the base model itself
    sa.Column("created_at", sa.Float, nullable=False),
)

checkpoints_table = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("model", sa.String, nullable=False, index=True),
    sa.Column("parent", sa.String),  # None: trained from the base model
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),  # JSON: data, hyper-parameters, metrics…
    sa.Column("evals", sa.Text, nullable=False, default="{}"),  # JSON: taskset -> results
)

training_steps_table = sa.Table(
    "training_steps",
    metadata,
    sa.Column("run", sa.String, nullable=False, index=True),  # the checkpoint id it will get
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Float),
    sa.Column("loss", sa.Float),
    sa.Column("learning_rate", sa.Float),
    sa.Column("at", sa.Float, nullable=False),
)

# Per-step figures beyond the loss (GRPO's reward, KL, clip ratio ...): one row per
# (run, step, name), so a new method's figures need no new column.
training_step_metrics_table = sa.Table(
    "training_step_metrics",
    metadata,
    sa.Column("run", sa.String, nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("value", sa.Float),
)


def cell_keys(by_cols: list[str]) -> list[str]:
    """The columns runs are summed by for statistics: ``by`` and always the task (runs of
    one task are one cluster: see :mod:`workbench.leaderboard`)."""
    return by_cols if "task" in by_cols else [*by_cols, "task"]


# Columns for statistics: everything but the conversation.
SUMMARY_COLUMNS = [c.name for c in traces_table.columns if c.name != "data"]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
    # How long a write waits for another process's lock before it fails (and the trace
    # writer retries it); WORKBENCH_SQLITE_BUSY_MS for tests and very busy machines.
    cursor.execute(f"PRAGMA busy_timeout={int(os.environ.get('WORKBENCH_SQLITE_BUSY_MS', 10000))}")
    cursor.close()


def _storable(text: str) -> str:
    """Text a database can hold: a lone surrogate (a file name that is not UTF-8, decoded by
    ``os.fsdecode``) has no UTF-8 form and would fail the whole batch it is written with.
    It becomes its escape (``\\udce9``); any other text is left as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _json_text(data: Any) -> str:
    """JSON as UTF-8 text; lone surrogates escaped the JSON way (``\\udce9``), which
    ``json.loads`` reads back as they were: the conversation is kept exactly."""
    text = json.dumps(data, default=json_default, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, default=json_default)  # ASCII: every non-ASCII character escaped
    return text


def trace_row(trace: Trace) -> dict[str, Any]:
    data = {
        "args": trace.args,
        "messages": trace.messages,
        "tools": trace.tools,
        "tool_calls": [t.model_dump() for t in trace.tool_calls],
        "info": trace.info,
        "usage": trace.usage,
        "finish_reasons": trace.finish_reasons,
    }
    return {
        "id": trace.id,
        "job_id": trace.job_id,
        "taskset": trace.taskset,
        "task": trace.task,
        "task_id": trace.task_id,
        "env": trace.env,
        "scenario": trace.scenario,
        "model": trace.model,
        "checkpoint": trace.checkpoint,
        "group_index": trace.group_index,
        "reward": trace.reward,
        "success": trace.success,
        "stop_reason": trace.stop_reason,
        "error_type": trace.error_type,
        "error_message": None if trace.error_message is None else _storable(trace.error_message),
        "steps": trace.steps,
        "prompt_tokens": trace.usage.get("prompt_tokens"),
        "completion_tokens": trace.usage.get("completion_tokens"),
        "started_at": trace.started_at,
        "ended_at": trace.ended_at,
        "data": _json_text(data),
    }


def row_trace(row: Any) -> Trace:
    m = dict(row._mapping)
    data = json.loads(m.pop("data"))
    for name in ("success", "prompt_tokens", "completion_tokens"):
        m.pop(name, None)
    return Trace(
        **m,
        args=data.get("args") or {},
        messages=data.get("messages") or [],
        tools=data.get("tools") or [],
        tool_calls=[ToolCallRecord(**t) for t in data.get("tool_calls") or []],
        info=data.get("info") or {},
        usage=data.get("usage") or {},
        finish_reasons=data.get("finish_reasons") or [],
    )


class Store:
    """Tasksets, jobs and traces in one database."""

    def __init__(self, url: str | None = None):
        self.url = url or config.database_url()
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except ImportError as e:  # a PostgreSQL URL without its driver
            from workbench.errors import missing_extra

            raise missing_extra(
                "postgres", f"the store at {self.url.split(':')[0]}://…", e
            ) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        for index in LEADERBOARD_INDEXES:  # a database made before they existed gets them
            index.create(self.engine, checkfirst=True)
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._lock = threading.Lock()
        self._pinned = threading.local()  # this thread's snapshot connection (snapshot())

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- reading at one moment -----------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads (of this thread) inside the block see the database as of one moment.

        A view that sums stored runs in one query and lists them in another would otherwise
        miss a run committed between the two, or count it twice. One read transaction:
        SQLite in WAL mode keeps its snapshot from the first read; PostgreSQL at REPEATABLE
        READ. Nested blocks share the outer one's."""
        if getattr(self._pinned, "conn", None) is not None:
            yield
            return
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                # pysqlite starts transactions only before writes: begin one by hand
                conn.exec_driver_sql("BEGIN")
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.begin()
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None
                conn.rollback()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.engine.connect() as conn:
            yield conn

    # -- tasksets -------------------------------------------------------------------------

    def save_taskset(self, taskset: Taskset) -> None:
        from workbench.tasks import builtin_tasksets

        if taskset.name in builtin_tasksets():  # the leaderboard would mix the two
            raise WorkbenchError(
                f"'{taskset.name}' is the name of a shipped taskset: store it under another "
                "name (--name)"
            )
        row = {
            "name": taskset.name,
            "description": taskset.description,
            "tasks": json.dumps([t.to_dict() for t in taskset]),
            "created_at": time.time(),
        }
        stmt = self._insert(tasksets_table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"description": row["description"], "tasks": row["tasks"]},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def load_taskset(self, name: str) -> Taskset | None:
        with self._reading() as conn:
            row = conn.execute(
                sa.select(tasksets_table).where(tasksets_table.c.name == name)
            ).first()
        if row is None:
            return None
        tasks = [Task.model_validate(t) for t in json.loads(row.tasks)]
        return Taskset(row.name, tasks, row.description)

    def list_tasksets(self) -> dict[str, int]:
        """Stored taskset names -> number of tasks."""
        with self._reading() as conn:
            rows = conn.execute(sa.select(tasksets_table.c.name, tasksets_table.c.tasks))
            return {r.name: len(json.loads(r.tasks)) for r in rows}

    def delete_taskset(self, name: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(tasksets_table.delete().where(tasksets_table.c.name == name))
        return result.rowcount > 0

    # -- jobs -----------------------------------------------------------------------------

    def create_job(self, job_id: str, taskset: Taskset, config_json: str, total: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                jobs_table.insert().values(
                    id=job_id,
                    taskset=taskset.name,
                    status="running",
                    total=total,
                    config=config_json,
                    tasks=json.dumps([t.to_dict() for t in taskset]),
                    created_at=time.time(),
                )
            )
        self.claim_job(job_id)

    def claim_job(self, job_id: str) -> None:
        """Record that this process runs the job (a resume by another process re-claims it)."""
        import socket

        row = {
            "job_id": job_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": _process_token(os.getpid()),
            "heartbeat": time.time(),
        }
        stmt = self._insert(job_owners_table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["job_id"], set_={k: v for k, v in row.items() if k != "job_id"}
        )
        with self._lock, self.engine.begin() as conn:
            conn.execute(stmt)

    def job_owner(self, job_id: str) -> tuple[str, int] | None:
        """(host, pid) of the process that last claimed the job, if any."""
        o = job_owners_table
        with self._reading() as conn:
            row = conn.execute(sa.select(o.c.host, o.c.pid).where(o.c.job_id == job_id)).first()
        return None if row is None else (row.host, row.pid)

    def job_heartbeat(self, job_id: str) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                job_owners_table.update()
                .where(job_owners_table.c.job_id == job_id)
                .values(heartbeat=time.time())
            )

    def _interrupted(self, job_ids: list[str]) -> set[str]:
        """Of these "running" jobs, those whose process is gone."""
        if not job_ids:
            return set()
        o = job_owners_table
        with self._reading() as conn:
            owners = {
                r.job_id: r for r in conn.execute(sa.select(o).where(o.c.job_id.in_(job_ids)))
            }
        return {j for j in job_ids if j not in owners or not _owner_alive(owners[j])}

    def set_job_status(self, job_id: str, status: str) -> None:
        finished = None if status == "running" else time.time()
        with self.engine.begin() as conn:
            conn.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id)
                .values(status=status, finished_at=finished)
            )

    def _by_id_prefix(self, table: sa.Table, prefix: str, kind: str, hint: str):
        """The one row whose id starts with ``prefix`` (ids are long; people type a few)."""
        with self._reading() as conn:
            rows = conn.execute(
                # autoescape: a % or _ the user typed is a character, not a wildcard
                sa.select(table).where(table.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).all()
        if not rows:
            raise NotFoundError(f"no {kind} '{prefix}' ({hint})")
        if len(rows) > 1:
            raise WorkbenchError(f"{kind} id '{prefix}' is ambiguous: give more characters")
        return rows[0]

    def get_job(self, job_id: str) -> dict[str, Any]:
        """A job's row (config and tasks parsed); accepts a unique id prefix."""
        row = self._by_id_prefix(jobs_table, job_id, "job", "see `workbench jobs`")
        job = dict(row._mapping)
        if job["status"] == "running" and self._interrupted([job["id"]]):
            job["status"] = "interrupted"
        job["config"] = json.loads(job["config"])
        job["tasks"] = [Task.model_validate(t) for t in json.loads(job["tasks"])]
        return job

    def jobs(self) -> pd.DataFrame:
        """Every job with its progress: done runs, errors, mean reward."""
        t = traces_table
        counts = (
            sa.select(
                t.c.job_id,
                sa.func.count().label("done"),
                sa.func.sum(sa.case((t.c.stop_reason == "error", 1), else_=0)).label("errors"),
                sa.func.avg(t.c.reward).label("mean_reward"),
            )
            .group_by(t.c.job_id)
            .subquery()
        )
        j = jobs_table
        query = (
            sa.select(
                j.c.id,
                j.c.taskset,
                j.c.status,
                j.c.total,
                sa.func.coalesce(counts.c.done, 0).label("done"),
                sa.func.coalesce(counts.c.errors, 0).label("errors"),
                counts.c.mean_reward,
                j.c.config,
                j.c.created_at,
                j.c.finished_at,
            )
            .select_from(j.outerjoin(counts, counts.c.job_id == j.c.id))
            .order_by(j.c.created_at.desc())
        )
        with self._reading() as conn:
            df = pd.DataFrame(conn.execute(query).mappings().all())
        if df.empty:
            return pd.DataFrame(
                columns=[
                    "id",
                    "taskset",
                    "status",
                    "total",
                    "done",
                    "errors",
                    "mean_reward",
                    "models",
                    "created_at",
                    "finished_at",
                ]
            )
        df["models"] = [", ".join(json.loads(c)["models"]) for c in df.pop("config")]
        gone = self._interrupted(df.loc[df["status"] == "running", "id"].tolist())
        df.loc[df["id"].isin(gone), "status"] = "interrupted"  # its process died
        for col in ("created_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], unit="s")
        return df

    # -- traces ---------------------------------------------------------------------------

    def add_traces(self, traces: Iterable[Trace]) -> int:
        """Insert traces in one transaction; a run already stored is kept, not duplicated."""
        rows = [trace_row(t) for t in traces]
        if not rows:
            return 0
        stmt = self._insert(traces_table).on_conflict_do_nothing()
        with self._lock, self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def add_trace(self, trace: Trace) -> None:
        self.add_traces([trace])

    def finished_runs(self, job_id: str) -> set[tuple[str, str, int]]:
        """(task, model, group index) of every run of the job already stored."""
        t = traces_table
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(t.c.task, t.c.model, t.c.group_index).where(
                    t.c.job_id == job_id, t.c.stop_reason != "cancelled"
                )
            )
            return {(r.task, r.model, r.group_index) for r in rows}

    def get_trace(self, trace_id: str) -> Trace:
        """A trace by id or unique id prefix."""
        hint = "ids are listed by `workbench jobs JOB`"
        return row_trace(self._by_id_prefix(traces_table, trace_id, "trace", hint))

    def traces(
        self,
        job_id: str | None = None,
        taskset: str | None = None,
        models: Iterable[str] | None = None,
        min_reward: float | None = None,
        limit: int | None = None,
    ) -> list[Trace]:
        """Full traces (with conversations), oldest first."""
        query = self._filtered(sa.select(traces_table), job_id, taskset, models, min_reward)
        query = query.order_by(traces_table.c.started_at)
        if limit:
            query = query.limit(limit)
        with self._reading() as conn:
            return [row_trace(r) for r in conn.execute(query)]

    def traces_df(
        self,
        job_id: str | None = None,
        taskset: str | None = None,
        models: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """One row per run without the conversation: for leaderboards and analysis."""
        cols = [traces_table.c[name] for name in SUMMARY_COLUMNS]
        query = self._filtered(sa.select(*cols), job_id, taskset, models, None)
        with self._reading() as conn:
            result = conn.execute(query)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if not df.empty:
            df["success"] = df["success"].astype(bool)
        return df

    def run_cells(
        self,
        job_id: str | None = None,
        taskset: str | None = None,
        models: Iterable[str] | None = None,
        by: str | list[str] = "model",
    ) -> pd.DataFrame:
        """:func:`workbench.leaderboard.run_cells` computed by the database (GROUP BY)."""
        by_cols = [by] if isinstance(by, str) else list(by)
        t = traces_table
        unknown = [c for c in by_cols if c not in SUMMARY_COLUMNS]
        if unknown:
            raise WorkbenchError(f"cannot group runs by {unknown}: use trace columns")
        keys = [t.c[c] for c in cell_keys(by_cols)]
        error = t.c.stop_reason == "error"
        success = t.c.success & ~error
        timeout = (t.c.stop_reason == "timeout") & ~success  # one that had succeeded counts so
        counted = sa.case((error, 0.0), else_=t.c.reward)
        query = sa.select(
            *keys,
            sa.func.count().label("runs"),
            sa.func.sum(sa.case((success, 1), else_=0)).label("successes"),
            sa.func.sum(sa.case((error, 1), else_=0)).label("errors"),
            sa.func.sum(sa.case((timeout, 1), else_=0)).label("timeouts"),
            sa.func.sum(counted).label("reward_sum"),
            sa.func.sum(counted * counted).label("reward_sq"),
        ).where(t.c.stop_reason != "cancelled")
        query = self._filtered(query, job_id, taskset, models, None).group_by(*keys)
        with self._reading() as conn:
            result = conn.execute(query)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def search_runs(self, job_id: str, text: str) -> list[tuple[str, str, int]]:
        """(task, model, group index) of the job's runs whose conversation contains ``text``
        (any case), searched in the database: no conversation is loaded to search it."""
        t = traces_table
        if self.engine.dialect.name == "sqlite":
            messages = sa.type_coerce(t.c.data, sa.JSON)["messages"].as_string()
        else:  # PostgreSQL: the column is text holding JSON
            messages = sa.cast(t.c.data, sa.JSON)["messages"].as_string()
        query = sa.select(t.c.task, t.c.model, t.c.group_index).where(
            t.c.job_id == job_id, sa.func.lower(messages).contains(text.lower(), autoescape=True)
        )
        with self._reading() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def count_traces(self, job_id: str | None = None, stop_reason: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(traces_table)
        if job_id is not None:
            query = query.where(traces_table.c.job_id == job_id)
        if stop_reason is not None:
            query = query.where(traces_table.c.stop_reason == stop_reason)
        with self._reading() as conn:
            return conn.execute(query).scalar_one()

    # -- the model registry (workbench.training.registry): forks and checkpoint trees ------

    def add_fork(self, name: str, base: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(models_table.insert().values(name=name, base=base, created_at=time.time()))

    def fork_row(self, name: str) -> sa.Row | None:
        """A fork's row (name, base, head, created_at), or None."""
        with self._reading() as conn:
            return conn.execute(sa.select(models_table).where(models_table.c.name == name)).first()

    def fork_rows(self) -> list[sa.Row]:
        """Every fork's row, oldest first."""
        with self._reading() as conn:
            query = sa.select(models_table).order_by(models_table.c.created_at)
            return list(conn.execute(query))

    def set_head(self, name: str, checkpoint_id: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                models_table.update().where(models_table.c.name == name).values(head=checkpoint_id)
            )

    def checkpoints(self, model: str) -> list[sa.Row]:
        """A fork's checkpoint rows, oldest first (``manifest`` and ``evals`` are JSON)."""
        t = checkpoints_table
        with self._reading() as conn:
            query = sa.select(t).where(t.c.model == model).order_by(t.c.created_at)
            return list(conn.execute(query))

    def add_checkpoint(self, row: dict[str, Any], move_head: bool) -> None:
        """Record a finished checkpoint (and move its fork's HEAD to it) in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(checkpoints_table.insert().values(row))
            if move_head:
                conn.execute(
                    models_table.update()
                    .where(models_table.c.name == row["model"])
                    .values(head=row["id"])
                )

    def set_checkpoint_evals(self, checkpoint_id: str, evals: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                checkpoints_table.update()
                .where(checkpoints_table.c.id == checkpoint_id)
                .values(evals=json.dumps(evals, default=str))
            )

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(checkpoints_table.delete().where(checkpoints_table.c.id == checkpoint_id))

    # -- training steps (live curves) ------------------------------------------------------

    def add_training_step(self, row: dict[str, Any], extra: dict[str, float]) -> None:
        """One optimizer step: ``row`` (run, step, epoch, loss, learning_rate, at) and any
        further figures by name (GRPO's reward, KL ...), in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(training_steps_table.insert().values(row))
            if extra:
                conn.execute(
                    training_step_metrics_table.insert(),
                    [{"run": row["run"], "step": row["step"], "name": k, "value": v}
                     for k, v in extra.items()],
                )  # fmt: skip

    def training_steps(self, run: str) -> pd.DataFrame:
        """A training run's steps, one row each, with its further figures as columns."""
        t, m = training_steps_table, training_step_metrics_table
        with self._reading() as conn:
            query = sa.select(t).where(t.c.run == run).order_by(t.c.step)
            steps = pd.DataFrame(conn.execute(query).mappings().all())
            if steps.empty:
                return steps
            query = sa.select(m.c.step, m.c.name, m.c.value).where(m.c.run == run)
            extra = pd.DataFrame(conn.execute(query).mappings().all())
        if extra.empty:
            return steps
        wide = extra.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        return steps.merge(wide.reset_index(), on="step", how="left")

    @staticmethod
    def _filtered(query, job_id, taskset, models, min_reward):
        t = traces_table
        if job_id is not None:
            query = query.where(t.c.job_id == job_id)
        if taskset is not None:
            query = query.where(t.c.taskset == taskset)
        if models is not None:
            query = query.where(t.c.model.in_(list(models)))
        if min_reward is not None:
            query = query.where(t.c.reward >= min_reward)
        return query


_STORES: dict[str, Store] = {}


def get_store(url: str | None = None) -> Store:
    """The store for a URL (default: from the environment), opened once per process."""
    url = url or config.database_url()
    if url not in _STORES:
        _STORES[url] = Store(url)
    return _STORES[url]


__all__ = ["Store", "get_store", "SUCCESS_THRESHOLD"]
