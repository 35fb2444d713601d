"""Supervised fine-tuning (SFT and RFT) with TRL, and the loading every method shares.

```python
workbench.fork("smollm2-135m", "smollm2-calc")
ckpt = workbench.train("smollm2-calc", taskset="arithmetic-train", epochs=3)
# "smollm2-calc" now evaluates as the trained checkpoint, everywhere.
```

:func:`workbench.training.trainer.train` is the entry point for every method; this module
holds what it calls: loading a base model (from its de-quantised copy under
``.workbench/bases/`` once one exists: a second instead of the GGUF's ~15-80 s), merging a
fork's adapter lineage, and the trainers. On the CPU, SFT is TRL's ``SFTTrainer`` with a peft
LoRA adapter; with CUDA and the ``gpu`` extra installed, Unsloth's ``FastLanguageModel``
does the same faster (and :func:`run_grpo` trains an Unsloth model with GRPO's loop). The
Unsloth paths import cleanly but are not run by the test suite: CI has no GPU. The loss is
taken on assistant tokens only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from workbench.models.local import quiet_loading
from workbench.training.trainer import (  # noqa: F401 - the names this module used to hold
    TrainConfig,
    remove_abandoned,
    train,
    training_steps,
    versions,
)

_remove_abandoned = remove_abandoned  # older name, kept for callers
_versions = versions


def load_base(base: str):
    """(model, tokenizer) of a base model in full precision, ready to train."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from workbench.models.local import resolve_local

    hf_logging.set_verbosity_error()
    folder, gguf = resolve_local(base)
    if gguf and (base_copy(base) / "config.json").exists():
        folder, gguf = base_copy(base), None  # the same weights, de-quantised once
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


def _has(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def use_unsloth() -> bool:
    """Train with Unsloth: a CUDA GPU and the ``gpu`` extra are both present."""
    return _cuda() and _has("unsloth")


def run_sft(base, lineage, model, tokenizer, tokenized, cfg, out: Path, logger, progress):
    """SFT (and RFT) on tokenized conversations; the adapter goes to ``out/adapter``."""
    import datasets

    data = datasets.Dataset.from_list(
        [{"input_ids": t["input_ids"], "assistant_masks": t["assistant_masks"]} for t in tokenized]
    )
    if use_unsloth():
        return _train_unsloth(base, lineage, data, cfg, out, logger)
    return _train_trl(model, tokenizer, data, cfg, out, logger, progress)


def run_grpo(base, lineage, model, tokenizer, tokenized, cfg, out: Path, logger, progress):
    """GRPO (:mod:`workbench.training.grpo`) on a peft model, or on Unsloth's with CUDA."""
    from workbench.training.grpo import train_grpo

    if use_unsloth():
        del model
        model, tokenizer = _unsloth_model(base, lineage, cfg)
        return train_grpo(model, tokenizer, tokenized, cfg, out, logger, progress, "unsloth")
    if _cuda():
        model = model.to("cuda")
    return train_grpo(model, tokenizer, tokenized, cfg, out, logger, progress)


def _trainer_callback(logger, progress: bool):
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


def _unsloth_model(base: str, lineage: list[Path], cfg: TrainConfig):
    """Unsloth's model of the base with the fork's lineage merged, and a fresh LoRA adapter."""
    from unsloth import FastLanguageModel

    fast, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(materialize_base(base)), max_seq_length=cfg.max_length, load_in_4bit=False
    )
    fast = apply_adapters(fast, lineage)  # train on top of HEAD, not the bare base
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
    return fast, tokenizer


def _train_unsloth(base, lineage, tokenized, cfg: TrainConfig, out: Path, logger):
    """The same training with Unsloth's kernels on a CUDA GPU (the ``gpu`` extra)."""
    from trl import SFTTrainer

    fast, fast_tokenizer = _unsloth_model(base, lineage, cfg)
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


def base_copy(base: str) -> Path:
    """Where :func:`materialize_base` keeps a GGUF base's de-quantised copy."""
    from workbench import config

    return config.home() / "bases" / (Path(base).stem if base.endswith(".gguf") else base)


def materialize_base(base: str) -> Path:
    """A Hugging Face folder of a base model (a GGUF is de-quantised and saved once)."""
    from workbench.models.local import resolve_local

    folder, gguf = resolve_local(base)
    if gguf is None:
        return folder
    target = base_copy(base)
    if (target / "config.json").exists():
        return target
    model, tokenizer = load_base(base)  # already a plain copy of the GGUF's weights
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def _last_loss(trainer) -> float | None:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return round(float(losses[-1]), 4) if losses else None
