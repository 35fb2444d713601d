"""One call trains a fork by any method: a LoRA adapter, a new checkpoint, HEAD moves.

```python
workbench.fork("smollm2-135m", "my-model")
workbench.train("my-model", taskset="arithmetic-train", epochs=3)          # sft
workbench.train("my-model", method="rft", jobs=[own_job.id])                # its own wins
workbench.train("my-model", method="grpo", jobs=[own_job.id], beta=0.04)   # grouped runs
```

- ``sft``: supervised fine-tuning on successful runs (any model's: a teacher's, say).
- ``rft``: rejection-sampling fine-tuning (expert iteration): SFT on the fork's *own*
  successful runs, de-duplicated per task, so that a task it solved eight times the same
  way teaches that answer once. Runs its HEAD did not play are used with a warning (that is
  SFT on others' wins), and the manifest's ``on_policy`` says which it was.
- ``grpo``: group-relative policy optimisation from grouped runs
  (:mod:`workbench.training.grpo`).

SFT and RFT train with TRL's ``SFTTrainer`` (:mod:`workbench.training.sft`); every method
writes a peft LoRA adapter on top of the fork's HEAD. With CUDA and the ``gpu`` extra the
model comes from Unsloth. A checkpoint (adapter + ``manifest.json``: data, hyper-parameters,
library versions, metrics) is written to a temporary folder and renamed into
``.workbench/models/NAME/ID`` only when training finishes; only then does it enter the
tree, so an interrupted run leaves nothing half-written. Each optimizer step is stored as it
happens (:func:`training_steps`) and passed to ``on_step`` for live curves.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

import pydantic

from workbench.errors import OptionsError, WorkbenchError, one_line
from workbench.models.hf import quiet_loading
from workbench.store import Store, get_store
from workbench.training import registry
from workbench.training.data import dataset_hash, select_traces, to_dataset, tokenize_conversation

METHODS = ("sft", "rft", "grpo")


class TrainConfig(pydantic.BaseModel):
    """Hyper-parameters of one training run (the API, CLI and training panel fill this).

    ``epsilon``, ``beta``, ``scale_rewards`` and ``temperature`` are GRPO's and mean what
    they mean in TRL's ``GRPOConfig``; SFT and RFT ignore them.
    """

    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)  # no epochs=inf

    method: Literal["sft", "rft", "grpo"] = "sft"
    epochs: float = pydantic.Field(1, gt=0)
    lr: float = pydantic.Field(1e-3, gt=0)
    lora_r: int = pydantic.Field(16, ge=1)
    lora_alpha: int = pydantic.Field(32, ge=1)
    lora_dropout: float = pydantic.Field(0.0, ge=0, lt=1)
    batch_size: int = pydantic.Field(8, ge=1)
    grad_accum: int = pydantic.Field(1, ge=1)
    max_length: int = pydantic.Field(1024, ge=16)
    seed: int = 0
    min_reward: float = 1.0  # sft, rft: runs at or above this reward are examples
    max_per_task: int | None = pydantic.Field(None, ge=1)  # sft, rft: examples per task
    epsilon: float = pydantic.Field(0.2, gt=0, lt=1)  # grpo: the ratio is clipped to 1 ± this
    beta: float = pydantic.Field(0.0, ge=0)  # grpo: weight of KL(policy || parent)
    scale_rewards: bool = True  # grpo: divide advantages by the group's std
    temperature: float | None = pydantic.Field(None, gt=0)  # grpo: None: the jobs' own

    @classmethod
    def of(cls, **options: Any) -> TrainConfig:
        """A config from options (None means unset); bad ones raise one :class:`OptionsError`."""
        try:
            return cls(**{k: v for k, v in options.items() if v is not None})
        except pydantic.ValidationError as e:
            raise OptionsError(one_line(e, cls)) from None


def train(
    name: str,
    taskset: str | None = None,
    jobs: list[str] | None = None,
    *,
    move_head: bool = True,
    store: Store | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    **options: Any,
) -> registry.Checkpoint:
    """Train a fork on the runs of a taskset and/or jobs; returns the new checkpoint.

    Args:
        name: a fork (see :func:`fork`); training starts from its HEAD.
        taskset, jobs: which runs to learn from.
        move_head: point the fork at the new checkpoint (default) or leave HEAD where it is.
        on_step: called after each optimizer step with ``{"step", "epoch", "loss",
            "learning_rate"}``, and for GRPO also ``reward``, ``reward_std``, ``advantage``,
            ``clip_ratio`` and ``kl`` (KL(policy || parent); absent where no rollout of the
            step was sampled by the parent: :mod:`workbench.training.grpo`).
        **options: :class:`TrainConfig` fields: ``method`` ("sft", "rft" or "grpo"),
            epochs, lr, lora_r, batch_size, beta, ...
    """
    store = store or get_store()
    cfg = TrainConfig.of(**options)
    fork_ = registry.require_fork(name, store)
    parent = fork_.head
    data, examples = _select(cfg, fork_, taskset, jobs, store)
    ckpt_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = registry.models_dir(name)
    remove_abandoned(folder)
    partial = folder / f".partial-{ckpt_id}-{os.getpid()}"
    final = folder / ckpt_id
    partial.mkdir(parents=True)
    started = time.time()
    try:
        from workbench.training import sft

        lineage = [Path(c.path) / "adapter" for c in registry.lineage(name, parent, store)]
        model, tokenizer, backend = sft.prepare(fork_.base, lineage, cfg)
        with quiet_loading():  # HF's map bars; ours stay
            tokenized = [_tokenize(tokenizer, e) for e in examples]
            tokens = sum(len(t["input_ids"]) for t in tokenized)
            learned = sum(sum(t["assistant_masks"]) for t in tokenized)
            logger = StepLogger(store, ckpt_id, on_step)
            run = sft.run_grpo if cfg.method == "grpo" else sft.run_sft
            metrics = run(model, tokenizer, tokenized, cfg, partial, logger, progress, backend)
        seconds = time.time() - started
        trained_tokens = metrics.pop("trained_tokens", tokens * cfg.epochs)
        manifest = {
            "id": ckpt_id,
            "model": name,
            "base": fork_.base,
            "parent": parent,
            "method": cfg.method,
            "backend": metrics.pop("backend"),
            "data": {
                **data,
                "tokens": tokens,
                "assistant_tokens": learned,
            },
            "hyperparameters": cfg.model_dump(),
            "versions": versions(),
            "metrics": {
                **metrics,
                "seconds": round(seconds, 1),
                "train_tokens_per_second": round(trained_tokens / metrics["train_seconds"], 1)
                if metrics["train_seconds"]
                else None,
            },
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(partial, final)  # atomic: the checkpoint exists whole or not at all
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    ckpt = registry.Checkpoint(
        id=ckpt_id,
        model=name,
        parent=parent,
        created_at=time.time(),
        method=cfg.method,
        path=str(final),
        manifest=manifest,
    )
    registry.add_checkpoint(ckpt, move_head=move_head, store=store)
    return ckpt


def lora_config(cfg: TrainConfig):
    """The LoRA adapter every CPU method trains: every linear layer, the config's rank."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


# -- data -----------------------------------------------------------------------------------


def _select(cfg: TrainConfig, fork_, taskset, jobs, store) -> tuple[dict[str, Any], list[dict]]:
    """(the manifest's ``data``, the examples: rendered ``messages`` and, for GRPO,
    ``advantage`` and ``reward``) for a method."""
    base = {"taskset": taskset, "jobs": list(jobs or [])}
    if cfg.method == "grpo":
        from workbench.training.grpo import select_groups

        groups = select_groups(taskset, jobs, scale=cfg.scale_rewards, store=store)
        traces = [t for t, _ in groups.rollouts]
        if cfg.temperature is None:  # the jobs of the runs selected (a taskset's too)
            cfg.temperature = _sampling_temperature(_jobs_of(traces), store)
        dataset = to_dataset(traces)
        examples = [
            {
                "messages": m,
                "finish_reasons": f,
                "advantage": a,
                "reward": t.reward,
                "sampled_by_parent": _sampled_by_head(t, fork_),
            }
            for m, f, (t, a) in zip(
                dataset["messages"], dataset["finish_reasons"], groups.rollouts, strict=True
            )
        ]
        data = {**groups.summary(), "temperature": cfg.temperature}
    else:
        traces = select_traces(
            taskset=taskset,
            jobs=jobs,
            min_reward=cfg.min_reward,
            max_per_task=cfg.max_per_task,
            store=store,
        )
        others = [t for t in traces if not _sampled_by_head(t, fork_)]
        if cfg.method == "rft" and others:  # rejection sampling means the fork's own runs
            by = Counter(t.model + (f"@{t.checkpoint}" if t.checkpoint else "") for t in others)
            warnings.warn(
                f"rft on {len(others)} of {len(traces)} runs that {fork_.name}'s HEAD did not "
                f"play ({', '.join(f'{m}: {n}' for m, n in by.most_common())}): this is SFT on "
                "others' wins, not on its own (the checkpoint's manifest says on_policy false)",
                stacklevel=3,
            )
        dataset = to_dataset(traces)
        examples = [
            {"messages": m, "finish_reasons": f}
            for m, f in zip(dataset["messages"], dataset["finish_reasons"], strict=True)
        ]
        data = {"tasks": len({t.task for t in traces})}
    sampled_by = Counter(t.model + (f"@{t.checkpoint}" if t.checkpoint else "") for t in traces)
    return {
        **base,
        **data,
        "traces": len(traces),
        "trace_ids": [t.id for t in traces],
        "dataset_hash": dataset_hash(dataset),
        # turns cut off by max_tokens: their text is learned, an end-of-turn token is not
        "turns_cut_off": sum(f.count("length") for f in dataset["finish_reasons"]),
        "sampled_by": dict(sampled_by),
        # the fork's own runs at its current HEAD: what rft and grpo assume
        "on_policy": all(_sampled_by_head(t, fork_) for t in traces),
    }, examples


def _jobs_of(traces) -> list[str]:
    return sorted({t.job_id for t in traces if t.job_id})


def _sampled_by_head(trace, fork_) -> bool:
    """Whether the fork's current HEAD (the parent of what is trained) sampled ``trace``."""
    return trace.model.partition("@")[0] == fork_.name and trace.checkpoint == fork_.head


def _sampling_temperature(jobs: list[str] | None, store: Store) -> float:
    """The temperature the jobs sampled at (unset: the engines' default, 1.0). GRPO's ratio
    compares the policy's probabilities with the sampler's; a job sampled greedily
    (temperature 0) had no distribution to compare with, so it is refused, not read as 1."""
    found = set()
    for job in jobs or []:
        temperature = store.get_job(job)["config"].get("temperature")
        found.add(1.0 if temperature is None else float(temperature))
    if len(found) > 1:
        raise WorkbenchError(
            f"the jobs sampled at different temperatures ({sorted(found)}): train on one "
            "temperature at a time, or give temperature="
        )
    if 0.0 in found:
        raise WorkbenchError(
            "the jobs sampled at temperature 0 (greedy): GRPO weighs each token by its "
            "probability under the sampler, and greedy sampling has none; evaluate at a "
            "temperature above 0 (e.g. 1.0), or give temperature= to take log-probabilities "
            "at that temperature anyway"
        )
    return found.pop() if found else 1.0


def _tokenize(tokenizer, example: dict[str, Any]) -> dict[str, Any]:
    return {
        **tokenize_conversation(tokenizer, example["messages"], example.get("finish_reasons")),
        **{k: v for k, v in example.items() if k not in ("messages", "finish_reasons")},
    }


# -- bookkeeping ----------------------------------------------------------------------------


def remove_abandoned(folder: Path) -> None:
    """Remove what a training run killed mid-way (SIGKILL: no cleanup ran) left behind: a
    ``.partial-ID-PID`` folder whose process is gone."""
    if not folder.is_dir():
        return
    for partial in folder.glob(".partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        alive = False
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive:
            shutil.rmtree(partial, ignore_errors=True)


def versions() -> dict[str, str]:
    from workbench import DISTRIBUTION

    found = {}
    for key, package in (
        ("workbench", DISTRIBUTION),
        *((p, p) for p in ("torch", "transformers", "trl", "peft", "unsloth")),
    ):
        try:
            found[key] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            pass
    return found


STEP_KEYS = ("step", "epoch", "loss", "learning_rate")


class StepLogger:
    """Writes each optimizer step to the store as it happens (for live curves)."""

    def __init__(self, store: Store, run: str, on_step):
        self.store, self.run, self.on_step = store, run, on_step

    def __call__(self, step: int, logs: dict[str, Any]) -> None:
        if "loss" not in logs:
            return
        row = {
            "run": self.run,
            "step": step,
            "epoch": logs.get("epoch"),
            "loss": float(logs["loss"]),
            "learning_rate": logs.get("learning_rate"),
            "at": time.time(),
        }
        extra = {
            k: float(v)
            for k, v in logs.items()
            if k not in row and isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.store.add_training_step(row, extra)
        if self.on_step is not None:
            self.on_step({**{k: row[k] for k in STEP_KEYS}, **extra})


def training_steps(run: str, store: Store | None = None):
    """The logged steps of a training run (a checkpoint id) as a DataFrame: ``step``,
    ``epoch``, ``loss``, ``learning_rate``, ``at``, and for GRPO ``reward``, ``reward_std``,
    ``advantage``, ``kl``, ``clip_ratio``, ``completion_tokens``."""
    return (store or get_store()).training_steps(run)
