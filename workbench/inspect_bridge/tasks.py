"""Inspect tasks and datasets as tasksets: one task per ``Sample``.

```python
ts = from_inspect("security_guide.py@security_guide", grader="scripted:grader")
ts[0].args  # {"input": [...], "target": "use parameterized queries ...", "id": 1}
ds = from_inspect_dataset("questions.jsonl", scorer="includes")
```
"""

from __future__ import annotations

import inspect as pyinspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
from inspect_ai import Task as InspectTask
from inspect_ai.dataset import Sample

from workbench.environment import Environment
from workbench.errors import WorkbenchError
from workbench.inspect_bridge.environment import build_environment, sample_args
from workbench.inspect_bridge.loading import (
    InspectSpec,
    InspectTaskError,
    load_task,
    parse_task_spec,
    registry_name,
)
from workbench.inspect_bridge.messages import messages_from_records
from workbench.tasks import Taskset, _slugify

# Inspect's built-in scorers that take no arguments: a dataset imported alone is graded by one.
DATASET_SCORERS = ("match", "includes", "exact", "f1", "model_graded_fact", "model_graded_qa")

_BY_SPEC: dict[InspectSpec, Environment] = {}


def environment_for(spec: InspectSpec) -> Environment:
    """The environment of a spec, built once per process."""
    if spec not in _BY_SPEC:
        if spec.file is None:
            scorer = _dataset_scorer(spec.scorer)
            # The samples come with each task; Inspect wants one to make a Task.
            placeholder = [Sample(input="", id="placeholder")]
            task = InspectTask(dataset=placeholder, scorer=scorer, name=f"dataset-{spec.scorer}")
        else:
            task = load_task(Path(spec.file), spec.task, dict(spec.args))
        _BY_SPEC[spec] = build_environment(
            task, _local_name(task.name), spec.grader, spec.grader_max_tokens, ref=spec.ref
        )
    return _BY_SPEC[spec]


def _dataset_scorer(name: str):
    import inspect_ai.scorer as scorers

    if name not in DATASET_SCORERS:
        raise InspectTaskError(
            f"unknown scorer '{name}' for an Inspect dataset: use one of {', '.join(DATASET_SCORERS)}"
        )
    return getattr(scorers, name)()


def samples_taskset(env: Environment, samples: list[Sample], name: str) -> Taskset:
    """One task per sample; its slug from the sample's id (Inspect's 1-based number when
    it has none)."""
    tasks, seen, ids = [], set(), {}
    for i, sample in enumerate(samples):
        where = f"sample {sample.id if sample.id is not None else i + 1} of '{name}'"
        if sample.sandbox or sample.files or sample.setup:
            raise InspectTaskError(f"{where} needs a sandbox (sandbox, files or setup)")
        sample_id = sample.id if sample.id is not None else i + 1
        if str(sample_id) in ids:  # as Inspect refuses them: the log keeps one per id
            raise InspectTaskError(
                f"samples {ids[str(sample_id)]} and {i + 1} of '{name}' have the same id "
                f"{sample_id!r}: give every sample an id of its own"
            )
        ids[str(sample_id)] = i + 1
        args = sample_args(sample.input, sample.target, sample_id, sample.metadata, sample.choices)
        slug = _slugify(sample_id) or f"sample-{i + 1}"
        if slug in seen:
            slug = f"{slug}-{i + 1}"
        seen.add(slug)
        try:
            tasks.append(env.task("sample", slug=slug, **args))
        except WorkbenchError as e:
            raise InspectTaskError(f"{where}: {e}") from None
    return Taskset(name, tasks, description=env.description)


def from_inspect(
    task: str | Path | InspectTask | Callable[..., InspectTask],
    *,
    task_args: dict[str, Any] | None = None,
    grader: str | None = None,
    grader_max_tokens: int | None = None,
    name: str | None = None,
) -> Taskset:
    """An Inspect task as a taskset: one task per sample.

    Args:
        task: ``path/to/file.py@task_name`` (or ``file.py``, its only task), a ``@task``
            function, or a ``Task`` object. A file or a function defined in one gives
            tasks that any process can run (the CLI, a resumed job, Ray); a ``Task`` object
            made in a notebook gives tasks of this process only.
        task_args: arguments of the ``@task`` function (Inspect's ``-T``).
        grader: the model id that Inspect's model-graded scorers use (their ``grader``
            role), e.g. ``scripted:grader`` or ``local:smollm2-135m``; graded at
            temperature 0.
        grader_max_tokens: the grader's token limit.
        name: the taskset's name (default: the Inspect task's name).

    Raises :class:`InspectTaskError` (one line) for a task Workbench cannot run: a sandbox,
    a solver other than ``system_message``, ``user_message``, ``assistant_message``,
    ``prompt_template``, ``chain_of_thought`` and ``use_tools`` before one ``generate()``.
    """
    if isinstance(task, InspectTask):
        if task_args:
            raise InspectTaskError("task_args go with a task file or @task function")
        env = build_environment(task, _local_name(task.name), grader, grader_max_tokens)
        return samples_taskset(env, list(task.dataset), name or task.name)
    if callable(task) and not isinstance(task, str | Path):
        file = Path(pyinspect.getfile(task)).resolve()
        spec_text = f"{file}@{registry_name(task)}"
    else:
        spec_text = str(task)
    file, task_name = parse_task_spec(spec_text)
    args = tuple(sorted((task_args or {}).items()))
    spec = InspectSpec(str(file), task_name, args, None, grader, grader_max_tokens)
    env = environment_for(spec)
    return samples_taskset(env, list(env.inspect.task.dataset), name or env.inspect.task.name)


def _local_name(task_name: str) -> str:
    from workbench.references import _LOCAL_ENVIRONMENTS

    base = f"inspect-{task_name}"
    name, n = base, 1
    while name in _LOCAL_ENVIRONMENTS:
        n += 1
        name = f"{base}-{n}"
    return name


def from_inspect_dataset(
    source: Any,
    name: str | None = None,
    *,
    scorer: str = "match",
    grader: str | None = None,
    grader_max_tokens: int | None = None,
) -> Taskset:
    """A dataset with Inspect's field names as a taskset, graded by one of Inspect's scorers.

    ``source``: a ``.jsonl``, ``.json`` or ``.csv`` file (read by Inspect's own readers), a
    ``datasets.Dataset``, an Inspect ``Dataset`` or a list of records. Fields: ``input`` (a
    string or chat messages), ``target`` (a string or a list), ``id``, ``metadata``,
    ``choices``. The model answers the input as it stands (no system message); ``scorer``
    is one of ``match`` (default), ``includes``, ``exact``, ``f1``, ``model_graded_fact``,
    ``model_graded_qa`` (these two need a ``grader``).
    """
    samples, default_name = _read_samples(source)
    spec = InspectSpec(scorer=scorer, grader=grader, grader_max_tokens=grader_max_tokens)
    env = environment_for(spec)
    return samples_taskset(env, samples, name or default_name)


def _read_samples(source: Any) -> tuple[list[Sample], str]:
    from inspect_ai.dataset import Dataset, csv_dataset, json_dataset

    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InspectTaskError(f"Inspect dataset '{path}' does not exist")
        readers = {".jsonl": json_dataset, ".json": json_dataset, ".csv": csv_dataset}
        if path.suffix not in readers:
            raise InspectTaskError(f"'{path}': an Inspect dataset is a .jsonl, .json or .csv")
        try:
            return list(readers[path.suffix](str(path))), path.stem
        except (ValueError, KeyError, pydantic.ValidationError) as e:
            first = str(e).splitlines()[0]
            raise InspectTaskError(f"{path}: not an Inspect dataset ({first})") from None
    if isinstance(source, Dataset):
        return list(source), source.name or "inspect-dataset"
    samples = [_record_sample(i, dict(record)) for i, record in enumerate(source)]
    return samples, getattr(source, "info", None) and source.info.dataset_name or "inspect-dataset"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN


def read_target(value: Any) -> str | list[str]:
    """A record's target as Inspect reads one: text (``0`` is ``"0"``), a list of texts,
    or ``""`` when missing (``None``, or pandas' NaN)."""
    if _missing(value):
        return ""
    return [str(item) for item in value] if isinstance(value, list) else str(value)


def read_choices(value: Any) -> list[str] | None:
    """A record's choices as Inspect reads them: a list, or text split at commas (else at
    spaces); empty entries dropped."""
    if _missing(value):
        return None
    if isinstance(value, list):
        return [str(c) for c in value if str(c).strip()]
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
        return [p.strip() for p in parts if p.strip()]
    return [str(value)]


def _record_sample(i: int, record: dict[str, Any]) -> Sample:
    """A record with Inspect's field names as a ``Sample`` (as Inspect's ``FieldSpec()``
    reads one: ``metadata`` may be JSON text)."""
    if "input" not in record:
        raise InspectTaskError(
            f"record {i}: no 'input' field (Inspect's fields: input, target, id, metadata)"
        )
    metadata = record.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else None
    records = record["input"]
    try:
        return Sample(  # fields read as Inspect's own readers read them: 0 is "0", not ""
            input=records if isinstance(records, str) else messages_from_records(records),
            target=read_target(record.get("target")),
            id=record.get("id"),
            metadata=metadata,
            choices=read_choices(record.get("choices")),
        )
    except (ValueError, pydantic.ValidationError) as e:
        first = str(e).splitlines()[0]
        raise InspectTaskError(f"record {i}: not an Inspect sample ({first})") from None


def inspect_environment(taskset: Taskset) -> Environment:
    """The environment of a taskset made by :func:`from_inspect`: add scripted policies to
    it with ``@env.policy("name")``."""
    refs = {task.env for task in taskset}
    if len(refs) != 1:
        raise InspectTaskError(f"taskset '{taskset.name}' spans {len(refs)} environments")
    env = taskset[0].environment()
    if not hasattr(env, "inspect"):
        raise InspectTaskError(f"taskset '{taskset.name}' was not made from an Inspect task")
    return env
