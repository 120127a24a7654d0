"""A bank of gyroplanes, x [N, D] against P planes (p, a [P, D]) -> [N, P] signed distances (the core of
``hypops.nn.Gyroplane``): hypops native (two GEMMs + per-pair scalar math, O(N P) memory) vs the
broadcasting reference (builds [N, P, D] temporaries) vs that reference under torch.compile vs geoopt
used the way geoopt users write it, ``ball.dist2plane(x.unsqueeze(-2), p, a, signed=True)``.

    python benchmarks/bench_gyroplane_bank.py            # N=32768, D in {2,16,64}, P in {64,300}
    python benchmarks/bench_gyroplane_bank.py --quick    # smoke run at toy size, a few seconds

Time: interleaved rounds in this process, after a correctness check against the float64 reference
(same conventions as bench_pointwise.py; fwdbwd = gradient of <out, g> for a random g with respect to
x, p, a and c).

Peak extra memory: each (config, mode, candidate) runs in a fresh Python process started with glibc's
mmap threshold fixed at 64 KiB (so large blocks are unmapped on free and never silently reused). The
process builds the inputs, runs the call twice to warm up (torch.compile compiles then), resets its
peak-RSS counter (``/proc/self/clear_refs``), runs the call once more and reports
``VmHWM - VmRSS(before the call)``: everything the call holds at its peak (output, saved tensors,
gradients, temporaries, GEMM workspaces), above the inputs. Before the full-size run, the same
process measures the call at N/16 and extrapolates linearly in N; a candidate whose estimate exceeds
``--mem-budget-gib`` is neither run at full size nor timed (recorded as skipped, with the estimate).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _allocator  # noqa: E402

if __name__ == "__main__" and "--memory-worker" not in sys.argv:
    _allocator.ensure()

import torch  # noqa: E402

import harness  # noqa: E402
import hypops  # noqa: E402
from hypops import reference  # noqa: E402

try:
    import geoopt  # noqa: E402
except ImportError:  # pragma: no cover
    geoopt = None

CANDIDATES = ("native", "reference", "compiled", "geoopt", "native-avx2", "native-baseline", "native-scalar")
# Run by default; the other three are native with other CPU kernels (csrc/cpu/simd/), on request
# (--candidates): "native-avx2" the AVX2+FMA build (what a CPU without AVX-512 runs), "native-baseline" the
# x86-64 baseline (SSE2) build of the vectorised kernels (what a CPU without AVX2 runs), "native-scalar"
# the plain per-pair loop on libm / Dual numbers (the kernels before vectorisation), so that they compare
# with "native" side by side in one run.
DEFAULT_CANDIDATES = ("native", "reference", "compiled", "geoopt")
MODES = ("fwd", "fwdbwd")
RTOL, ATOL = 2e-3, 2e-4
GEOOPT_TOL_SCALE = 10.0  # geoopt's asinh is log(z + sqrt(1 + z^2)), which loses digits for z << 0
MIB = 2**20


def make_inputs(n: int, d: int, p: int, seed: int = 0):
    """x: points with radius uniform in [0, 0.9); p: plane base points, radius in [0, 0.5); a: normals with
    norms around 1 (float32)."""
    gen = torch.Generator().manual_seed(seed)

    def points(m, rmax):
        v = torch.randn(m, d, generator=gen)
        return v.div_(v.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mul_(torch.rand(m, 1, generator=gen) * rmax)

    x = points(n, 0.9)
    pp = points(p, 0.5)
    a = torch.randn(p, d, generator=gen) / math.sqrt(d)
    g = torch.randn(n, p, generator=gen)
    return x, pp, a, g


# Rough peak of the broadcasting candidates in units of one [N, P, D] float32 temporary (fwd, fwdbwd),
# from measurements with this script (reference ~3x / ~6.5x, geoopt ~3x / ~5.5x, compiled ~1x / ~2.5x),
# rounded up. Used to skip candidates when peak memory is not measured (--no-memory, pytest).
TEMP_FACTOR = {"reference": (4, 8), "geoopt": (4, 8), "compiled": (2, 3), "native": (0, 0), "native-avx2": (0, 0), "native-baseline": (0, 0),
               "native-scalar": (0, 0)}


def estimate_bytes(cand: str, mode: str, n: int, d: int, p: int) -> float:
    return TEMP_FACTOR[cand][mode == "fwdbwd"] * n * p * d * 4


_COMPILED = {}


def compiled_bank():
    if "f" not in _COMPILED:
        _COMPILED["f"] = torch.compile(reference.gyroplane_bank, dynamic=False)
    return _COMPILED["f"]


def native_with(kernels: str, x, p, a, c):
    """hypops native with the given CPU kernels. They are chosen when the call runs, so the backward
    (run later by autograd) uses whatever the last forward set, which is this candidate's in the
    timed loop (one candidate at a time)."""
    if hasattr(hypops._C, "_set_cpu_kernels"):
        hypops._C._set_cpu_kernels(kernels)
    elif kernels != "best":
        raise RuntimeError("this build of hypops has no selectable CPU kernels")
    return hypops.gyroplane_bank(x, p, a, c=c, backend="native")


def forward_fns(ball):
    return {
        "native": lambda x, p, a, c: native_with("best", x, p, a, c),
        "native-avx2": lambda x, p, a, c: native_with("avx2", x, p, a, c),
        "native-baseline": lambda x, p, a, c: native_with("baseline", x, p, a, c),
        "native-scalar": lambda x, p, a, c: native_with("scalar", x, p, a, c),
        "reference": lambda x, p, a, c: reference.gyroplane_bank(x, p, a, c=c),
        "compiled": lambda x, p, a, c: compiled_bank()(x, p, a, c=c),
        "geoopt": lambda x, p, a, c: ball.dist2plane(x.unsqueeze(-2), p, a, signed=True),
    }


def make_call(cand: str, mode: str, x, p, a, g):
    """The timed callable for one candidate, and the function mapping its result to [out, gx, gp, ga, gc]."""
    if mode == "fwd":
        ball = geoopt.PoincareBall(c=1.0) if geoopt else None
        c = torch.tensor(1.0)
        f = forward_fns(ball)[cand]
        return (lambda: f(x, p, a, c)), None
    ball = geoopt.PoincareBall(c=1.0, learnable=True) if geoopt else None
    xs = [t.detach().requires_grad_() for t in (x, p, a)]
    c = torch.tensor(1.0, requires_grad=True)
    f = forward_fns(ball)[cand]
    cvar = ball.isp_c if cand == "geoopt" else c

    def run():
        out = f(*xs, c)
        return out, torch.autograd.grad(out, [*xs, cvar], g)

    def canon(res):
        out, grads = res
        grads = list(grads)
        if cand == "geoopt":  # c = softplus(isp_c)
            grads[-1] = grads[-1] / torch.sigmoid(ball.isp_c.detach())
        return [out, *grads]

    return run, canon


# --- memory worker (runs in a fresh process) ------------------------------------------------------------
def _measure(cand, mode, n, d, p, seed, calls_before=2):
    x, pp, a, g = make_inputs(n, d, p, seed)
    run, _ = make_call(cand, mode, x, pp, a, g)
    for _ in range(calls_before):
        run()
    gc.collect()
    return harness.peak_extra_rss(run)


def memory_worker(payload: dict) -> dict:
    if payload.get("threads"):
        torch.set_num_threads(payload["threads"])
    out = []
    for job in payload["jobs"]:
        cand, mode, n, d, p, seed = job["candidate"], job["mode"], job["n"], job["d"], job["p"], job["seed"]
        budget = job["budget"]
        res = {**job}
        try:
            n_probe = max(1, n // job.get("probe_div", 16))
            if n_probe * p * d >= (1 << 20):  # big enough that the estimate matters: probe first
                probe = _measure(cand, mode, n_probe, d, p, seed, calls_before=1)
                res["probe_n"], res["probe_bytes"] = n_probe, probe
                res["estimate_bytes"] = None if probe is None else probe * n / n_probe
            if res.get("estimate_bytes") is not None and res["estimate_bytes"] > budget:
                res["skipped"] = True
            else:
                res["peak_extra_bytes"] = _measure(cand, mode, n, d, p, seed, calls_before=job.get("calls_before", 2))
        except Exception as e:  # an OOM or a failure of the candidate: report it, do not crash the run
            res["error"] = harness.error_record(e)
        out.append(res)
        gc.collect()
    return {"results": out}


# --- main -------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: N=256, D=4, P=8, no torch.compile, memory measured in this process")
    ap.add_argument("--n", type=int, default=32768)
    ap.add_argument("--d", default="2,16,64", help="comma-separated point dimensions")
    ap.add_argument("--p", default="64,300", help="comma-separated bank sizes")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--candidates", default=None, help="comma-separated subset of: " + ", ".join(CANDIDATES))
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile candidate")
    ap.add_argument("--no-memory", action="store_true",
                    help="skip the peak-memory subprocesses (candidates are then skipped by a rough estimate)")
    ap.add_argument("--mem-budget-gib", type=float, default=8.0,
                    help="skip (neither measure nor time) a candidate whose extrapolated peak exceeds this")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--allocator", choices=("reuse", "system"), default="reuse",
                    help="allocator mode of this (timing) process; see benchmarks/README.md")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_worker is not None:
        harness.worker_reply(memory_worker(json.loads(args.memory_worker)))
        return 0

    harness.set_threads(args.threads)
    cands = [c.strip() for c in args.candidates.split(",")] if args.candidates else list(DEFAULT_CANDIDATES)
    if args.no_compile or (args.quick and not args.candidates):
        cands = [c for c in cands if c != "compiled"]
    if geoopt is None:
        cands = [c for c in cands if c != "geoopt"]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.quick:
        n, ds, ps = 256, [4], [8]
    else:
        n, ds, ps = args.n, [int(v) for v in args.d.split(",")], [int(v) for v in args.p.split(",")]
    repeats = args.repeats or (3 if args.quick else 7)
    target_s = 0.001 if args.quick else 0.05
    budget = args.mem_budget_gib * 2**30
    if "compiled" in cands:
        harness.allow_recompiles()

    info = harness.machine_info()
    report = harness.Report("gyroplane_bank" + ("-quick" if args.quick else ""), vars(args), info)
    print(f"# hypops gyroplane_bank benchmark (float32, CPU)\n\n{harness.format_machine(info)}\n", flush=True)

    configs = [(d, p, mode) for d in ds for p in ps for mode in modes]
    me = Path(__file__).resolve()
    mem: dict[tuple, dict] = {}
    if not args.no_memory:
        jobs = [dict(candidate=cand, mode=mode, n=n, d=d, p=p, seed=args.seed, budget=budget,
                     calls_before=1 if args.quick else 2)
                for (d, p, mode) in configs for cand in cands]
        if args.quick:  # a smoke run: measure in this process (a fresh one costs ~6 s of imports)
            print(f"- peak memory: {len(jobs)} jobs, in this process (--quick: approximate)", flush=True)
            for j, r in zip(jobs, memory_worker({"jobs": jobs})["results"]):
                mem[(j["d"], j["p"], j["mode"], j["candidate"])] = r
        else:
            print(f"- peak memory: {len(jobs)} jobs, one fresh process each", flush=True)
            for j in jobs:
                ans = harness.run_worker(me, {"jobs": [j], "threads": torch.get_num_threads()})
                r = (ans.get("results") or [{"error": ans.get("error")}])[0]
                mem[(j["d"], j["p"], j["mode"], j["candidate"])] = r

    table, notes = [], []
    for d, p, mode in configs:
        title = f"gyroplane_bank {mode} N={n} D={d} P={p}"
        print(f"- {title} ...", flush=True)
        x, pp, a, g = make_inputs(n, d, p, args.seed)
        candidates = []
        for cand in cands:
            m = mem.get((d, p, mode, cand))
            if m is None and estimate_bytes(cand, mode, n, d, p) > budget:  # not measured: a rough estimate
                m = {"skipped": True, "estimate_bytes": estimate_bytes(cand, mode, n, d, p)}
            m = m or {}
            if m.get("skipped"):
                candidates.append(harness.Candidate(
                    cand, None, error=f"skipped: needs ~{m['estimate_bytes'] / 2**30:.1f} GiB "
                                      f"(> --mem-budget-gib {args.mem_budget_gib:g})"))
                continue
            run, canon = make_call(cand, mode, x, pp, a, None if mode == "fwd" else g)
            candidates.append(harness.Candidate(cand, run, canon=canon, fatal=cand != "compiled",
                                                tol_scale=GEOOPT_TOL_SCALE if cand == "geoopt" else 1.0,
                                                must_match=cand != "geoopt"))
        fn64 = lambda x_, p_, a_, c_: reference.gyroplane_bank(x_, p_, a_, c=c_)  # noqa: E731
        want = harness.oracle(fn64, [x], [pp, a, torch.tensor(1.0)], None if mode == "fwd" else g,
                              elems_per_row=p * d)
        labels = ["out"] if mode == "fwd" else ["out", "grad_x", "grad_p", "grad_a", "grad_c"]
        res = harness.run_row(title, candidates, want, labels, rtol=RTOL, atol=ATOL, warmup=args.warmup,
                              repeats=repeats, target_s=target_s, strict=args.strict)
        del candidates, want
        for cand, r in res.items():
            m = mem.get((d, p, mode, cand))
            if m is not None:
                r.extra.update({k: m.get(k) for k in ("peak_extra_bytes", "estimate_bytes", "probe_n", "probe_bytes",
                                                       "skipped", "error")})
                r.extra["memory_error"] = r.extra.pop("error")
        ratios = {f"{c}/native": harness.ratio(res, c, "native") for c in cands if c != "native"}
        report.add({"n": n, "d": d, "p": p, "mode": mode}, res, ratios)

        def mem_cell(cand):
            m = mem.get((d, p, mode, cand))
            if m is None:
                return "-"
            if m.get("error"):
                return "error"
            if m.get("skipped"):
                return f"(~{m['estimate_bytes'] / MIB:.0f}, skipped)"
            v = m.get("peak_extra_bytes")
            return "-" if v is None else f"{v / MIB:.0f}"

        cells = [harness.time_cell(res.get(cand)) for cand in CANDIDATES]
        notes += harness.inexact_notes(title, res)
        out_mib = n * p * 4 / MIB
        table.append([d, p, mode, *cells,
                      *(harness.fmt_ratio(ratios.get(f"{c}/native")) for c in CANDIDATES if c != "native"),
                      *(mem_cell(c) for c in CANDIDATES), f"{out_mib:.0f}",
                      f"{n * p * d * 4 / MIB:.0f}"])
        del x, pp, a, g
        gc.collect()

    heads = ["D", "P", "mode", *CANDIDATES, *(f"{c}/native" for c in CANDIDATES if c != "native"),
             *(f"peak MiB {c}" for c in CANDIDATES), "out MiB", "N·P·D·4 MiB"]
    md = (f"## gyroplane_bank N={n}, float32, {torch.get_num_threads()} threads, allocator {_allocator.current()}, "
          f"median of {repeats} interleaved rounds (±: half the IQR)\n\n"
          "peak MiB: extra peak resident memory of one call in a fresh process (see README); "
          "(~X, skipped): extrapolated from N/16, over the budget, not run.\n\n"
          + harness.markdown_table(heads, table)
          + ("\n\n(inexact): an outside baseline that failed the accuracy check, timed anyway:\n"
             + "\n".join(f"- {t}" for t in notes) if notes else ""))
    report.markdown += ["# hypops gyroplane_bank benchmark (float32, CPU)\n\n" + harness.format_machine(info), md]
    print("\n" + md + "\n", flush=True)
    return report.finish(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
