"""Inspect AI in and out: Inspect tasks run as tasksets, jobs open in Inspect's log viewer.

The Inspect tasks in tests/inspect_tasks/ are plain Inspect files (no Workbench import): a
Q&A task graded by `includes` and one by `match`, a `model_graded_fact` task on the example
dataset that ships with `inspect_ai`, and a tool-using task. Each test that compares
rewards runs the same model both ways: through Workbench, and through Inspect's own
`eval()` (the model reached through the `workbench/` model provider), and finds the same
answers and the same scores.
"""

import ast
import json
import math
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("inspect_ai")

from inspect_ai import eval_async  # noqa: E402
from inspect_ai.log import list_eval_logs, read_eval_log  # noqa: E402
from inspect_ai.model import GenerateConfig, get_model  # noqa: E402
from inspect_ai.scorer import value_to_float  # noqa: E402
from inspect_ai.tool import ToolDef  # noqa: E402

import workbench  # noqa: E402
from workbench.inspect_bridge import (  # noqa: E402
    InspectTaskError,
    from_inspect,
    from_inspect_dataset,
    inspect_environment,
    to_inspect_log,
)
from workbench.models import PolicyContext, answer, call  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tests" / "inspect_tasks"
README = (ROOT / "README.md").read_text()


@pytest.fixture(autouse=True)
def quiet_inspect(monkeypatch, tmp_path):
    monkeypatch.setenv("INSPECT_DISPLAY", "none")
    monkeypatch.setenv("INSPECT_LOG_DIR", str(tmp_path / "inspect-logs"))


# Scripted policies the tests add to the Inspect environments (a real spread of outcomes).


def falls_for_the_trap(ctx: PolicyContext) -> dict:
    """Answers the sample's trap (its metadata's) where it has one, else the target."""
    trap = (ctx.args.get("metadata") or {}).get("trap")
    return answer(trap or ctx.args["target"])


def off_by_one_on_odd_ids(ctx: PolicyContext) -> dict:
    target = ctx.args["target"]
    number = int(target[0] if isinstance(target, list) else target)
    return answer(number + 1 if ctx.args["id"] % 2 else number)


def adder(ctx: PolicyContext) -> dict:
    """Adds with the task's tool, then answers with what it returned (or gives up)."""
    if ctx.step == 0:
        numbers = ctx.args["metadata"]
        return call("add", x=numbers["x"], y=numbers["y"])
    result = ctx.tool_results()[-1]
    return answer("I could not add these." if result.startswith("Error") else result)


POLICIES = {
    "trap": falls_for_the_trap,
    "guess": off_by_one_on_odd_ids,
    "adder": adder,
    "hello": lambda ctx: answer("Hello!"),
    "yes": lambda ctx: answer("Yes, it is."),
}


def with_policies(ts):
    env = inspect_environment(ts)
    for name, policy in POLICIES.items():
        env.policy(name)(policy)
    return env


async def inspect_eval(spec, model, env, *, grader=None, grader_max_tokens=None, sample_id=None):
    """Inspect's own eval of an unchanged task file, with Workbench models (by id)."""
    roles = None
    if grader is not None:  # graded at temperature 0, as Workbench grades
        config = GenerateConfig(temperature=0, max_tokens=grader_max_tokens)
        roles = {"grader": get_model(f"workbench/{grader}", env=env.ref, config=config)}
    [log] = await eval_async(
        spec,
        model=get_model(f"workbench/{model}", env=env.ref),
        model_roles=roles,
        sample_id=sample_id,
    )
    assert log.status == "success", log.error
    return {sample.id: sample for sample in log.samples}


# -- Inspect tasks as tasksets ------------------------------------------------------------


def test_an_inspect_task_is_a_taskset_of_its_samples():
    ts = from_inspect(f"{TASKS}/qa.py@capitals")
    assert ts.name == "capitals" and ts.slugs == ["france", "japan", "kenya", "australia"]
    australia = ts["australia"]
    assert australia.args == {
        "input": "What is the capital of Australia?",
        "target": "Canberra",
        "id": "australia",
        "metadata": {"trap": "Sydney"},
    }
    sums = from_inspect(f"{TASKS}/qa.py@sums", task_args={"count": 2})  # Inspect's -T
    assert [t.args["id"] for t in sums] == [1, 2]  # Inspect numbers samples without ids
    assert sums[0].args["target"] == ["3", "3.0"]  # a list of targets stays a list


@pytest.mark.slow
def test_a_fresh_process_rebuilds_the_environment_from_its_reference():
    australia = from_inspect(f"{TASKS}/qa.py@capitals")["australia"]
    sums = from_inspect(f"{TASKS}/qa.py@sums", task_args={"count": 2})
    assert "qa.py@sums?count=2" in sums[0].env  # the file, the task, its arguments
    code = (
        "import sys; from workbench import resolve_environment; "
        "env = resolve_environment(sys.argv[1]); "
        "print(sorted(env.scenarios), len(env.inspect.task.dataset))"
    )
    for task, size in ((australia, 4), (sums[0], 2)):
        found = subprocess.run(
            [sys.executable, "-c", code, task.env], capture_output=True, text=True, check=True
        )
        assert found.stdout.split() == ["['sample']", str(size)]


async def test_the_prompt_is_what_inspects_setup_solvers_make():
    ts = from_inspect(f"{TASKS}/qa.py@sums", task_args={"count": 1})
    async with workbench.eval(ts[0]) as ctx:
        assert ctx.messages == [
            {"role": "user", "content": "What is 1 + 2?\nGive the number only."}
        ]  # prompt_template
        await ctx.submit("3")
    assert ctx.reward == 1.0 and ctx.trace.info["scorer"] == "match"

    security = from_inspect(f"{TASKS}/graded.py@security_guide", grader="scripted:grader")
    async with workbench.eval(security[0]) as ctx:
        system, user = ctx.messages
        assert system["role"] == "system" and "security expert" in system["content"]
        assert user == {"role": "user", "content": "How do I prevent SQL Injection attacks?"}
        await ctx.submit("Use prepared statements.")  # not the expert answer's words
    assert ctx.reward == 0.0
    assert ctx.trace.info["explanation"].endswith("GRADE: I")  # the grader's, kept in info


@pytest.mark.parametrize(
    "spec, models, options",
    [
        ("qa.py@capitals", ["scripted:target", "scripted:trap"], {}),  # includes()
        ("qa.py@sums", ["scripted:guess"], {}),  # match(numeric=True), prompt_template
        ("tools.py@addition", ["scripted:adder", "scripted:target"], {}),  # @tool, use_tools
        ("graded.py@security_guide", ["scripted:target"], {"grader": "scripted:grader"}),
        ("custom.py@greeting", ["scripted:target", "scripted:hello"], {}),  # a float score
        ("custom.py@judged_greeting", ["scripted:hello"], {"grader": "scripted:yes"}),
    ],
    ids=["includes", "match", "tools", "model-graded", "own-scorer", "own-scorer-and-model"],
)
async def test_rewards_equal_what_inspects_own_eval_scores(spec, models, options):
    ts = from_inspect(f"{TASKS}/{spec}", **options)
    env = with_policies(ts)
    job = await workbench.evaluate(ts, models)
    traces = job.traces()
    assert len(traces) == len(ts) * len(models)
    assert {t.stop_reason for t in traces} == {"done"}
    to_float = value_to_float()
    for model in models:
        inspect_samples = await inspect_eval(f"{TASKS}/{spec}", model, env, **options)
        ours = {t.args["id"]: t for t in traces if t.model == model}
        assert ours.keys() == inspect_samples.keys()
        for sample_id, trace in ours.items():
            sample = inspect_samples[sample_id]
            assert trace.answer == sample.output.completion  # the same answers ...
            [(name, score)] = sample.scores.items()
            assert trace.info["scorer"] == name
            assert trace.info["value"] == score.value  # ... the same scores ...
            assert trace.reward == to_float(score.value)  # ... mapped to [0, 1]
    rewards = [t.reward for t in traces]
    if len(rewards) > 1 and not spec.startswith("graded"):  # the policies got a spread
        assert 0 < sum(rewards) < len(rewards)


@pytest.mark.slow
async def test_a_local_grader_gives_the_grade_inspect_gives():
    """SmolLM2-135M grades one model_graded_fact sample, greedily, both ways."""
    pytest.importorskip("transformers")
    grader = dict(grader="local:smollm2-135m", grader_max_tokens=24)
    ts = from_inspect(f"{TASKS}/graded.py@security_guide", **grader)
    env = inspect_environment(ts)
    job = await workbench.evaluate(ts, "scripted:target", task_ids=["1"])
    [trace] = job.traces()
    spec = f"{TASKS}/graded.py@security_guide"
    [sample] = (await inspect_eval(spec, "scripted:target", env, sample_id=1, **grader)).values()
    score = sample.scores["model_graded_fact"]
    if isinstance(score.value, float) and math.isnan(score.value):  # no grade in 24 tokens
        assert trace.stop_reason == "error" and trace.error_type == "InspectScoreError"
        assert score.explanation in trace.error_message  # the grader said the same
    else:
        assert trace.reward == value_to_float()(score.value)
        assert trace.info["explanation"] == score.explanation  # the grader said the same


@pytest.mark.slow
async def test_the_graders_tokens_are_counted_as_inspect_counts_them(tmp_path):
    pytest.importorskip("transformers")
    grader = dict(grader="local:smollm2-135m", grader_max_tokens=8)
    spec = f"{TASKS}/judged.py@judged_capital"
    ts = from_inspect(spec, **grader)
    job = await workbench.evaluate(ts, "scripted:target")
    [trace] = job.traces()
    [sample] = (
        await inspect_eval(spec, "scripted:target", inspect_environment(ts), **grader)
    ).values()
    by = "workbench/local:smollm2-135m"
    spent = trace.info["grader_usage"][by]
    assert spent["total_tokens"] == sample.model_usage[by].total_tokens > 0
    [path] = to_inspect_log(job, tmp_path)
    assert read_eval_log(str(path)).samples[0].model_usage[by].total_tokens == spent["total_tokens"]


def test_tools_keep_their_inspect_schemas():
    ts = from_inspect(f"{TASKS}/tools.py@addition")
    env = inspect_environment(ts)
    inspect_def = ToolDef(runpy.run_path(str(TASKS / "tools.py"))["add"]())  # Inspect's view
    [schema] = env.tool_schemas
    assert schema["function"] == {
        "name": "add",
        "description": inspect_def.description,
        "parameters": inspect_def.parameters.model_dump(exclude_none=True),
    }


async def test_a_tool_error_is_seen_by_the_model_and_the_scorer():
    ts = from_inspect(f"{TASKS}/tools.py@addition")
    with_policies(ts)
    job = await workbench.evaluate(ts, "scripted:adder", task_ids=["3"])
    [trace] = job.traces()
    [record] = trace.tool_calls
    assert record.error and "numbers up to a million only" in record.result
    assert trace.answer == "I could not add these." and trace.reward == 0.0


async def test_a_scorer_that_asks_for_a_model_needs_a_grader():
    ts = from_inspect(f"{TASKS}/custom.py@judged_greeting")  # no grader given
    job = await workbench.evaluate(ts, "scripted:target")
    [trace] = job.traces()  # an error counted apart, not a failure
    assert trace.stop_reason == "error" and trace.error_type == "GraderMissing"
    assert "give a grader" in trace.error_message


def test_what_workbench_cannot_run_is_refused_in_one_line():
    with pytest.raises(InspectTaskError, match="solver 'self_critique' is not supported") as e:
        from_inspect(f"{TASKS}/unsupported.py@critiqued")
    assert "\n" not in str(e.value) and "generate" in str(e.value)
    with pytest.raises(InspectTaskError, match="needs a sandbox"):
        from_inspect(f"{TASKS}/unsupported.py@sandboxed")
    with pytest.raises(InspectTaskError, match="graded by a model.*give a grader"):
        from_inspect(f"{TASKS}/graded.py@security_guide")
    with pytest.raises(InspectTaskError, match="has no @task 'nope'.*capitals, sums"):
        from_inspect(f"{TASKS}/qa.py@nope")
    with pytest.raises(InspectTaskError, match="defines 2 tasks"):
        from_inspect(f"{TASKS}/qa.py")


# -- Inspect datasets ---------------------------------------------------------------------


RECORDS = [
    {"id": "h2o", "input": "What is the chemical formula of water?", "target": "H2O"},
    {
        "id": "fe",
        "input": [{"role": "user", "content": "Which element has the symbol Fe?"}],
        "target": ["iron", "Iron"],
        "metadata": {"topic": "elements"},
    },
]


async def test_an_inspect_dataset_is_a_taskset(tmp_path):
    jsonl = tmp_path / "chemistry.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in RECORDS))
    ts = from_inspect_dataset(jsonl, scorer="includes")
    assert ts.name == "chemistry" and ts.slugs == ["h2o", "fe"]
    assert ts["fe"].args["metadata"] == {"topic": "elements"}
    job = await workbench.evaluate(ts, "scripted:target")
    assert [t.reward for t in job.traces()] == [1.0, 1.0]

    csv = tmp_path / "chemistry.csv"
    csv.write_text("id,input,target\nh2o,What is the chemical formula of water?,H2O\n")
    assert from_inspect_dataset(csv).slugs == ["h2o"]

    import datasets

    records = datasets.Dataset.from_list([RECORDS[0]])
    assert from_inspect_dataset(records, "hf")["h2o"].args["target"] == "H2O"
    assert workbench.Taskset.from_dataset(records, "hf").slugs == ["h2o"]  # Inspect's fields
    with pytest.raises(InspectTaskError, match="no 'input' field"):
        from_inspect_dataset([{"question": "?"}])


# -- logs out -----------------------------------------------------------------------------


async def test_a_job_exported_to_eval_is_read_back_by_inspect(tmp_path):
    ts = from_inspect(f"{TASKS}/tools.py@addition")
    with_policies(ts)
    job = await workbench.evaluate(ts, ["scripted:adder", "scripted:target"], group_size=2)
    paths = to_inspect_log(job, tmp_path / "logs")
    assert len(paths) == 2  # one per model
    listed = {Path(info.name).name for info in list_eval_logs(str(tmp_path / "logs"))}
    assert listed == {p.name for p in paths}  # what `inspect view` lists
    traces = {(t.model, t.args["id"], t.group_index): t for t in job.traces()}
    for path, model in zip(paths, ["scripted:adder", "scripted:target"], strict=True):
        log = read_eval_log(str(path))
        assert log.status == "success" and log.eval.model == f"workbench/{model}"
        assert log.eval.task == "addition" and log.eval.task_file == str(TASKS / "tools.py")
        assert len(log.samples) == len(ts) * 2  # every run: 3 samples x 2 epochs
        for sample in log.samples:
            trace = traces[(model, sample.id, sample.epoch - 1)]
            assert sample.target == trace.args["target"]
            assert value_to_float()(sample.scores["match"].value) == trace.reward
            assert sample.metadata["workbench"]["trace"] == trace.id
            calls = [
                c for m in sample.messages if m.role == "assistant" for c in m.tool_calls or []
            ]
            results = [m for m in sample.messages if m.role == "tool"]
            assert [(c.function, c.arguments) for c in calls] == [
                (r.name, json.loads(r.arguments)) for r in trace.tool_calls
            ]
            assert [(m.function, m.text, m.error is not None) for m in results] == [
                ("add", r.result, r.error) for r in trace.tool_calls
            ]
        accuracy = log.results.scores[0].metrics["accuracy"].value
        rewards = [t.reward for (m, _, _), t in traces.items() if m == model]
        assert accuracy == pytest.approx(sum(rewards) / len(rewards))


async def test_any_workbench_job_exports_with_its_reward_as_the_score(tmp_path):
    job = await workbench.evaluate("arithmetic-basics", "scripted:weak")
    [path] = to_inspect_log(job.id, tmp_path)  # a job id works too
    log = read_eval_log(str(path))
    traces = {t.task: t for t in job.traces()}
    assert len(log.samples) == len(traces) and log.eval.task == "arithmetic-basics"
    for sample in log.samples:
        trace = traces[sample.id]  # a task that is not an Inspect sample: its slug
        assert sample.scores["reward"].value == trace.reward
        assert sample.input == next(m["content"] for m in trace.messages if m["role"] == "user")
        assert sample.metadata["workbench"]["args"] == trace.args
    rewards = [t.reward for t in traces.values()]
    assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(
        sum(rewards) / len(rewards)
    )


async def test_an_answer_cut_off_by_max_tokens_exports_as_inspect_says_it(tmp_path):
    """Inspect marks a completion that hit the token limit ``max_tokens``; an exported run
    whose last answer was cut off says so, one that finished says ``stop``."""
    taskset = workbench.load_taskset("arithmetic-basics")
    job = workbench.create_job(taskset, "scripted:weak")
    store = workbench.get_store()
    runs = [
        workbench.Trace(
            job_id=job.id,
            taskset=taskset.name,
            task=slug,
            model="scripted:weak",
            messages=[
                {"role": "user", "content": "2 + 2?"},
                {"role": "assistant", "content": "The answer is" if cut else "4"},
            ],
            finish_reasons=["length" if cut else "stop"],
            steps=1,
        )  # fmt: skip
        for slug, cut in zip(taskset.slugs[:2], (True, False), strict=True)
    ]
    store.add_traces(runs)
    store.set_job_status(job.id, "finished")
    [path] = to_inspect_log(job.id, tmp_path)
    reasons = {s.id: s.output.stop_reason for s in read_eval_log(str(path)).samples}
    assert reasons == {taskset.slugs[0]: "max_tokens", taskset.slugs[1]: "stop"}


# -- the command line ---------------------------------------------------------------------


def _job_id(output: str) -> str:
    return re.search(r"job (\w+):", output).group(1)


@pytest.mark.slow
def test_workbench_eval_runs_an_inspect_task_file(tmp_path):
    done = run_cli("eval", f"{TASKS}/qa.py@sums", "scripted:target", "-T", "count=3")
    assert done.returncode == 0, done.stderr
    assert "3 tasks x 1 models" in done.stdout and "100%" in done.stdout
    graded = run_cli(
        "eval",
        f"{TASKS}/graded.py@security_guide",
        "scripted:target",
        "--grader",
        "scripted:grader",
        "--task-ids",
        "1,2",
    )
    assert graded.returncode == 0, graded.stderr
    exported = run_cli("export", _job_id(graded.stdout), "--format", "inspect", "--out", tmp_path)
    assert exported.returncode == 0, exported.stderr
    [log] = list_eval_logs(str(tmp_path))
    assert len(read_eval_log(log.name).samples) == 2
    refused = run_cli("eval", f"{TASKS}/graded.py@security_guide", "scripted:target")
    assert refused.returncode == 2 and "give a grader" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_workbench_tasks_import_reads_an_inspect_dataset(tmp_path):
    jsonl = tmp_path / "chemistry.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in RECORDS))
    not_tasks = run_cli("tasks", "import", str(jsonl))  # Workbench's own task format
    assert not_tasks.returncode == 2 and "not a task" in not_tasks.stderr
    stored = run_cli("tasks", "import", str(jsonl), "--inspect", "--scorer", "includes")
    assert stored.returncode == 0, stored.stderr
    ran = run_cli("eval", "chemistry", "scripted:target")  # a fresh process resolves it
    assert ran.returncode == 0, ran.stderr
    assert "2 tasks x 1 models" in ran.stdout and "100%" in ran.stdout


# -- the README ---------------------------------------------------------------------------


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


async def test_the_coming_from_inspect_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (example,) = re.findall(r"```python\n(.*?)```", _section("Coming from Inspect AI"), re.S)
    code = compile(example, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    await eval(code, {})  # noqa: S307 - the README's own example
    assert capsys.readouterr().out.strip() == "[1.0, 1.0]"
    [log] = list_eval_logs(str(tmp_path / "logs"))
    assert len(read_eval_log(log.name).samples) == 2
    assert os.path.basename(log.name).endswith(".eval")


@pytest.mark.parametrize("runtime", ["isolated", "subprocess"])
async def test_a_tool_writing_inspects_store_is_read_by_the_scorer_in_any_runtime(
    runtime, tmp_path
):
    ts = from_inspect(f"{TASKS}/notes.py")  # the file's only task
    env = inspect_environment(ts)

    @env.policy("noter")
    def noter(ctx: PolicyContext):
        return call("note", text=ctx.args["target"]) if ctx.step == 0 else answer("noted")

    job = await workbench.evaluate(ts, "scripted:noter", runtime=runtime, group_size=2)
    assert [t.reward for t in job.traces()] == [1.0] * 8, [t.info for t in job.traces()]
    [path] = to_inspect_log(job, tmp_path)
    [score] = read_eval_log(str(path)).results.scores  # as Inspect reports @scorer(mean())
    assert (score.name, list(score.metrics), score.scored_samples) == ("noted", ["mean"], 4)


def test_records_and_task_arguments_are_read_as_inspect_reads_them():
    from workbench.inspect_bridge import parse_task_args

    ts = from_inspect_dataset(
        [
            {"input": "How many moons has Venus?", "target": 0},
            {"input": "Which colour?", "target": 42, "choices": "red, green"},
        ],
        name="numbers",
    )
    assert [t.args["target"] for t in ts] == ["0", "42"]  # 0 is "0", not "" (which passes all)
    assert ts[1].args["choices"] == ["red", "green"]
    # inspect eval -T: YAML values, a list from unquoted commas, - in a key as _
    assert parse_task_args(
        ["hard=False", "subjects=math,physics", "max-items=1", 'title="a, b"']
    ) == {
        "hard": False,
        "subjects": ["math", "physics"],
        "max_items": 1,
        "title": "a, b",
    }


def test_samples_with_the_same_id_are_refused_as_inspect_refuses_them():
    with pytest.raises(InspectTaskError, match="samples 1 and 2 of 'twice' have the same id"):
        from_inspect_dataset([{"input": "a", "id": 1}, {"input": "b", "id": "1"}], name="twice")


def test_workbench_eval_runs_the_only_task_of_an_inspect_file():
    done = run_cli("eval", f"{TASKS}/notes.py", "scripted:target")
    assert done.returncode == 0, done.stderr
    assert "4 tasks" in done.stdout
