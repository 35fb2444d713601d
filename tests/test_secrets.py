"""API keys never leave the SDK client: not into traces, the database, logs or exports."""

import json
import os
import sqlite3

import pytest
from conftest import TOY, run_cli
from fault_server import FaultServer

ENV_KEY = "sk-env-5f1c0e7d9a3b4c21e6f8"
CONFIG_KEY = "sk-config-8b2a7c4e1d9f0356a7c3"


@pytest.mark.slow
def test_api_keys_appear_nowhere_after_runs_that_used_them(tmp_path, workbench_home):
    tasks = tmp_path / "toy.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"env": TOY, "scenario": "count", "args": {"target": 1, "note": str(i)}})
            + "\n"
            for i in range(3)
        )
    )
    with FaultServer() as server:
        workbench_home.mkdir(parents=True)
        (workbench_home / "config.toml").write_text(
            f'[endpoints.faulty]\nbase_url = "{server.url}"\napi_key = "{CONFIG_KEY}"\n'
            "backoff = 0.01\n"
        )
        # One run per model is refused by a server that echoes the key in its error message;
        # a 429 and a 500 make some requests be sent again.
        server.inject("401", "401", "429", "500")
        env = {
            "OPENAI_API_KEY": ENV_KEY,
            "OPENAI_BASE_URL": server.url,
            "OPENAI_LOG": "debug",  # the SDK's own request logging, on stderr
        }
        models = ["openai:toy-model", "faulty:toy-model"]
        out = run_cli("eval", str(tasks), *models, "--max-concurrent", "1", env=env)
        assert out.returncode == 0, out.stderr
        auths = {r["auth"] for r in server.requests}
    assert {f"Bearer {ENV_KEY}", f"Bearer {CONFIG_KEY}"} <= auths  # both keys were used
    assert "errors 2" in out.stdout

    db = workbench_home / "workbench.db"
    shown = [run_cli("jobs").stdout, run_cli("leaderboard", "toy").stdout]
    rows = sqlite3.connect(db).execute("select id, error_message from traces").fetchall()
    assert len(rows) == 6
    refused = [m for _, m in rows if m]
    assert len(refused) == 2 and all("invalid api key: [api key]" in m for m in refused)
    shown += [run_cli("trace", trace_id).stdout for trace_id, _ in rows]

    # Exports: traces as JSONL and CSV, and the training dataset made from them.
    env_before = dict(os.environ)
    os.environ["OPENAI_API_KEY"] = ENV_KEY  # as the user's shell would have it
    try:
        import workbench
        from workbench.training.data import to_dataset

        store = workbench.get_store()
        traces = store.traces()
        (tmp_path / "traces.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in traces))
        store.traces_df().to_csv(tmp_path / "traces.csv")
        to_dataset(traces).to_json(tmp_path / "dataset.jsonl")
    finally:
        os.environ.clear()
        os.environ.update(env_before)

    scanned = [out.stdout, out.stderr, *shown]
    files = [p for p in workbench_home.rglob("*") if p.is_file() and p.name != "config.toml"]
    files += [tmp_path / n for n in ("traces.jsonl", "traces.csv", "dataset.jsonl")]
    assert any(p.name == "workbench.db" for p in files)
    scanned += [p.read_bytes().decode("latin-1") for p in files]
    assert "Request options" in out.stderr or "HTTP Request" in out.stderr  # logs were on
    for key in (ENV_KEY, CONFIG_KEY):
        for text in scanned:
            assert key not in text
            assert key[-12:] not in text  # nor a recognisable piece of it
