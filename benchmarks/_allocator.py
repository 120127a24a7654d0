"""Allocator mode of a benchmark process, settled before torch is imported.

``reuse`` (default): glibc is told to keep freed memory (fixed mmap threshold of 4 GiB, no trimming),
so a 256 MiB output reuses pages freed by the previous call instead of being mmap'ed fresh. Timings then
measure the kernels and memory bandwidth, not the kernel's page-fault path, which with 4 KiB pages
(transparent huge pages in ``madvise`` mode) costs 60-300 ms per fresh 256 MiB tensor on a busy host
and dwarfs a clone (~30 ms). It is also what a caching allocator gives in a training loop.

``system``: glibc's defaults: blocks above 32 MiB are always fresh mmaps, so every out-of-place op on
a large tensor pays page faults (what a plain PyTorch CPU program sees today).

glibc reads these settings only at start-up, so ``ensure()`` re-executes the script with them set.
"""

from __future__ import annotations

import os
import sys

REUSE_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 40), "MALLOC_TOP_PAD_": "0"}
MARK = "HYPOPS_BENCH_ALLOCATOR"


def requested(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--allocator" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--allocator="):
            return a.split("=", 1)[1]
    return "reuse"


def ensure(argv: list[str] | None = None) -> str:
    """Re-executes this process with the requested allocator settings unless they are in place."""
    argv = sys.argv if argv is None else argv
    if "--memory-worker" in argv or "-h" in argv or "--help" in argv:
        return os.environ.get(MARK, "system")
    mode = requested(argv[1:])
    if mode not in ("reuse", "system"):
        return mode  # argparse reports the bad value
    want = dict(REUSE_ENV) if mode == "reuse" else {}
    env = dict(os.environ)
    if env.get(MARK) == mode and all(env.get(k) == v for k, v in want.items()):
        return mode
    for k in REUSE_ENV:
        env.pop(k, None)
    env.update(want)
    env[MARK] = mode
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
    return mode  # not reached


def current() -> str:
    return os.environ.get(MARK, "system" if "MALLOC_MMAP_THRESHOLD_" not in os.environ else "custom")
