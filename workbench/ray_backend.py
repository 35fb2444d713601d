"""The Ray backend: a job's runs execute on Ray actors; traces stream back to the driver.

```python
job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"],
                               group_size=8, backend="ray")            # a local Ray
job = await workbench.evaluate(..., backend="ray", address="ray://head:10001")  # a cluster
```

The driver (the process that made the job) keeps the job: it hands out runs, bounds how
many are in flight (``max_concurrent``), writes every trace to its store and emits the
same events as the local backend, so progress bars, trace viewers and the leaderboard
follow a Ray job live. The actors only play runs: each is an async actor that runs many
runs at once on its own event loop, keeps one :class:`~workbench.agent.Agent` per model
(a local model is loaded once per actor) and streams each run back as a Ray generator:
its steps as they happen, then its trace (one plain call when nobody follows the steps).

A worker that dies mid-run (killed, out of memory, a crashing extension) costs that run
one retry on a restarted actor; a second death records the run as an ``error`` trace that
says so. The job itself always goes on.

Without an address a local Ray starts on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
is set before Ray is imported, or Ray binds to the machine's outward address) and stops
when the process ends. API keys are not shipped to the actors: on a cluster, set them (or
``config.toml``) on the nodes, so they never pass through Ray's task specs or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from workbench.backends import OnStep, error_trace, make_agent, play
from workbench.config import home
from workbench.errors import WorkbenchError
from workbench.run_config import RunConfig

if TYPE_CHECKING:
    from workbench.tasks import Task
    from workbench.traces import Trace

# A run whose worker died is tried once more; the second death is an error trace.
ATTEMPTS = 2
# How long a retry waits for a restarted actor before the run is an error trace: a bound on
# a hang, not a speed (a loaded machine takes tens of seconds to start a worker).
RESTART_WAIT = 300.0
# Times a run is sent again to an actor that was restarting (unavailable, not dead).
MAX_UNAVAILABLE = 5
# Most runs in one call to an actor (see _Batcher).
MAX_BATCH = 16
# Runs one actor may hold at once; the driver's max_concurrent is the real bound.
ACTOR_CONCURRENCY = 1000
# What an actor needs from the driver's environment to find the same store and files.
SHARED_ENV = ("WORKBENCH_HOME", "WORKBENCH_DATABASE_URL")


def import_ray():
    """Ray, imported so that a local cluster binds to 127.0.0.1; a clear error without it."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise WorkbenchError(
            "the ray backend needs Ray: pip install 'agent-research-workbench[ray]'"
        ) from None
    return ray


class RunActor:
    """Plays runs inside a Ray worker process (wrapped by ``ray.remote`` in :func:`connect`)."""

    def __init__(self, environ: dict[str, str]):
        os.environ.update(environ)
        self._agents: dict[tuple[str, str], Any] = {}
        self._configs: dict[str, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def _prepare(self, task: dict[str, Any], model: str, config: str):
        from workbench.tasks import Task

        run_config = self._configs.get(config)
        if run_config is None:
            run_config = self._configs[config] = RunConfig.model_validate_json(config)
        agent = self._agents.get((model, config))
        if agent is None:
            agent = self._agents[model, config] = make_agent(model, run_config)
        return agent, Task.model_validate(task), run_config

    async def run(self, task, model, group_index, job_id, taskset, config) -> dict[str, Any]:
        """Play one run; its trace as a dict."""
        agent, task, run_config = self._prepare(task, model, config)
        trace = await play(
            agent, task, group_index, job_id=job_id, taskset=taskset, config=run_config
        )
        return trace.model_dump(mode="json")

    async def run_batch(self, runs: list[tuple]) -> list[Any]:
        """Play several runs at once; each one's trace dict, or the exception it raised."""
        return await asyncio.gather(*(self.run(*args) for args in runs), return_exceptions=True)

    async def stream(self, task, model, group_index, job_id, taskset, config):
        """Play one run; yields ``("step", n, message)`` as it goes, then ``("trace", dict)``."""
        agent, task, run_config = self._prepare(task, model, config)
        steps: asyncio.Queue = asyncio.Queue()
        playing = asyncio.ensure_future(
            play(
                agent,
                task,
                group_index,
                job_id=job_id,
                taskset=taskset,
                config=run_config,
                on_step=lambda n, message, new=(), usage=None: steps.put_nowait(
                    ("step", n, message, new, usage)
                ),
            )
        )
        try:
            while not playing.done() or not steps.empty():
                if steps.empty():
                    waiter = asyncio.ensure_future(steps.get())
                    await asyncio.wait({waiter, playing}, return_when=asyncio.FIRST_COMPLETED)
                    if not waiter.done():
                        waiter.cancel()
                        continue
                    item = waiter.result()
                else:
                    item = steps.get_nowait()
                yield item
            yield ("trace", playing.result().model_dump(mode="json"))
        finally:
            playing.cancel()


class RayBackend:
    """The ``ray`` backend (:class:`workbench.backends.Backend`): a job's runs on the actors
    of one cluster's pool."""

    def __init__(self, pool: RayPool, job_id: str, taskset: str, config: RunConfig):
        self.pool, self.job_id, self.taskset, self.config = pool, job_id, taskset, config
        self._config_json = config.model_dump_json()

    @classmethod
    async def open(cls, job_id: str, taskset: str, config: RunConfig) -> RayBackend:
        return cls(await connect(config.address, config.workers), job_id, taskset, config)

    async def play(
        self, task: Task, model: str, group_index: int, on_step: OnStep | None = None
    ) -> Trace:
        return await self.pool.run(self, task, model, group_index, on_step)

    async def close(self) -> None:
        pass  # the pool stays up for the next job on this cluster


class RayPool:
    """The driver's side: actors on one cluster, and how runs are handed to them."""

    def __init__(self, ray, actors: list, key: tuple):
        self.ray = ray
        self.actors = actors
        self.key = key
        self.in_flight = [0] * len(actors)
        self._batches = [_Batcher(actor) for actor in actors]

    async def run(
        self, job: RayBackend, task: Task, model: str, group_index: int, on_step: OnStep | None
    ) -> Trace:
        """Play one run of ``job`` on the least busy actor; retry once if its worker dies."""
        from workbench.traces import Trace

        ray = self.ray
        payload = task.model_dump(mode="json")
        config = job._config_json
        deaths, unavailable, avoid = 0, 0, None
        while True:
            index = self._pick(avoid)
            if deaths and not await self._ready(index):
                error = WorkerDied(f"no Ray worker came back within {RESTART_WAIT:.0f} s")
                break
            self.in_flight[index] += 1
            args = (payload, model, group_index, job.job_id, job.taskset, config)
            actor = self.actors[index]
            call = None
            try:
                if on_step is None:  # nobody follows the steps: runs go in batches
                    size = max(
                        1, min(MAX_BATCH, job.config.max_concurrent // (4 * len(self.actors)))
                    )
                    return Trace.model_validate(await self._batches[index].submit(args, size))
                call = actor.stream.remote(*args)
                async for ref in call:
                    item = await ref
                    if item[0] == "step":
                        on_step(*item[1:])
                    else:
                        return Trace.model_validate(item[1])
                raise RuntimeError("the Ray actor ended the run without a trace")
            except ray.exceptions.ActorUnavailableError as e:
                # The actor is restarting (an earlier run's worker died): not this run's
                # death. Wait for it and send the run again, a bounded number of times.
                unavailable += 1
                error = WorkerDied(f"the Ray worker for this run stayed away: {_first_line(e)}")
                if unavailable > MAX_UNAVAILABLE or not await self._ready(index):
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                deaths += 1
                avoid = index
                error = WorkerDied(f"the Ray worker running this run died: {_first_line(e)}")
                if deaths >= ATTEMPTS:
                    break
            except asyncio.CancelledError:
                if call is not None:
                    with contextlib.suppress(Exception):
                        ray.cancel(call)
                raise
            except Exception as e:  # the actor raised: nothing a retry would change
                error = e.cause if isinstance(e, ray.exceptions.RayTaskError) and e.cause else e
                break
            finally:
                self.in_flight[index] -= 1
        return error_trace(
            task, model, group_index, job_id=job.job_id, taskset=job.taskset, error=error
        )

    async def _ready(self, index: int) -> bool:
        """Wait until actor ``index`` answers (it restarts after its worker died)."""
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            try:
                await self.actors[index].pid.remote()
                return True
            except self.ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.1)

    def _pick(self, avoid: int | None) -> int:
        """The actor with the fewest runs in flight (not ``avoid``, whose worker just died)."""
        candidates = [i for i in range(len(self.actors)) if i != avoid] or [avoid]
        return min(candidates, key=self.in_flight.__getitem__)

    def pids(self) -> list[int]:
        """The worker processes behind the actors (for tests and debugging)."""
        return self.ray.get([actor.pid.remote() for actor in self.actors])

    def kill(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


class _Batcher:
    """Runs submitted to one actor in the same turn of the event loop go in one call.

    A Ray call costs the driver about half a millisecond whatever it carries; a batch of
    runs costs the same as one, which is what lets a 2-core driver keep hundreds of runs in
    flight. A batch answers when its last run ends, so batches stay small (``size``).
    """

    def __init__(self, actor):
        self.actor = actor
        self.waiting: list[tuple[tuple, asyncio.Future]] = []
        self.size = MAX_BATCH
        self._scheduled = False

    def submit(self, args: tuple, size: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((args, future))
        self.size = size
        if len(self.waiting) >= size:
            self._send()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send)
        return future

    def _send(self) -> None:
        self._scheduled = False
        while self.waiting:
            batch, self.waiting = self.waiting[: self.size], self.waiting[self.size :]
            batch = [(args, future) for args, future in batch if not future.cancelled()]
            if batch:
                asyncio.ensure_future(self._play([args for args, _ in batch], batch))

    async def _play(self, runs: list[tuple], batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            results = await self.actor.run_batch.remote(runs)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as e:  # the worker died, or the call failed as a whole
            results = [e] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


class WorkerDied(RuntimeError):
    """A Ray worker process died while it was playing the run (twice)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- connecting ---------------------------------------------------------------------------

_pools: dict[str | None, RayPool] = {}  # by cluster address
_lock = threading.Lock()
# Ray is started from one thread that lives as long as the process: a local Ray's processes
# die with the *thread* that started them (PR_SET_PDEATHSIG), so not asyncio's pool threads.
_starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-ray")


async def connect(address: str | None = None, workers: int | None = None) -> RayPool:
    """The actor pool for this cluster and this store (started on first use, then reused).

    Starting a local Ray takes seconds; it happens off the event loop, so a notebook stays live.
    """
    return await asyncio.get_running_loop().run_in_executor(_starter, _connect, address, workers)


def _connect(address: str | None, workers: int | None) -> RayPool:
    ray = import_ray()
    environ = {name: os.environ[name] for name in SHARED_ENV if name in os.environ}
    environ["WORKBENCH_HOME"] = str(home())  # absolute: a worker's directory may differ
    with _lock:
        if not ray.is_initialized():
            _init(ray, address)
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        key = (count, tuple(sorted(environ.items())))
        pool = _pools.get(address)
        if pool is not None and pool.key != key:  # another store or size: fresh actors
            pool.kill()
            pool = None
        if pool is None:
            remote = ray.remote(RunActor).options(
                num_cpus=0,
                max_restarts=-1,
                max_concurrency=ACTOR_CONCURRENCY,
                scheduling_strategy="SPREAD",
            )
            actors = [remote.remote(environ) for _ in range(count)]
            pool = _pools[address] = RayPool(ray, actors, key)
            pool.pids()  # wait until every actor is up, so the first runs don't time out
    return pool


def _init(ray, address: str | None) -> None:
    if address is None:
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",  # not its token and thread notices on every eval
        )
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        except ConnectionError as e:
            raise WorkbenchError(f"could not reach the Ray cluster at {address}: {e}") from e


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens there."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise WorkbenchError(f"could not reach the Ray cluster at {address}: {e}") from None


def shutdown() -> None:
    """Kill the actors and disconnect (a local Ray started here stops)."""
    ray = import_ray()
    with _lock:
        for pool in _pools.values():
            pool.kill()
        _pools.clear()
        if ray.is_initialized():
            ray.shutdown()
