"""Supervised fine-tuning (SFT and RFT) with TRL, and the loading every method shares.

```python
workbench.fork("smollm2-135m", "smollm2-calc")
ckpt = workbench.train("smollm2-calc", taskset="arithmetic-train", epochs=3)
# "smollm2-calc" now evaluates as the trained checkpoint, everywhere.
```

:func:`workbench.training.trainer.train` is the entry point for every method; this module
holds what it calls: :func:`prepare` (the fork's HEAD: its base, loaded by
:mod:`workbench.models.hf`, with its adapter lineage merged) and the trainers. On the CPU, SFT is TRL's ``SFTTrainer`` with a peft
LoRA adapter; with CUDA and the ``gpu`` extra installed, Unsloth's ``FastLanguageModel``
does the same faster (and :func:`run_grpo` trains an Unsloth model with GRPO's loop). The
Unsloth path runs in the test suite against a stand-in ``FastLanguageModel`` that records
what it is given (tests/test_training.py); the real one needs a GPU. The loss is
taken on assistant tokens only.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

from workbench.models.hf import (
    apply_adapters,
    cuda_available,
    import_unsloth,
    load_model,
    materialize_base,
    use_unsloth,
)
from workbench.training.trainer import (  # noqa: F401 - the names this module used to hold
    TrainConfig,
    lora_config,
    remove_abandoned,
    train,
    training_steps,
    versions,
)

_remove_abandoned = remove_abandoned  # older name, kept for callers
_versions = versions


def prepare(base: str, lineage: list[Path], cfg: TrainConfig):
    """(model, tokenizer, backend) that training starts from: the base with the fork's
    lineage merged (its HEAD, whatever the trainer). ``backend`` is "unsloth" with CUDA and
    the ``gpu`` extra (the model then carries Unsloth's fresh LoRA adapter), else "peft"."""
    if use_unsloth():
        import_unsloth()  # before transformers, trl and peft: Unsloth patches them
        model, tokenizer = _unsloth_model(base, lineage, cfg)
        return model, tokenizer, "unsloth"
    model, tokenizer = load_model(base)
    model = apply_adapters(model, lineage)
    if cuda_available():
        model = model.to("cuda")
    return model, tokenizer, "peft"


def run_sft(model, tokenizer, tokenized, cfg, out: Path, logger, progress, backend: str):
    """SFT (and RFT) on tokenized conversations; the adapter goes to ``out/adapter``."""
    import datasets

    data = datasets.Dataset.from_list(
        [{"input_ids": t["input_ids"], "assistant_masks": t["assistant_masks"]} for t in tokenized]
    )
    if backend == "unsloth":
        return _train_unsloth(model, tokenizer, data, cfg, out, logger)
    return _train_trl(model, tokenizer, data, cfg, out, logger, progress)


def run_grpo(model, tokenizer, tokenized, cfg, out: Path, logger, progress, backend: str):
    """GRPO (:mod:`workbench.training.grpo`) on a peft model, or on Unsloth's with CUDA."""
    from workbench.training.grpo import train_grpo

    return train_grpo(model, tokenizer, tokenized, cfg, out, logger, progress, backend)


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


def precision() -> dict[str, bool]:
    """The trainer's mixed precision: bf16 where the device computes it natively, fp16 on a
    GPU without bf16 (a T4), else full fp32.

    TRL's default is bf16 everywhere. On a CPU without AVX-512 torch has no fast bf16 matrix
    product: it multiplies in a scalar loop on one core, and a step of the Loop demo's SFT
    (8 conversations) took over 5 minutes on an AVX2 EPYC, against ~25 s in fp32 on both
    cores. Where oneDNN has bf16 kernels (AVX-512 and newer) it stays on."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    return {"bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "fp16": False}


# Activations kept for the backward pass, in values per token and layer, of a Llama-shaped
# model (norms, attention's inputs and output, the MLP's four wide tensors; measured against
# peak memory in benchmarks/README.md, "Training").
def _activation_bytes_per_token(model) -> int:
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    wide = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    if not (hidden and layers):
        return 0  # not a shape we know: keep TRL's default (checkpointing)
    return layers * (8 * hidden + 5 * wide) * 4  # fp32 on the CPU


KEEP_ACTIVATIONS_BYTES = 4 << 30  # at most this much, and a quarter of the free memory


def gradient_checkpointing(model, tokenized: list[dict[str, Any]], cfg: TrainConfig) -> bool:
    """Whether the CPU trainer recomputes activations in the backward pass (TRL's default).

    Recomputing costs 15-25% of a step on a CPU; keeping them costs memory in proportion to the
    tokens of a batch. They are kept where the largest batch's fit in ``KEEP_ACTIVATIONS_BYTES``
    and in a quarter of the memory free now: the Loop's short conversations (SmolLM2-135M,
    8 of ~300 tokens: ~3.5 GB), not eight of 1,024 tokens (~12 GB)."""
    per_token = _activation_bytes_per_token(model)
    if not per_token or not tokenized:
        return True
    if hasattr(tokenized, "column_names"):  # a datasets.Dataset: one column, not every row
        longest = max(len(ids) for ids in tokenized["input_ids"])
    else:
        longest = max(len(t["input_ids"]) for t in tokenized)
    tokens = cfg.batch_size * min(longest, cfg.max_length)
    return tokens * per_token > min(KEEP_ACTIVATIONS_BYTES, _free_memory() // 4)


def _free_memory() -> int:
    """Bytes of memory available now (``MemAvailable``); 0 where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


_COMPACT_LOCK = threading.Lock()


def _score_labelled_positions_only() -> None:
    """Make TRL's fused LM head score only the positions that carry the loss, on the CPU too.

    TRL projects hidden states through the LM head in tiles and, off Triton devices, over every
    position of the batch (so that a compiler sees one tile shape), labelled or not. The Loop's
    loss is on assistant tokens, ~15% of a conversation, and SmolLM2's head (49,152 x 576) over
    every position was a third of a CPU step: on the CPU, which compiles nothing, scoring the
    labelled positions alone gives the same loss and gradients for less (31 -> 20 s a step of
    the Loop demo; benchmarks/README.md, "Training"). TRL decides it by one module-level
    function; it is wrapped once per process (thread-safe, the same answer for every caller
    elsewhere). A TRL without that function trains as it would: nothing is changed."""
    try:
        from trl.trainer import utils
    except ImportError:
        return
    with _COMPACT_LOCK:
        use_triton = getattr(utils, "_use_triton", None)
        if use_triton is None or getattr(use_triton, "workbench_compact_on_cpu", False):
            return

        def compact(device) -> bool:
            return device.type == "cpu" or use_triton(device)

        compact.workbench_compact_on_cpu = True
        compact.wrapped = use_triton
        utils._use_triton = compact


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
    from trl import SFTTrainer

    extra: dict[str, Any] = {}
    if not cuda_available():
        _score_labelled_positions_only()
        extra["gradient_checkpointing"] = gradient_checkpointing(model, tokenized, cfg)
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(cfg, out, use_cpu=not cuda_available(), **precision(), **extra),
        train_dataset=tokenized,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[_trainer_callback(logger, progress)],
    )
    return _run(trainer, "trl", out)


def _unsloth_model(base: str, lineage: list[Path], cfg: TrainConfig):
    """Unsloth's model of the base with the fork's lineage merged, and a fresh LoRA adapter."""
    FastLanguageModel = import_unsloth().FastLanguageModel  # noqa: N806 - Unsloth's name

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


def _train_unsloth(fast, fast_tokenizer, tokenized, cfg: TrainConfig, out: Path, logger):
    """The same training with Unsloth's kernels on a CUDA GPU (the ``gpu`` extra)."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=fast,
        args=_sft_config(cfg, out, **precision()),
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
    args = trainer.args
    return {
        "backend": backend,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "train_loss": round(float(result.training_loss), 4),
        "final_loss": _last_loss(trainer),
        "steps": int(result.global_step),
        "train_seconds": round(float(result.metrics["train_runtime"]), 2),
    }


def _last_loss(trainer) -> float | None:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return round(float(losses[-1]), 4) if losses else None
