"""Traces -> training data: the successful runs, as conversations a model can learn from.

```python
traces = select_traces(taskset="arithmetic-train", min_reward=1.0)
ds = to_dataset(traces)          # columns: messages, tools, trace_id, task, model, reward
ds.to_json("train.jsonl"); ds.to_parquet("train.parquet")
```

``messages`` are rendered by :func:`workbench.models.toolcalls.render`: tool calls written
as ``<tool_call>`` text and tools offered in the system prompt, exactly as a local model
sees and writes them, so a trained model learns what the parser reads.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.models.toolcalls import render
from workbench.store import Store, get_store
from workbench.traces import Trace

if TYPE_CHECKING:
    import datasets


class EmptySelectionError(WorkbenchError):
    """No trace qualified as training data."""


def select_traces(
    taskset: str | None = None,
    jobs: Iterable[str] | None = None,
    min_reward: float = 1.0,
    max_per_task: int | None = None,
    dedupe: bool = True,
    store: Store | None = None,
) -> list[Trace]:
    """The runs to learn from: finished (not errored) runs with ``reward >= min_reward``.

    Raises :class:`EmptySelectionError` saying how many traces were found and why none
    qualified.
    """
    store = store or get_store()
    if taskset is None and not jobs:
        raise WorkbenchError("say which traces to train on: a taskset, jobs, or both")
    # dict.fromkeys: a job named twice (an id and its prefix) is read once
    job_ids = list(dict.fromkeys(store.get_job(j)["id"] for j in jobs)) if jobs else [None]
    found: list[Trace] = []
    for job_id in job_ids:
        found.extend(store.traces(job_id=job_id, taskset=taskset))
    kept, seen, per_task = [], set(), Counter()
    for trace in found:
        if trace.stop_reason != "done" or trace.reward < min_reward:
            continue
        if dedupe:
            key = json.dumps(trace.messages, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
        if max_per_task is not None and per_task[trace.task] >= max_per_task:
            continue
        per_task[trace.task] += 1
        kept.append(trace)
    if not kept:
        where = " and ".join(
            part
            for part in (
                f"taskset '{taskset}'" if taskset else "",
                f"jobs {', '.join(jobs)}" if jobs else "",
            )
            if part
        )
        reasons = Counter(
            f"ended by {t.stop_reason}" if t.stop_reason != "done" else f"reward < {min_reward:g}"
            for t in found
        )
        why = ", ".join(f"{n} {reason}" for reason, n in reasons.items()) or "none stored"
        raise EmptySelectionError(
            f"no traces qualify for training: found {len(found)} for {where} ({why}); "
            "evaluate a stronger model or a scripted teacher first, or lower --min-reward"
        )
    return kept


def to_dataset(traces: list[Trace]) -> datasets.Dataset:
    """Conversational training data: ``messages`` (rendered) and ``tools`` (JSON), per trace."""
    import datasets

    rows = [
        {
            "messages": render(t.messages, t.tools),
            "tools": json.dumps(t.tools),
            "trace_id": t.id,
            "task": t.task,
            "model": t.model,
            "reward": t.reward,
        }
        for t in traces
    ]
    return datasets.Dataset.from_list(rows)


def dataset_hash(dataset: datasets.Dataset) -> str:
    """A content hash of the conversations: the same data gives the same hash."""
    digest = hashlib.sha256()
    for messages in dataset["messages"]:
        digest.update(json.dumps(messages, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    """Token ids of a rendered conversation and a mask of the tokens to learn (assistant).

    The mask covers each assistant turn's text and its end-of-turn token, nothing else; the
    prompt tokens match what inference feeds the model for that turn.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []  # character ranges of assistant turns, end-of-turn token included
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(
            messages[:k], tokenize=False, add_generation_prompt=True
        )
        through = tokenizer.apply_chat_template(messages[: k + 1], tokenize=False)
        if not text.startswith(through) or not through.startswith(before):
            raise WorkbenchError("the chat template does not render turns as a growing prefix")
        # through = before + content + end-of-turn token (+ a newline the template adds)
        spans.append((len(before), len(through.rstrip("\n"))))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [
        int(any(start <= begin < stop for start, stop in spans))
        for begin, _ in encoded["offset_mapping"]
    ]
    return {"input_ids": list(encoded["input_ids"]), "assistant_masks": mask}
