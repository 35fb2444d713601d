"""Jobs against a real HTTP server that fails the way model APIs do (issue 7).

Every job must end with every run accounted for (done, or error with a reason), transient
failures retried inside the run (so never a duplicate trace), other failures reported.
"""

import json
import time

import pytest
from conftest import TOY
from fault_server import TRANSIENT, FaultServer

import workbench
from workbench import models

MODEL = "faulty:toy-model"


@pytest.fixture
def server():
    with FaultServer() as s:
        yield s


def use_endpoint(home, server, **limits) -> str:
    """Point the endpoint ``faulty`` at the server, the way a user would: config.toml."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[endpoints.faulty]", f'base_url = "{server.url}"']
    lines += [f"{k} = {v}" for k, v in limits.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    models._CACHE.pop(MODEL, None)  # a model made for an earlier test's server
    return MODEL


def taskset(tmp_path, n: int, target: int = 2):
    path = tmp_path / "toy.jsonl"
    args = [{"target": target, "note": str(i)} for i in range(n)]
    rows = [{"env": TOY, "scenario": "count", "args": a} for a in args]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def assert_accounted(job) -> None:
    """Every run stored exactly once: done, or an error that says why."""
    df = job.traces_df()
    assert len(df) == job.total == job.store.count_traces(job.id)
    assert not df.duplicated(["task", "model", "group_index"]).any()
    assert set(df.stop_reason) <= {"done", "error", "timeout"}
    failed = df[df.stop_reason != "done"]
    assert failed.error_message.fillna("").str.len().gt(0).all()
    assert job.status == "finished"


async def test_transient_faults_are_retried_and_every_run_succeeds_once(
    server, workbench_home, tmp_path
):
    model = use_endpoint(workbench_home, server, max_retries=8, backoff=0.01, timeout=1.5)
    server.slow_seconds = 3.0  # past the 1.5 s request timeout: retried
    server.inject("429", "429", "429", "500", "503", "drop", "truncated", "slow")
    server.fault_rate = 0.2
    job = await workbench.evaluate(taskset(tmp_path, 20), model, max_concurrent=8)

    assert_accounted(job)
    df = job.traces_df()
    assert (df.stop_reason == "done").all() and (df.reward == 1.0).all()
    faulted = [r for r in server.requests if r["fault"] is not None]
    assert {"429", "500", "503", "drop", "truncated", "slow"} <= {r["fault"] for r in faulted}
    assert len(server.requests) == 20 * 3 + len(faulted)  # each fault cost one retry
    for trace in job.traces():  # a retry leaves no trace of itself in the conversation
        roles = [m["role"] for m in trace.messages]
        assert roles.count("assistant") == 3 and roles.count("tool") == 2
        assert trace.usage["total_tokens"] == 3 * 12


async def test_retry_after_is_honoured(server, workbench_home, tmp_path):
    model = use_endpoint(workbench_home, server, backoff=0.01)
    server.retry_after = "1"
    server.inject("429")
    job = await workbench.evaluate(taskset(tmp_path, 1, target=0), model)
    assert_accounted(job)
    assert job.traces()[0].stop_reason == "done"
    limited, retried = server.requests[0], server.requests[1]
    assert limited["fault"] == "429" and retried["fault"] is None
    assert retried["at"] - limited["at"] >= 0.95


async def test_other_errors_fail_the_run_at_once_with_a_clear_message(
    server, workbench_home, tmp_path
):
    model = use_endpoint(workbench_home, server, backoff=0.01)
    server.inject("400", "malformed")
    job = await workbench.evaluate(taskset(tmp_path, 2, target=0), model, max_concurrent=1)

    assert_accounted(job)
    df = job.traces_df().sort_values("started_at")
    assert list(df.stop_reason) == ["error", "error"]
    first, second = df.error_message
    assert "HTTP 400" in first and "model does not support tools" in first
    assert "malformed response" in second
    assert set(df.error_type) == {"ModelAPIError"}
    assert len(server.requests) == 2  # neither was retried


async def test_retries_stop_at_the_limit(server, workbench_home, tmp_path):
    model = use_endpoint(workbench_home, server, max_retries=3, backoff=0.01)
    server.fault_rate, server.faults = 1.0, ("500",)
    job = await workbench.evaluate(taskset(tmp_path, 1), model)
    assert_accounted(job)
    (trace,) = job.traces()
    assert trace.stop_reason == "error"
    assert "gave up after 4 attempts: HTTP 500" in trace.error_message
    assert len(server.requests) == 4


async def test_a_model_never_has_more_than_max_connections_in_flight(
    server, workbench_home, tmp_path
):
    model = use_endpoint(workbench_home, server, max_connections=3)
    server.latency = 0.1
    job = await workbench.evaluate(taskset(tmp_path, 12, target=1), model, max_concurrent=12)
    assert_accounted(job)
    assert server.peak_in_flight == 3


async def test_the_per_run_time_limit_ends_a_stuck_run(server, workbench_home, tmp_path):
    model = use_endpoint(workbench_home, server)
    server.slow_seconds = 30
    server.inject("slow")
    started = time.monotonic()
    job = await workbench.evaluate(taskset(tmp_path, 2, target=0), model, timeout=0.5)
    assert time.monotonic() - started < 25  # the stuck answer would take 30 s
    assert_accounted(job)
    assert sorted(job.traces_df().stop_reason) == ["done", "timeout"]


def test_backoff_grows_with_jitter_and_never_undercuts_retry_after():
    from workbench.models.openai_api import OpenAIModel

    model = OpenAIModel("x:y", "y", base_url="http://127.0.0.1:9/v1", backoff=0.5)
    delays = [model.retry_delay(4) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays) and len(set(delays)) > 100  # jittered
    assert max(delays) > 4  # and grown: 0.5 * 2**4
    assert all(model.retry_delay(0, retry_after=3) >= 3 for _ in range(50))
    assert set(TRANSIENT) >= {"429", "500", "drop", "truncated"}
