"""hypops.info(): how this installation was built and which backend serves which device."""

from __future__ import annotations

import os
import platform

import torch

from . import _backend


def info() -> dict:
    """Version, build, torch/triton versions, threads and the backend serving each device."""
    from . import __version__

    build: dict = {"extension": _backend.native_error is None}
    if _backend.native_error is None:
        from . import _C

        build.update(compiler=_C.compiler, openmp=bool(_C.has_openmp), simd=_C.simd, cuda=bool(_C.has_cuda))
        # the per-ISA CPU kernels chosen at run time (csrc/cpu/simd/); older builds lack the function
        build["cpu_kernels"] = _C.cpu_kernels() if hasattr(_C, "cpu_kernels") else None
        # output rows are written with streaming stores above this many bytes of rows per op (-1: never)
        build["stream_min_bytes"] = _C.stream_min_bytes() if hasattr(_C, "stream_min_bytes") else None
    else:
        build["error"] = _backend.native_error
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    serving = {}
    for dev in devices:
        try:
            serving[dev] = _backend.choose("expmap0", torch.device(dev))
        except _backend.BackendUnavailable as e:
            serving[dev] = f"error: {e}"
    return {
        "hypops": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton_version,
        "build": build,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "backend_requested": _backend.requested(),
        "backend_serving": serving,
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
    }


def format_info(d: dict) -> str:
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk}={vv}" for kk, vv in v.items())
        lines.append(f"{k:18s} {v}")
    return "\n".join(lines)
