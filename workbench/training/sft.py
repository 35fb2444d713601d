"""Supervised fine-tuning on successful traces: a LoRA adapter, a new checkpoint, HEAD moves.

```python
workbench.fork("smollm2-135m", "smollm2-calc")
ckpt = workbench.train("smollm2-calc", taskset="arithmetic-train", epochs=3)
# "smollm2-calc" now evaluates as the trained checkpoint, everywhere.
```

On the CPU this is TRL's ``SFTTrainer`` with a peft LoRA adapter; with CUDA and the ``gpu``
extra installed, Unsloth's ``FastLanguageModel`` does the same faster. The loss is taken on
assistant tokens only. A checkpoint (adapter + ``manifest.json``) is written to a temporary
folder and renamed into ``.workbench/models/NAME/ID`` only when training finishes; only then
does it enter the tree, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pydantic

from workbench.errors import WorkbenchError
from workbench.models.local import quiet_loading
from workbench.store import Store, get_store, training_steps_table
from workbench.training import registry
from workbench.training.data import dataset_hash, select_traces, to_dataset, tokenize_conversation


class TrainConfig(pydantic.BaseModel):
    """Hyper-parameters of one training run (the API, CLI and training panel fill this)."""

    method: str = "sft"
    epochs: float = pydantic.Field(1, gt=0)
    lr: float = pydantic.Field(1e-3, gt=0)
    lora_r: int = pydantic.Field(16, ge=1)
    lora_alpha: int = pydantic.Field(32, ge=1)
    lora_dropout: float = pydantic.Field(0.0, ge=0, lt=1)
    batch_size: int = pydantic.Field(8, ge=1)
    grad_accum: int = pydantic.Field(1, ge=1)
    max_length: int = pydantic.Field(1024, ge=16)
    seed: int = 0
    min_reward: float = 1.0
    max_per_task: int | None = None


def _remove_abandoned(folder: Path) -> None:
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


def _versions() -> dict[str, str]:
    found = {}
    for package in ("workbench", "torch", "transformers", "trl", "peft", "unsloth"):
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            pass
    return found


def load_base(base: str):
    """(model, tokenizer) of a base model in full precision, ready to train."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from workbench.models.local import resolve_local

    hf_logging.set_verbosity_error()
    folder, gguf = resolve_local(base)
    kwargs = {"gguf_file": gguf} if gguf else {}
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    if gguf:
        # A model loaded from GGUF counts as quantised (transformers will not train it, and
        # cannot always save it): copy its de-quantised weights into a plain model.
        model = _plain_copy(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _plain_copy(model):
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    return plain


def apply_adapters(model, adapters: list[Path]):
    """Merge a lineage of LoRA adapters into the model, oldest first."""
    from peft import PeftModel

    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


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
    """Train a fork on the successful traces of a taskset and/or jobs; returns the checkpoint.

    Args:
        name: a fork (see :func:`fork`); training starts from its HEAD.
        taskset, jobs: which traces to learn from (runs with ``reward >= min_reward``).
        move_head: point the fork at the new checkpoint (default) or leave HEAD where it is.
        on_step: called with ``{"step", "loss", "epoch", "learning_rate"}`` as training goes.
        **options: :class:`TrainConfig` fields (epochs, lr, lora_r, batch_size, ...).
    """
    store = store or get_store()
    cfg = TrainConfig(**options)
    if cfg.method != "sft":
        raise WorkbenchError(f"training method '{cfg.method}' is not implemented: use 'sft'")
    fork_ = registry.require_fork(name, store)
    traces = select_traces(
        taskset=taskset,
        jobs=jobs,
        min_reward=cfg.min_reward,
        max_per_task=cfg.max_per_task,
        store=store,
    )
    dataset = to_dataset(traces)
    parent = fork_.head
    ckpt_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = registry.models_dir(name)
    _remove_abandoned(folder)
    partial = folder / f".partial-{ckpt_id}-{os.getpid()}"
    final = folder / ckpt_id
    partial.mkdir(parents=True)
    started = time.time()
    try:
        with quiet_loading():  # HF's loading and map bars; ours stay
            model, tokenizer = load_base(fork_.base)
            model = apply_adapters(
                model, [Path(c.path) / "adapter" for c in registry.lineage(name, parent, store)]
            )
            tokenized = dataset.map(
                lambda ex: tokenize_conversation(tokenizer, ex["messages"]),
                remove_columns=dataset.column_names,
            )
            tokens = sum(len(ids) for ids in tokenized["input_ids"])
            learned = sum(sum(m) for m in tokenized["assistant_masks"])
            logger = _StepLogger(store, ckpt_id, on_step)
            if _cuda() and _has("unsloth"):
                metrics = _train_unsloth(
                    fork_.base, model, tokenizer, tokenized, cfg, partial, logger
                )
            else:
                metrics = _train_trl(model, tokenizer, tokenized, cfg, partial, logger, progress)
            seconds = time.time() - started
            manifest = {
                "id": ckpt_id,
                "model": name,
                "base": fork_.base,
                "parent": parent,
                "method": cfg.method,
                "backend": metrics.pop("backend"),
                "data": {
                    "taskset": taskset,
                    "jobs": list(jobs or []),
                    "traces": len(traces),
                    "trace_ids": [t.id for t in traces],
                    "dataset_hash": dataset_hash(dataset),
                    "tokens": tokens,
                    "assistant_tokens": learned,
                },
                "hyperparameters": cfg.model_dump(),
                "versions": _versions(),
                "metrics": {
                    **metrics,
                    "seconds": round(seconds, 1),
                    "train_tokens_per_second": round(
                        tokens * cfg.epochs / metrics["train_seconds"], 1
                    ),
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


def _has(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


class _StepLogger:
    """Writes each logged training step to the store as it happens (for live loss plots)."""

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
        with self.store.engine.begin() as conn:
            conn.execute(training_steps_table.insert().values(row))
        if self.on_step is not None:
            self.on_step({k: row[k] for k in ("step", "epoch", "loss", "learning_rate")})


def _trainer_callback(logger: _StepLogger, progress: bool):
    """Store each step's loss; show one progress bar with the loss (tqdm.auto: notebooks too)."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StepCallback(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if progress:
                self.bar = tqdm(total=state.max_steps, desc="training", unit="step")

        def on_log(self, args, state, control, logs=None, **kwargs):
            logger(state.global_step, logs or {})
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return StepCallback()


def _quiet(trainer) -> None:
    """Our callback shows progress; drop the trainer's own bar and its printed log dicts."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)


def _sft_config(cfg: TrainConfig, out: Path, **extra):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out / "trainer"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        disable_tqdm=True,  # our own bar: see _trainer_callback
        lr_scheduler_type="cosine",
        warmup_steps=2,
        **extra,
    )


def _train_trl(model, tokenizer, tokenized, cfg: TrainConfig, out: Path, logger, progress: bool):
    from peft import LoraConfig
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=_sft_config(cfg, out, use_cpu=not _cuda()),
        train_dataset=tokenized,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        callbacks=[_trainer_callback(logger, progress)],
    )
    return _run(trainer, "trl", out)


def _train_unsloth(base, model, tokenizer, tokenized, cfg: TrainConfig, out: Path, logger):
    """The same training with Unsloth's kernels on a CUDA GPU (the ``gpu`` extra)."""
    from trl import SFTTrainer
    from unsloth import FastLanguageModel

    del model  # Unsloth loads its own copy from a Hugging Face folder
    folder = materialize_base(base)
    fast, fast_tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(folder), max_seq_length=cfg.max_length, load_in_4bit=False
    )
    fast = FastLanguageModel.get_peft_model(
        fast,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        random_state=cfg.seed,
    )
    trainer = SFTTrainer(
        model=fast,
        args=_sft_config(cfg, out, bf16=True),
        train_dataset=tokenized,
        processing_class=fast_tokenizer,
        callbacks=[_trainer_callback(logger, True)],
    )
    return _run(trainer, "unsloth", out)


def _run(trainer, backend: str, out: Path) -> dict[str, Any]:
    """Train, save the adapter into ``out/adapter``, and return the run's metrics."""
    _quiet(trainer)
    result = trainer.train()
    trainer.model.save_pretrained(str(out / "adapter"))
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return {
        "backend": backend,
        "train_loss": round(float(result.training_loss), 4),
        "final_loss": _last_loss(trainer),
        "steps": int(result.global_step),
        "train_seconds": round(float(result.metrics["train_runtime"]), 2),
    }


def materialize_base(base: str) -> Path:
    """A Hugging Face folder of a base model (a GGUF is de-quantised and saved once)."""
    from workbench import config
    from workbench.models.local import resolve_local

    folder, gguf = resolve_local(base)
    if gguf is None:
        return folder
    target = config.home() / "bases" / base
    if (target / "config.json").exists():
        return target
    model, tokenizer = load_base(base)  # already a plain copy of the GGUF's weights
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    os.replace(partial, target)
    return target


def _last_loss(trainer) -> float | None:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return round(float(losses[-1]), 4) if losses else None


def training_steps(run: str, store: Store | None = None):
    """The logged steps of a training run (a checkpoint id) as a DataFrame."""
    import pandas as pd
    import sqlalchemy as sa

    store = store or get_store()
    t = training_steps_table
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.run == run).order_by(t.c.step)).mappings().all()
    return pd.DataFrame(rows)
