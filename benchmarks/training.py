"""Training throughput: LoRA SFT and GRPO, tokens per second and seconds per step.

SFT: teacher traces (``scripted:calculator`` on ``arithmetic-train``, 79 conversations)
train a fork of SmolLM2-135M, as ``workbench loop`` does. GRPO: one self-improvement round's
worth of grouped runs (24 ``mental-train`` tasks x 8 runs of ``scripted:coin``, which is
right on about half of them, so most groups carry a signal) train a fork by
``method="grpo"``. Each repeat is a fresh fork and store.

On a CUDA machine with the ``gpu`` extra the same script runs Unsloth, and with
``--backend trl`` plain TRL / peft, for the comparison. ``--model config`` needs neither the
bundled model nor the store: it builds SmolLM2-135M's architecture from a config (random
weights, a byte-level tokenizer: nothing to download) and times GRPO's loop on synthetic
rollouts of the Loop's shape (a 45-token prompt, a 12-token answer), on the CPU or
``--device cuda``.

    python benchmarks/training.py [--method sft|grpo|both] [--repeats 3] [--epochs 1]
    python benchmarks/training.py --method grpo --model config --device cuda

On a 2-core machine that others share, ``--threads 1`` can be several times faster than
torch's default of one thread per core (its threads wait for each other while the cores are
busy elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

GRPO_TASKS = 24  # one Loop round: tasks_per_round
GRPO_GROUP = 8


def one_run(method: str, epochs: float, backend: str) -> dict:
    import workbench
    from workbench.store import Store
    from workbench.training import sft

    if backend == "trl":
        sft._has = lambda package: False  # noqa: SLF001 - force plain TRL on a GPU machine
    with tempfile.TemporaryDirectory() as home:
        os.environ["WORKBENCH_HOME"] = home
        store = Store(f"sqlite:///{home}/bench.db")
        if method == "grpo":
            slugs = workbench.load_taskset("mental-train").slugs[:GRPO_TASKS]
            job = asyncio.run(
                workbench.evaluate(
                    "mental-train",
                    "scripted:coin",
                    group_size=GRPO_GROUP,
                    task_ids=slugs,
                    store=store,
                )
            )
        else:
            job = asyncio.run(
                workbench.evaluate("arithmetic-train", "scripted:calculator", store=store)
            )
        workbench.fork("smollm2-135m", "bench", store=store)
        ckpt = workbench.train(
            "bench", jobs=[job.id], method=method, epochs=epochs, store=store, progress=False
        )
        store.engine.dispose()
    m = ckpt.metrics
    return {
        **m,
        "method": method,
        "examples": ckpt.manifest["data"]["traces"],
        "tokens": ckpt.manifest["data"]["tokens"],
        "backend": f"{ckpt.manifest['backend']} {m.get('precision', '')}".strip(),
        "seconds_per_step": m["train_seconds"] / max(1, m["steps"]),
    }


# -- GRPO on a model built from a config (no download; a GPU machine) ---------------------


def byte_tokenizer():
    """A byte-level tokenizer with a ChatML template: 259 tokens, no files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tokenizer


def smollm2_shaped(vocab_size: int, device: str):
    """SmolLM2-135M's architecture (30 layers, width 576, GQA 9/3) with random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return LlamaForCausalLM(config).to(device=device, dtype=dtype)


def config_run(epochs: float, device: str, rollouts: int, prompt: int, answer: int) -> dict:
    import random
    from types import SimpleNamespace

    from workbench.training.grpo import train_grpo

    tokenizer = byte_tokenizer()
    model = smollm2_shaped(len(tokenizer), device)
    rng = random.Random(0)
    examples = []
    for i in range(rollouts):
        n = answer + rng.randint(-4, 4)
        ids = [rng.randrange(256) for _ in range(prompt + n)]
        reward = float(i % GRPO_GROUP < GRPO_GROUP // 2)
        examples.append(
            {
                "input_ids": ids,
                "assistant_masks": [0] * prompt + [1] * n,
                "advantage": 1.0 if reward else -1.0,
                "reward": reward,
            }
        )
    cfg = SimpleNamespace(
        lora_r=16, lora_alpha=32, lora_dropout=0.0, lr=1e-3, batch_size=8, grad_accum=1,
        epochs=epochs, seed=0, epsilon=0.2, beta=0.04, temperature=1.0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        from pathlib import Path

        started = time.perf_counter()
        m = train_grpo(model, tokenizer, examples, cfg, Path(out), lambda *a: None, False)
        wall = time.perf_counter() - started
    return {
        **m,
        "method": "grpo",
        "examples": rollouts,
        "tokens": sum(len(e["input_ids"]) for e in examples),
        "backend": f"{m['backend']} {m['precision']} ({device}, config)",
        "seconds_per_step": m["train_seconds"] / max(1, m["steps"]),
        "train_tokens_per_second": m["trained_tokens"] / m["train_seconds"],
        "wall": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["sft", "grpo", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--backend", choices=["auto", "trl"], default="auto")
    parser.add_argument("--model", choices=["bundled", "config"], default="bundled")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--rollouts", type=int, default=GRPO_TASKS * GRPO_GROUP)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from _machine import describe  # benchmarks/_machine.py

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(
        f"{describe()}, device {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'method':>6} {'backend':>22} {'examples':>8} {'tokens':>7} {'steps':>5} "
        f"{'train s':>8} {'s/step':>7} {'tokens/s':>9} {'final loss':>10}"
    )
    methods = ["sft", "grpo"] if args.method == "both" else [args.method]
    if args.model == "config":
        methods = ["grpo"]
    rates: dict[str, list[float]] = {m: [] for m in methods}
    for method in methods:
        for _ in range(args.repeats):
            if args.model == "config":
                m = config_run(args.epochs, args.device, args.rollouts, 45, 12)
            else:
                m = one_run(method, args.epochs, args.backend)
            rates[method].append(m["train_tokens_per_second"])
            print(
                f"{method:>6} {m['backend']:>22} {m['examples']:>8} {m['tokens']:>7} "
                f"{m['steps']:>5} {m['train_seconds']:>8.1f} {m['seconds_per_step']:>7.2f} "
                f"{m['train_tokens_per_second']:>9.1f} {m['final_loss']:>10}",
                flush=True,
            )
    for method, found in rates.items():
        print(f"median training tokens/s, {method}: {statistics.median(found):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
