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
from workbench.models import turns
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
    """Conversational training data, per trace: ``messages`` (rendered), ``tools`` (JSON) and
    ``finish_reasons`` (one per generated assistant turn; "length": cut off by
    ``max_tokens``, so its end-of-turn token is no part of what the model wrote)."""
    import datasets

    rows = [
        {
            "messages": render(t.messages, t.tools),
            "tools": json.dumps(t.tools),
            # why each generated turn ended: a "length" turn's end-of-turn is not learned
            "finish_reasons": list(t.finish_reasons),
            "trace_id": t.id,
            "task": t.task,
            "model": t.model,
            "reward": t.reward,
        }
        for t in traces
    ]
    return datasets.Dataset.from_list(rows)


def dataset_hash(dataset: datasets.Dataset) -> str:
    """A content hash of the conversations: the same data gives the same hash. A turn cut off
    by ``max_tokens`` is trained differently, so it counts (and only then: the hashes of
    data without one are those of earlier versions)."""
    digest = hashlib.sha256()
    reasons = (
        dataset["finish_reasons"]
        if "finish_reasons" in dataset.column_names
        else [None] * len(dataset)
    )
    for messages, finished in zip(dataset["messages"], reasons, strict=True):
        digest.update(json.dumps(messages, sort_keys=True).encode())
        if finished and "length" in finished:
            digest.update(json.dumps(finished).encode())
    return digest.hexdigest()[:16]


def tokenize_conversation(
    tokenizer: Any,
    messages: list[dict[str, str]],
    finish_reasons: list[str | None] | None = None,
) -> dict[str, list[int]]:
    """Token ids of a rendered conversation and a mask of the tokens to learn (assistant).

    The ids are :func:`workbench.models.turns.encode`'s, as the local engine encodes its
    prompts: the tokens before each assistant turn are the prompt inference fed the model
    for that turn, and a turn's text is tokenised on its own (never merged with the
    template's newline before it). The mask covers each assistant turn's text and its
    end-of-turn token, nothing else.

    ``finish_reasons`` (a trace's, one per assistant turn it generated; they belong to the
    last turns when the prompt itself holds assistant turns): a turn that ended by
    ``"length"`` was cut off by ``max_tokens``; its text is learned, its end-of-turn token is
    not, because the model never wrote it. Such runs are kept rather than left out: their
    text is what the model wrote and what the reward judged, and the Loop's short
    ``max_tokens`` cuts many of its successes (3 of 6 in one review's sample); learning
    the text alone teaches nothing that did not happen.
    """
    reasons = list(finish_reasons or [])
    n_turns = sum(1 for m in messages if m["role"] == "assistant")
    reasons = [None] * max(0, n_turns - len(reasons)) + reasons[-n_turns:] if n_turns else []
    ids: list[int] = []
    mask: list[int] = []
    for kind, text, turn in turns.pieces(tokenizer, messages):
        piece = turns.ids_of(tokenizer, text)
        learned = kind == "content" or (kind == "end" and reasons[turn] != "length")
        ids.extend(piece)
        mask.extend([int(learned)] * len(piece))
    return {"input_ids": ids, "assistant_masks": mask}
