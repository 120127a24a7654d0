"""Which implementation serves a call: ``native`` (the compiled C++/CUDA ops), ``triton`` or ``torch``
(``hypops.reference``, plain PyTorch).

Each backend lists the reasons it cannot serve a call (extension not built, no kernel for that op or
device, ...). The automatic choice takes the first backend with no reasons, in the order
``native, torch`` for CPU tensors and ``native, triton, torch`` for CUDA tensors. A backend asked for
explicitly -- the ``backend=`` argument, then ``use_backend(...)``, then the ``HYPOPS_BACKEND``
environment variable -- is used or raises ``BackendUnavailable`` with its reasons; it never falls back
silently.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Callable

import torch

BACKENDS = ("native", "triton", "torch")

# op name -> backend name -> implementation (same signature as the public function, c a 0-dim tensor)
_IMPLS: dict[str, dict[str, Callable]] = {}
# Set by use_backend(). A plain module global (not a ContextVar) so torch.compile can trace the choice
# without a graph break; it guards on the value and recompiles if it changes. Not per-thread.
_requested: str | None = None
# Looked up once: an import inside a traced function would break the graph.
_has_triton = importlib.util.find_spec("triton") is not None

# Why the compiled extension is missing (None when it loaded); set by hypops/__init__.py.
native_error: str | None = "hypops._C was not imported"
native_has_cuda = False
# Why the Triton kernels could not be loaded, if triton is installed but they failed to import.
triton_error: str | None = None


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot serve the call."""


def register(op: str, backend: str, fn: Callable) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    _IMPLS.setdefault(op, {})[backend] = fn
    _CHOICE.clear()


def _triton_problem(device: torch.device) -> str | None:
    if not _has_triton:
        return "triton is not installed (pip install hypops[triton])"
    if triton_error is not None:
        return triton_error
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "Triton runs CPU tensors only in its interpreter (set TRITON_INTERPRET=1 before importing hypops)"
    if device.type not in ("cpu", "cuda"):
        return f"Triton kernels do not run on {device.type} tensors"
    return None


def reasons(backend: str, op: str, device: torch.device) -> list[str]:
    """Why ``backend`` cannot run ``op`` on tensors of ``device`` (empty: it can)."""
    if backend not in BACKENDS:
        return [f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"]
    out = []
    if backend == "native":
        if native_error is not None:
            out.append(f"the compiled extension is unavailable ({native_error})")
        if device.type == "cuda" and not native_has_cuda:
            out.append("hypops._C was built without CUDA kernels")
        elif device.type not in ("cpu", "cuda"):
            out.append(f"no native kernels for {device.type} tensors")
    elif backend == "triton":
        problem = _triton_problem(device)
        if problem:
            out.append(problem)
    if backend not in _IMPLS.get(op, {}) and not out:
        out.append(f"{op} has no {backend} implementation yet")
    elif backend == "native" and not out and not _native_kernel(op, device.type):
        out.append(f"hypops._C has no {device.type.upper()} kernel for {op} yet")
    return out


@torch.compiler.assume_constant_result  # a registry lookup: torch.compile evaluates it once, no graph break
def _native_kernel(op: str, device_type: str) -> bool:
    """Whether torch.ops.hypops.<op> has a kernel registered for the device (not every op has every one)."""
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    try:
        return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(f"hypops::{op}", key)
    except RuntimeError:  # no such op in this build
        return False


def requested() -> str | None:
    """The backend asked for by use_backend(...) or HYPOPS_BACKEND, if any."""
    return _requested or os.environ.get("HYPOPS_BACKEND") or None


def auto_order(device: torch.device) -> tuple[str, ...]:
    return ("native", "triton", "torch") if device.type == "cuda" else ("native", "torch")


# (op, device type, requested backend) -> chosen backend; what can serve a call does not change while the
# process runs, and a dict lookup keeps the per-call overhead of small ops down.
_CHOICE: dict = {}


def choose(op: str, device: torch.device, backend: str | None = None) -> str:
    """The backend name that will serve ``op`` on ``device``."""
    want = backend or requested()
    key = (op, device.type, want, native_error, triton_error)  # tests may toggle the errors
    hit = _CHOICE.get(key)
    if hit is not None:
        return hit
    name = _choose(op, device, want)
    _CHOICE[key] = name
    return name


def _choose(op: str, device: torch.device, want: str | None) -> str:
    if want:
        why = reasons(want, op, device)
        if why:
            raise BackendUnavailable(f"hypops.{op}: backend {want!r} cannot serve {device.type} tensors: " + "; ".join(why))
        return want
    for name in auto_order(device):
        if not reasons(name, op, device):
            return name
    raise BackendUnavailable(f"hypops.{op}: no backend serves {device.type} tensors")  # torch always does


def select(op: str, device: torch.device, backend: str | None = None) -> Callable:
    return _IMPLS[op][choose(op, device, backend)]


@contextlib.contextmanager
def use_backend(name: str | None):
    """Run the block with every hypops op on backend ``name`` (None restores the automatic choice)."""
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    global _requested
    previous, _requested = _requested, name
    try:
        yield
    finally:
        _requested = previous
