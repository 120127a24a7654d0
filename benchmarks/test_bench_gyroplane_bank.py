"""pytest-benchmark runner for gyroplane_bank (see bench_gyroplane_bank.py for the side-by-side script
with ratios and peak memory):

    pytest benchmarks/test_bench_gyroplane_bank.py --benchmark-only           # N=4096, D in {2,16}, P=64
    HYPOPS_BENCH_SIZE=large pytest benchmarks/ --benchmark-only -k gyroplane  # N=32768, D in {2,16,64}, P in {64,300}

The broadcasting candidates (reference, compiled, geoopt) are skipped where their [N, P, D] temporaries
would exceed HYPOPS_BENCH_MEM_GIB (default 8) by a rough estimate (bench_gyroplane_bank.estimate_bytes;
the script measures the real peak).
"""

from __future__ import annotations

import functools
import os

import pytest

import bench_gyroplane_bank as bb
import harness

if os.environ.get("HYPOPS_BENCH_SIZE", "small") == "large":
    N, DS, PS = 32768, (2, 16, 64), (64, 300)
else:
    N, DS, PS = 4096, (2, 16), (64,)
BUDGET = float(os.environ.get("HYPOPS_BENCH_MEM_GIB", "8")) * 2**30
CASES = [(d, p, mode, cand) for d in DS for p in PS for mode in bb.MODES for cand in bb.DEFAULT_CANDIDATES]


@functools.lru_cache(maxsize=1)
def _inputs_and_oracle(d: int, p: int, mode: str):
    import torch

    x, pp, a, g = bb.make_inputs(N, d, p)
    fn64 = lambda x_, p_, a_, c_: bb.reference.gyroplane_bank(x_, p_, a_, c=c_)  # noqa: E731
    want = harness.oracle(fn64, [x], [pp, a, torch.tensor(1.0)], None if mode == "fwd" else g, elems_per_row=p * d)
    return (x, pp, a, g), want


@pytest.mark.parametrize("d,p,mode,candidate", CASES, ids=[f"D{d}-P{p}-{m}-{c}" for d, p, m, c in CASES])
def test_gyroplane_bank(benchmark, d, p, mode, candidate):
    if candidate == "geoopt" and bb.geoopt is None:
        pytest.skip("geoopt is not installed")
    if bb.estimate_bytes(candidate, mode, N, d, p) > BUDGET:
        pytest.skip("the [N, P, D] temporaries would exceed HYPOPS_BENCH_MEM_GIB")
    (x, pp, a, g), want = _inputs_and_oracle(d, p, mode)
    run, canon = bb.make_call(candidate, mode, x, pp, a, None if mode == "fwd" else g)
    cand = harness.Candidate(candidate, run, canon=canon, fatal=candidate != "compiled",
                             tol_scale=bb.GEOOPT_TOL_SCALE if candidate == "geoopt" else 1.0)
    labels = ["out"] if mode == "fwd" else ["out", "grad_x", "grad_p", "grad_a", "grad_c"]
    res = harness.check_candidate(cand, want, labels, rtol=bb.RTOL, atol=bb.ATOL)
    if res.status == "compile failed":
        pytest.skip(f"torch.compile failed: {res.detail}")
    assert res.status == "ok", f"D={d} P={p} {mode} {candidate}: {res.status}: {res.detail}"
    benchmark.group = f"gyroplane_bank {mode} N={N} D={d} P={p}"
    benchmark.extra_info.update(d=d, p=p, n=N, mode=mode, candidate=candidate, check_err=res.check_err)
    benchmark(run)
