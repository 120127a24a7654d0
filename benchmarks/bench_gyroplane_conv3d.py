"""Gyroplane 3D convolution (SPEC §2, §7): hypops native (a tiled loop of gyroplane-bank calls, memory
O(input + output)) vs the unfold-based reference (hypops.reference.gyroplane_conv3d, which builds the
[B, OX, OY, OZ, C_out, k^3, D] window temporaries), and torch.nn.functional.conv3d on the same shapes
(in_channels = D, the Euclidean layer this one replaces; it computes something else, so it is not checked).

    python benchmarks/bench_gyroplane_conv3d.py            # the shapes below, time + peak memory
    python benchmarks/bench_gyroplane_conv3d.py --quick    # smoke run at toy size

Shapes: `paper` (the published decoder: B=128, D=2, C_out=300 over the 2x2x2 grid of K=8 samples, k=1),
`spatial` (B=2, D=8, C_out=32, 32^3, k=3, padding 1), the same at D=32 (the conv3d comparison of SPEC §7) and
tied, and the spatial cases at 16^3, where the reference still fits in memory (at 32^3 the float64 oracle is
the native op in float64, which the tests check against the reference). Timing: interleaved rounds in
this process after a check against the float64 reference (benchmarks/README.md); fwdbwd = the gradient of
<out, g> for a random g with respect to x, p, a and c (conv3d: x, weight). Peak extra memory: one fresh
process per (case, mode, candidate), as in bench_gyroplane_bank.py: VmHWM above the resident set before the
call, everything the call holds at its peak above its inputs (output, saved tensors, gradients, temporaries).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _allocator  # noqa: E402

if __name__ == "__main__" and "--memory-worker" not in sys.argv:
    _allocator.ensure()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import harness  # noqa: E402
import hypops  # noqa: E402
from hypops import reference  # noqa: E402

CANDIDATES = ("native", "reference", "conv3d")
MODES = ("fwd", "fwdbwd")
RTOL, ATOL = 2e-3, 2e-3
MIB = 2**20

# name: (B, D, C_out, spatial, kernel, padding, tied)
CASES = {
    "paper": (128, 2, 300, 2, 1, 0, False),
    "spatial16": (2, 8, 32, 16, 3, 1, False),
    "spatial16-D2": (2, 2, 32, 16, 3, 1, False),
    "spatial16-tied": (2, 8, 32, 16, 3, 1, True),
    "spatial": (2, 8, 32, 32, 3, 1, False),
    "spatial-D32": (2, 32, 32, 32, 3, 1, False),
    "spatial-tied": (2, 8, 32, 32, 3, 1, True),
}
QUICK = {"quick": (2, 3, 4, 5, 3, 1, False), "quick-tied": (2, 3, 4, 5, 3, 1, True)}


def make_inputs(case, seed=0):
    """x: ball points with radius uniform in [0, 0.9) (float32); p: plane points, radius < 0.5; a: normals of
    norm ~1; w: a conv3d weight of the same shape; g: the upstream gradient."""
    B, D, C, S, k, pad, tied = case
    gen = torch.Generator().manual_seed(seed)

    def points(m, rmax):
        v = torch.randn(m, D, generator=gen)
        return v.div_(v.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mul_(torch.rand(m, 1, generator=gen) * rmax)

    x = points(B * S**3, 0.9).reshape(B, S, S, S, D).movedim(-1, 1).contiguous()
    K = 1 if tied else k**3
    p = points(C * K, 0.5).reshape(C, *(() if tied else (k, k, k)), D).movedim(-1, 1).contiguous()
    a = (torch.randn(p.shape, generator=gen) / math.sqrt(D)).contiguous()
    w = torch.randn(C, D, k, k, k, generator=gen) / math.sqrt(D * k**3)
    O = S + 2 * pad - k + 1
    g = torch.randn(B, C, O, O, O, generator=gen)
    return x, p, a, w, g


def estimate_bytes(cand, mode, case):
    """Rough peak of the reference: ~6 (fwd) / ~14 (fwdbwd) float32 window temporaries [B, O^3, C, k^3, D]."""
    B, D, C, S, k, pad, tied = case
    if cand != "reference":
        return 0
    O = S + 2 * pad - k + 1
    return (6 if mode == "fwd" else 14) * B * O**3 * C * k**3 * D * 4


def make_call(cand, mode, case, x, p, a, w, g):
    B, D, C, S, k, pad, tied = case
    kw = dict(padding=pad, kernel_size=k)
    c = torch.tensor(1.0, requires_grad=mode == "fwdbwd")
    fns = {
        "native": lambda x_, p_, a_, c_: hypops.gyroplane_conv3d(x_, p_, a_, c=c_, backend="native", **kw),
        "reference": lambda x_, p_, a_, c_: reference.gyroplane_conv3d(x_, p_, a_, c=c_, **kw),
    }
    if cand == "conv3d":
        if mode == "fwd":
            return lambda: F.conv3d(x, w, padding=pad)
        xs, ws = x.detach().requires_grad_(), w.detach().requires_grad_()
        return lambda: torch.autograd.grad(F.conv3d(xs, ws, padding=pad), [xs, ws], g)
    f = fns[cand]
    if mode == "fwd":
        return lambda: f(x, p, a, c)
    xs = [t.detach().requires_grad_() for t in (x, p, a)]

    def run():
        out = f(*xs, c)
        return out, *torch.autograd.grad(out, [*xs, c], g)

    return run


# --- memory worker (runs in a fresh process) ------------------------------------------------------------
def memory_worker(payload: dict) -> dict:
    if payload.get("threads"):
        torch.set_num_threads(payload["threads"])
    job = payload["job"]
    case = tuple(job["case"])
    try:
        x, p, a, w, g = make_inputs(case, job["seed"])
        run = make_call(job["candidate"], job["mode"], case, x, p, a, w, g)
        run()
        gc.collect()
        return {"peak_extra_bytes": harness.peak_extra_rss(run)}
    except Exception as e:  # an OOM or a failure of the candidate: report it, do not crash the run
        return {"error": harness.error_record(e)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: toy shapes, memory not measured")
    ap.add_argument("--cases", default=None, help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--mem-budget-gib", type=float, default=6.0,
                    help="skip the reference where its estimated peak exceeds this")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_worker is not None:
        harness.worker_reply(memory_worker(json.loads(args.memory_worker)))
        return 0

    harness.set_threads(args.threads)
    cases = QUICK if args.quick else {n: CASES[n] for n in (args.cases.split(",") if args.cases else CASES)}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    repeats = args.repeats or (3 if args.quick else 5)
    budget = args.mem_budget_gib * 2**30
    info = harness.machine_info()
    report = harness.Report("gyroplane_conv3d" + ("-quick" if args.quick else ""), vars(args), info)
    print(f"# hypops gyroplane_conv3d benchmark (float32, CPU)\n\n{harness.format_machine(info)}\n", flush=True)
    me = Path(__file__).resolve()

    table = []
    for name, case in cases.items():
        B, D, C, S, k, pad, tied = case
        x, p, a, w, g = make_inputs(case, args.seed)
        in_mib, out_mib = x.numel() * 4 / MIB, g.numel() * 4 / MIB
        for mode in modes:
            title = f"gyroplane_conv3d {name} {mode}"
            print(f"- {title} ...", flush=True)
            candidates, mem = [], {}
            for cand in CANDIDATES:
                est = estimate_bytes(cand, mode, case)
                if est > budget:
                    candidates.append(harness.Candidate(cand, None, error=f"skipped: needs ~{est / 2**30:.1f} GiB"))
                    continue
                if not args.quick and not args.no_memory:
                    ans = harness.run_worker(me, {"job": dict(candidate=cand, mode=mode, case=case, seed=args.seed),
                                                  "threads": torch.get_num_threads()})
                    mem[cand] = ans.get("peak_extra_bytes")
                candidates.append(harness.Candidate(cand, make_call(cand, mode, case, x, p, a, w, g),
                                                    check=cand != "conv3d"))
            # The float64 oracle: the reference where it fits in memory, else the native op in float64 (itself
            # checked against the reference over random geometries by tests/test_gyroplane_conv3d.py).
            ref_fits = estimate_bytes("reference", "fwdbwd", case) * 2 <= budget
            oracle_fn = reference.gyroplane_conv3d if ref_fits else partial(hypops.gyroplane_conv3d, backend="native")
            fn64 = lambda x_, p_, a_, c_: oracle_fn(x_, p_, a_, c=c_, padding=pad, kernel_size=k)  # noqa: E731
            want = harness.oracle(fn64, [x], [p, a, torch.tensor(1.0)], None if mode == "fwd" else g,
                                  elems_per_row=(S + 2 * pad) ** 3 * C * k**3 * D)
            labels = ["out"] if mode == "fwd" else ["out", "grad_x", "grad_p", "grad_a", "grad_c"]
            res = harness.run_row(title, candidates, want, labels, rtol=RTOL, atol=ATOL, warmup=args.warmup,
                                  repeats=repeats, target_s=0.001 if args.quick else 0.05)
            ratios = {f"{c}/native": harness.ratio(res, c, "native") for c in CANDIDATES if c != "native"}
            for cand, v in mem.items():
                res[cand].extra["peak_extra_bytes"] = v
            report.add({"case": name, "mode": mode}, res, ratios)
            peak = mem.get("native")
            table.append([name, f"{B}x{D}x{S}³ → {C}, k={k}{' tied' if tied else ''}", mode,
                          *(harness.time_cell(res.get(c)) for c in CANDIDATES),
                          *(harness.fmt_ratio(ratios[f"{c}/native"]) for c in CANDIDATES if c != "native"),
                          "-" if peak is None else f"{peak / MIB:.1f}",
                          "-" if mem.get("reference") is None else f"{mem['reference'] / MIB:.0f}",
                          f"{in_mib:.2f}", f"{out_mib:.2f}",
                          "-" if peak is None else f"{peak / MIB / (in_mib + out_mib):.2f}"])
            del candidates, want
            gc.collect()

    heads = ["case", "shape", "mode", *CANDIDATES, "reference/native", "conv3d/native",
             "peak MiB native", "peak MiB reference", "in MiB", "out MiB", "native peak / (in + out)"]
    md = (f"## gyroplane_conv3d, float32, {torch.get_num_threads()} threads, median of {repeats} interleaved "
          "rounds (±: half the IQR)\n\n" + harness.markdown_table(heads, table))
    report.markdown += ["# hypops gyroplane_conv3d benchmark (float32, CPU)\n\n" + harness.format_machine(info), md]
    print("\n" + md + "\n", flush=True)
    return report.finish(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
