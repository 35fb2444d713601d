"""Training throughput: tokens per second of LoRA SFT with the Loop demo's settings.

Teacher traces (``scripted:calculator`` on ``arithmetic-train``, 79 conversations) train a
fork of SmolLM2-135M, as ``workbench loop`` does; each repeat is a fresh fork and store.
On a CUDA machine with the ``gpu`` extra the same script runs Unsloth, and with
``--backend trl`` plain TRL, for the comparison.

    python benchmarks/training.py [--repeats 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile


def one_run(epochs: float, backend: str) -> dict:
    import workbench
    from workbench.store import Store
    from workbench.training import sft

    if backend == "trl":
        sft._has = lambda package: False  # noqa: SLF001 - force plain TRL on a GPU machine
    with tempfile.TemporaryDirectory() as home:
        os.environ["WORKBENCH_HOME"] = home
        store = Store(f"sqlite:///{home}/bench.db")
        job = asyncio.run(
            workbench.evaluate("arithmetic-train", "scripted:calculator", store=store)
        )
        workbench.fork("smollm2-135m", "bench", store=store)
        ckpt = workbench.train("bench", jobs=[job.id], epochs=epochs, store=store, progress=False)
        store.engine.dispose()
    return {
        **ckpt.metrics,
        "tokens": ckpt.manifest["data"]["tokens"],
        "backend": ckpt.manifest["backend"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--backend", choices=["auto", "trl"], default="auto")
    args = parser.parse_args(argv)

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, device {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"{'backend':>8} {'tokens':>7} {'epochs':>6} {'steps':>5} {'train s':>8} "
        f"{'tokens/s':>9} {'final loss':>10}"
    )
    rates = []
    for _ in range(args.repeats):
        m = one_run(args.epochs, args.backend)
        rates.append(m["train_tokens_per_second"])
        print(
            f"{m['backend']:>8} {m['tokens']:>7} {args.epochs:>6g} {m['steps']:>5} "
            f"{m['train_seconds']:>8.1f} {m['train_tokens_per_second']:>9.1f} "
            f"{m['final_loss']:>10}"
        )
    print(f"median training tokens/s: {statistics.median(rates):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
