"""Fixtures for the hypops tests: backend x dtype. The lists, tolerance tables and input samplers live
in tests/hyptest.py (importable from every test module; pytest runs with --import-mode=importlib, so
this directory is put on sys.path here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hyptest
from hyptest import BACKENDS, DTYPES, dtype_id, skip_unless_serves

# Re-exported for tests that want them from conftest.
TOL = hyptest.TOL
GRAD_TOL = hyptest.GRAD_TOL
C_VALUES = hyptest.C_VALUES
RADII = hyptest.RADII


def _ops_of(request) -> tuple[str, ...]:
    """The op(s) a test exercises: the class's spec, else the module's OP (a name or a tuple)."""
    spec = getattr(request.cls, "spec", None) if request.cls is not None else None
    if spec is not None:
        return (spec.name,)
    op = getattr(request.module, "OP", None)
    if op is None:
        return ()
    return (op,) if isinstance(op, str) else tuple(op)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A backend name; skipped, with hypops' own reasons, where it cannot serve the test's op(s)."""
    skip_unless_serves(request.param, *_ops_of(request))
    return request.param


@pytest.fixture(params=DTYPES, ids=dtype_id)
def dtype(request):
    return request.param


@pytest.fixture(params=[torch.float64, torch.float32], ids=dtype_id)
def full_dtype(request):
    """float64 and float32 only (for checks where half rounding says nothing)."""
    return request.param


@pytest.fixture(params=C_VALUES, ids=lambda c: f"c={c:g}")
def c(request):
    return request.param


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    """HYPOPS_BACKEND in the caller's environment must not change what the tests exercise."""
    monkeypatch.delenv("HYPOPS_BACKEND", raising=False)
