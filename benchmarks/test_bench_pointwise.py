"""pytest-benchmark runner for the pointwise ops (the project's declared CPU runner):

    pytest benchmarks/test_bench_pointwise.py --benchmark-only                 # 4096 x 16
    HYPOPS_BENCH_SIZE=large pytest benchmarks/ --benchmark-only -k pointwise    # 2^20 x 64
    pytest benchmarks/ --benchmark-only -k "expmap0 and not compiled"

Same inputs, candidates and correctness check (against the float64 reference, before timing) as
bench_pointwise.py; pytest-benchmark times each candidate on its own (not interleaved), grouped per
op and mode. For the side-by-side ratios use ``python benchmarks/bench_pointwise.py``.
"""

from __future__ import annotations

import functools
import os

import pytest

import bench_pointwise as bp
import harness

SIZE = os.environ.get("HYPOPS_BENCH_SIZE", "small")
N, D = bp.SIZES[SIZE]
CASES = [(op, mode, cand) for op in bp.OPS for mode in bp.MODES for cand in bp.CANDIDATES]


@functools.lru_cache(maxsize=1)
def _case(op: str, mode: str):
    inputs = bp.make_inputs(op, N, D)
    return bp.build_case(op, mode, inputs)


@pytest.mark.parametrize("op,mode,candidate", CASES, ids=["-".join(c) for c in CASES])
def test_pointwise(benchmark, op, mode, candidate):
    if candidate == "geoopt" and bp.geoopt is None:
        pytest.skip("geoopt is not installed")
    if candidate in bp.KERNELS and not bp.kernels_available(candidate):
        pytest.skip(f"this CPU or build does not run the {bp.KERNELS[candidate]} kernels")
    cands, want, labels = _case(op, mode)
    cand = next(c for c in cands if c.name == candidate)
    res = harness.check_candidate(cand, want, labels, rtol=bp.RTOL, atol=bp.ATOL)
    if res.status == "compile failed":
        pytest.skip(f"torch.compile failed: {res.detail}")
    assert res.status == "ok", f"{op} {mode} {candidate}: {res.status}: {res.detail}"
    benchmark.group = f"{op} {mode} {N}x{D}"
    benchmark.extra_info.update(op=op, mode=mode, candidate=candidate, n=N, d=D, check_err=res.check_err)
    benchmark(cand.run)
