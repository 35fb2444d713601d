"""A Workbench job as Inspect ``.eval`` logs, one per model, for ``inspect view`` and
``read_eval_log``.

```python
paths = to_inspect_log(job, "logs")          # or a job id
log = inspect_ai.log.read_eval_log(paths[0])
log.samples[0].scores                        # the task's Inspect scores, or {"reward": ...}
```

A run is an Inspect sample: its task's sample id (the Inspect id for tasks made from Inspect,
else the task's slug), its group index + 1 as the epoch, its messages with tool calls and
results, its output, its scores and its model usage. A run that ended in an error or a
timeout (which Workbench counts apart from failures) is a sample with an ``error`` and no
score, as in Inspect. The results hold each score's ``accuracy``
(mean over samples of the per-sample mean over epochs, Inspect's default reduction) and
``stderr``; the Workbench job, trace ids and stop reasons ride along in ``metadata``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import (
    EvalConfig,
    EvalDataset,
    EvalError,
    EvalLog,
    EvalMetric,
    EvalPlan,
    EvalPlanStep,
    EvalResults,
    EvalSample,
    EvalScore,
    EvalSpec,
    EvalStats,
    write_eval_log,
)
from inspect_ai.model import GenerateConfig, ModelOutput, ModelUsage
from inspect_ai.scorer import Score, value_to_float

from workbench.inspect_bridge.loading import REF_MODULE, InspectSpec
from workbench.inspect_bridge.messages import (
    from_openai,
    messages_from_records,
    model_usage,
    stop_reason,
)
from workbench.traces import Trace

_STATUS = {"finished": "success", "cancelled": "cancelled", "failed": "error"}


def to_inspect_log(job: Any, log_dir: str | Path = "logs", *, store=None) -> list[Path]:
    """Write a job's runs as ``.eval`` logs in ``log_dir``, one per model; their paths.

    ``job``: a :class:`~workbench.Job` or a job id (or unique prefix).
    """
    from workbench.store import get_store

    store = store or getattr(job, "store", None) or get_store()
    row = store.get_job(job if isinstance(job, str) else job.id)
    traces = store.traces(job_id=row["id"])
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in row["config"]["models"]:
        log = eval_log(row, [t for t in traces if t.model == model], model)
        name = f"{_file_time(log.eval.created)}_{_clean(row['taskset'])}_{log.eval.eval_id}.eval"
        write_eval_log(log, str(log_dir / name), format="eval")
        paths.append(log_dir / name)
    return paths


def eval_log(row: dict[str, Any], traces: list[Trace], model: str) -> EvalLog:
    """One model's runs of a job (``row``: the job as the store gives it) as an EvalLog."""
    config = row["config"]
    tasks = row["tasks"]
    samples = sorted((eval_sample(t) for t in traces), key=lambda s: (s.epoch, str(s.id)))
    created = datetime.fromtimestamp(row["created_at"], UTC).isoformat(timespec="seconds")
    started = min((t.started_at for t in traces), default=row["created_at"])
    ended = max((t.ended_at or t.started_at for t in traces), default=row["created_at"])
    generate_config = GenerateConfig(
        temperature=config.get("temperature"),
        top_p=config.get("top_p"),
        max_tokens=config.get("max_tokens"),
        seed=config.get("seed"),
    )
    return EvalLog(
        status=_STATUS.get(row["status"], "started"),
        eval=EvalSpec(
            eval_id=secrets.token_hex(8),
            run_id=row["id"],
            created=created,
            task=row["taskset"],
            task_id=row["id"],
            task_file=_task_file(tasks),
            dataset=EvalDataset(
                name=row["taskset"],
                samples=len(tasks),
                sample_ids=[_sample_id(t.args, t.slug, t.scenario) for t in tasks],
            ),
            model=f"workbench/{model}",
            model_generate_config=generate_config,
            config=EvalConfig(epochs=config.get("group_size", 1)),
            solver="workbench/agent",
            solver_args={"max_steps": config.get("max_steps")},
            packages=_packages(),
            metadata={"workbench_job": row["id"], "workbench_config": config},
        ),
        plan=EvalPlan(
            name="workbench",
            steps=[
                EvalPlanStep(
                    solver="workbench/agent", params={"max_steps": config.get("max_steps")}
                )
            ],
            config=generate_config,
        ),
        results=EvalResults(
            total_samples=len(samples),
            completed_samples=sum(1 for s in samples if s.error is None),
            scores=_results(samples, _declared_metrics(traces)),
        ),
        stats=EvalStats(
            started_at=_iso(started),
            completed_at=_iso(ended),
            model_usage=_total_usage(samples),
        ),
        samples=samples,
    )


def eval_sample(trace: Trace) -> EvalSample:
    """One run as an Inspect sample."""
    args = trace.args
    inspect_task = _from_inspect(trace)
    model = f"workbench/{trace.model}"
    errors = {c.id for c in trace.tool_calls if c.error}
    messages = from_openai(trace.messages, model=trace.model, errors=errors)
    final = next((m for m in reversed(messages) if m.role == "assistant"), None)
    output = ModelOutput.from_content(model, "")
    if final is not None:
        output = ModelOutput.from_content(model, final.content)
        output.choices[0].message = final
        turns = [m for m in trace.messages if m.get("role") == "assistant"]
        # the last turn's finish reason, when the model gave one for each turn
        reason = trace.finish_reasons[-1] if len(trace.finish_reasons) == len(turns) else None
        output.choices[0].stop_reason = stop_reason(reason, final)
    usage = model_usage(trace.usage)
    output.usage = usage
    workbench = {
        "trace": trace.id,
        "task": trace.task,
        "env": trace.env,
        "scenario": trace.scenario,
        "stop_reason": trace.stop_reason,
        "reward": trace.reward,
        "steps": trace.steps,
    }
    if not inspect_task:
        workbench["args"] = args
    return EvalSample(
        id=_sample_id(args, trace.task, trace.scenario),
        epoch=trace.group_index + 1,
        input=_sample_input(trace, inspect_task),
        target=args.get("target", "") if inspect_task else "",
        choices=args.get("choices") if inspect_task else None,
        messages=messages,
        output=output,
        scores=None if _error(trace) else _scores(trace),
        metadata={**(args.get("metadata") or {} if inspect_task else {}), "workbench": workbench},
        model_usage=_sample_usage(model, usage, trace),
        started_at=_iso(trace.started_at),
        completed_at=_iso(trace.ended_at) if trace.ended_at else None,
        total_time=trace.seconds,
        working_time=trace.seconds,
        error=_error(trace),
    )


def _task_file(tasks: list[Any]) -> str | None:
    """The Inspect task file every task came from, if one did."""
    files = set()
    for task in tasks:
        module, _, spec = task.env.partition(":")
        if module != REF_MODULE:
            return None
        files.add(InspectSpec.parse(spec).file)
    return files.pop() if len(files) == 1 else None


def _from_inspect(task_or_trace: Any) -> bool:
    return task_or_trace.env.startswith(f"{REF_MODULE}:") or (
        task_or_trace.scenario == "sample" and "input" in task_or_trace.args
    )


def _sample_id(args: dict[str, Any], slug: str, scenario: str) -> int | str:
    sample_id = args.get("id") if scenario == "sample" else None
    return sample_id if isinstance(sample_id, int | str) and sample_id != "" else slug


def _sample_input(trace: Trace, inspect_task: bool):
    if inspect_task:
        records = trace.args["input"]
        return records if isinstance(records, str) else messages_from_records(records)
    prompt = []
    for message in trace.messages:
        if message.get("role") == "assistant":
            break
        if message.get("role") != "system":
            prompt.append(message)
    if len(prompt) == 1 and isinstance(prompt[0].get("content"), str):
        return prompt[0]["content"]
    return from_openai(prompt)


def _scores(trace: Trace) -> dict[str, Score]:
    """The run's Inspect scores (tasks from Inspect), else its reward as a score."""
    kept = trace.info.get("scores")
    if isinstance(kept, dict) and kept:
        return {name: Score.model_validate(score) for name, score in kept.items()}
    explanation = trace.info.get("explanation")
    return {
        "reward": Score(
            value=trace.reward,
            answer=trace.answer,
            explanation=explanation if isinstance(explanation, str) else None,
            metadata=trace.info or None,
        )
    }


def _error(trace: Trace) -> EvalError | None:
    """Errors and timeouts, which Workbench counts apart from failures: unscored samples."""
    if trace.stop_reason not in ("error", "timeout"):
        return None
    kind = trace.error_type or ("TimeoutError" if trace.stop_reason == "timeout" else "Error")
    message = f"{kind}: {trace.error_message or trace.stop_reason}"
    return EvalError(message=message, traceback=message, traceback_ansi=message)


def _results(samples: list[EvalSample], declared: dict[str, Any] | None = None) -> list[EvalScore]:
    """Per score (per key of a dict-valued score, as Inspect reports them): the mean over
    samples, each sample's epochs averaged first (Inspect's default ``mean`` reducer), and
    its stderr. Named as the scorer declares its metrics (``accuracy`` for ``match`` and
    ``includes``, ``mean`` for ``f1`` and ``exact``); ``accuracy`` for a Workbench reward.
    ``scored_samples`` counts samples, not runs (epochs are reduced first)."""
    to_float = value_to_float()
    by_name: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    scorer_of: dict[str, str] = {}
    for sample in samples:
        for name, score in (sample.scores or {}).items():
            value = score.value
            parts = value.items() if isinstance(value, dict) else [(name, value)]
            for key, entry in parts:
                entries = entry if isinstance(entry, list) else [entry]
                floats = [to_float(v) for v in entries]
                if floats and not any(math.isnan(f) for f in floats):
                    by_name[key][sample.id].append(sum(floats) / len(floats))
                    scorer_of[key] = name
    results = []
    for name, per_sample in by_name.items():
        means = [sum(v) / len(v) for v in per_sample.values()]
        value = sum(means) / len(means)
        names = (declared or {}).get(scorer_of[name])
        if names is None:  # not declared as a list: Inspect's own defaults
            dict_valued = scorer_of[name] != name
            names = ["mean", "stderr"] if dict_valued or declared else ["accuracy", "stderr"]
        central = next((n for n in names if n in ("accuracy", "mean")), "mean")
        metrics = {central: EvalMetric(name=central, value=value)}
        if len(means) > 1 and "stderr" in names:
            variance = sum((m - value) ** 2 for m in means) / (len(means) - 1)
            metrics["stderr"] = EvalMetric(name="stderr", value=math.sqrt(variance / len(means)))
        results.append(
            EvalScore(
                name=name,
                scorer=scorer_of[name],
                scored_samples=len(per_sample),
                unscored_samples=len({s.id for s in samples}) - len(per_sample),
                metrics=metrics,
            )
        )
    return results


def _sample_usage(model: str, usage: ModelUsage | None, trace: Trace) -> dict[str, ModelUsage]:
    """The run's tokens by model: the model under evaluation's, plus the grader's."""
    total = {model: usage} if usage else {}
    for name, spent in _grader_usage(trace).items():
        total[name] = total[name] + spent if name in total else spent
    return total


def _grader_usage(trace: Trace) -> dict[str, ModelUsage]:
    """The tokens the grader (``model_graded_*``'s model) spent on the run, by model."""
    spent = trace.info.get("grader_usage")
    if not isinstance(spent, dict):
        return {}
    usages = {
        name: model_usage(counts) for name, counts in spent.items() if isinstance(counts, dict)
    }
    return {name: usage for name, usage in usages.items() if usage is not None}


def _declared_metrics(traces: list[Trace]) -> dict[str, Any] | None:
    """The metric names the task's scorers declare, as the runs' grading recorded them."""
    return next(
        (t.info["metrics"] for t in traces if isinstance(t.info.get("metrics"), dict)), None
    )


def _total_usage(samples: list[EvalSample]) -> dict[str, ModelUsage]:
    total: dict[str, ModelUsage] = {}
    for sample in samples:
        for model, usage in sample.model_usage.items():
            total[model] = total[model] + usage if model in total else usage
    return total


def _packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from workbench import DISTRIBUTION

    found = {}
    for name, dist in (("workbench", DISTRIBUTION), ("inspect_ai", "inspect_ai")):
        try:
            found[name] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _file_time(created: str) -> str:
    return re.sub(r"[:+]", "-", created)


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "task"
