"""The machine a benchmark ran on, in one line: figures from different CPUs are not comparable.

The 2-core development machines are not all alike: some are AMD EPYC with AVX-512 (VNNI: the
llama.cpp build picks its 8-bit dot-product kernels by it), some have AVX2 only and run the
same scripts at half the speed or less. Every script prints this first.
"""

from __future__ import annotations

import os
import platform
import sys


def cpu() -> str:
    """The CPU's model name and the vector extensions that change the figures."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the model name is all there is
        return name
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        vector = "AVX-512 VNNI"
    elif "avx512f" in flags:
        vector = "AVX-512, no VNNI"
    elif "avx2" in flags:
        vector = "AVX2, no AVX-512"
    else:
        vector = "no AVX2"
    return f"{name} ({vector})"


def describe() -> str:
    total = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    cores = f"{total} cores" if usable == total else f"{usable} of its {total} cores"
    return f"machine: {platform.machine()}, {cores}, {cpu()}, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    print(describe())
