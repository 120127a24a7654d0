"""Wrapped normal and Riemannian normal on the ball (CPU): side-by-side times, each candidate checked first.

    python benchmarks/bench_wrapped_normal.py              # B = 4096, K = 8, D in {2, 64}
    python benchmarks/bench_wrapped_normal.py --quick      # smoke run at toy size, a few seconds
    python benchmarks/bench_wrapped_normal.py --part sampling --threads 1   # only part 2

Part 1, the fused ops, float32, noise eps [K, B, D] against mu and std [B, D] (the VAE's K posterior
samples per input; std diagonal):
  rsample   z = wrapped_normal_rsample(mu, std, eps)
  log_prob  wrapped_normal_log_prob(z, mu, std) on such samples z
Modes: fwd (no input requires grad) and fwdbwd (``out = op(...); torch.autograd.grad(out, inputs, g)``
with g a fixed random tensor of out's shape; inputs: mu, std and c for rsample -- the noise never needs a
gradient in training -- and z, mu, std and c for log_prob). Candidates: native
(``hypops.<op>(..., backend="native")``, the fused C++ kernels), eager (``hypops.reference.<op>``, plain
PyTorch) and compiled (``torch.compile(hypops.reference.<op>, dynamic=False)``). Every candidate is checked
against the float64 reference before it is timed (harness.run_row).

Part 2, RiemannianNormal sampling throughput, float64 (the radii need it: at D = 64 they reach ~6, the
limit of float32's ball), B = 4096 locations with per-row scales, K = 8 samples each:
  hypops       ``hypops.distributions.RiemannianNormal(loc, scale).rsample((K,))`` with its default
               sampler: radius by batched rejection from a three-piece envelope (half-normals either side of
               the mode, exponential tail; see the class docstring), one proposal per pending radius per
               round, all in tensor code. The table also gives the envelope's analytic acceptance
               probability (min and mean over the rows) and the rounds one call took.
  hypops-icdf  the same with ``sampler="inverse_cdf"``: radius by inverse CDF (quadrature table + a fixed
               number of Newton steps, then its convergence check), batched. Leave out with --no-icdf.
  pvae-loop    the approach of pvae (Mathieu et al. 2019): draw radii by rejection in a Python
               while-loop until every sample is accepted, then z = loc (+) tanh(sqrt(c) r / 2) alpha /
               sqrt(c) with alpha uniform on the sphere. Written here from the method's description, not
               from pvae's code, and given a tighter envelope than pvae's fixed piecewise-exponential hull:
               the log radial density h(r) = -r^2/2s^2 + (D-1) log(sinh(sqrt(c) r)/sqrt(c)) has
               h'' <= -1/s^2, so the Gaussian N(r*, s^2) at its mode r* scaled to h(r*) lies above it
               everywhere. It is therefore a generous baseline: a looser envelope only adds rounds.
Both are checked before timing: the probability integral transform F(d(loc, z)) of every sample, with F
the radial CDF of its own row, must pass a Kolmogorov-Smirnov test for uniformity (p > 1e-4).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _allocator  # noqa: E402

if __name__ == "__main__":
    _allocator.ensure()  # before torch is imported: glibc reads its malloc settings at start-up

import torch  # noqa: E402

import harness  # noqa: E402
import hypops  # noqa: E402
from hypops import reference  # noqa: E402
from hypops._constants import PROJ_EPS  # noqa: E402
from hypops.distributions import RiemannianNormal  # noqa: E402

SIZES = {"full": (4096, 8, (2, 64)), "toy": (64, 2, (2, 8))}  # B, K, Ds
OPS = ("rsample", "log_prob")
MODES = ("fwd", "fwdbwd")
CANDIDATES = ("native", "eager", "compiled")
RTOL, ATOL = 2e-3, 2e-4  # float32 candidates vs the float64 reference, as in bench_pointwise.py
KS_MIN_P = 1e-4


# --- part 1: the fused ops ---------------------------------------------------------------------------------
def make_inputs(B: int, K: int, D: int, seed: int = 0):
    """float32 mu [B, D] (radius up to 0.9 of the unit ball's), std [B, D] in [0.2, 1.2], eps [K, B, D], and
    samples z [K, B, D] (rounded from the float64 reference rsample)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, D, generator=g, dtype=torch.float64)
    mu = v / v.norm(dim=-1, keepdim=True) * torch.rand(B, 1, generator=g, dtype=torch.float64) * 0.9
    std = torch.rand(B, D, generator=g, dtype=torch.float64) + 0.2
    eps = torch.randn(K, B, D, generator=g, dtype=torch.float64)
    z = reference.wrapped_normal_rsample(mu, std, eps)
    return {k: t.float() for k, t in dict(mu=mu, std=std, eps=eps, z=z).items()}


def proj64(x, c, eps):
    n = x.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    maxnorm = (1 - eps) / c.sqrt()
    return torch.where(n > maxnorm, x / n * maxnorm, x)


def op_args(op: str, x: dict):
    """(all tensor arguments, the indices of those that get gradients in fwdbwd)."""
    if op == "rsample":
        return [x["mu"], x["std"], x["eps"]], (0, 1)
    return [x["z"], x["mu"], x["std"]], (0, 1, 2)


def grad_labels(op: str) -> list[str]:
    return ["grad_mu", "grad_std"] if op == "rsample" else ["grad_z", "grad_mu", "grad_std"]


def oracle(op: str, args, diff, g):
    """float64 [out] (g None) or [out, *grads of args[diff], grad_c] of the float32 op's exact value (the
    rsample point projected with float32's eps, as the op does)."""
    a64 = [t.double().requires_grad_(i in diff and g is not None) for i, t in enumerate(args)]
    c = torch.tensor(1.0, dtype=torch.float64, requires_grad=g is not None)
    out = getattr(reference, f"wrapped_normal_{op}")(*a64, c=c)
    if op == "rsample":
        out = proj64(out, c, PROJ_EPS[torch.float32])
    if g is None:
        return [out.detach()]
    grads = torch.autograd.grad(out, [a64[i] for i in diff] + [c], g.double())
    return [out.detach(), *grads]


_COMPILED: dict = {}


def compiled_ref(op: str):
    if op not in _COMPILED:
        _COMPILED[op] = torch.compile(getattr(reference, f"wrapped_normal_{op}"), dynamic=False)
    return _COMPILED[op]


def build_case(op: str, mode: str, x: dict, candidates, seed: int):
    args, diff = op_args(op, x)
    fns = {
        "native": lambda *a, c: getattr(hypops, f"wrapped_normal_{op}")(*a, c=c, backend="native"),
        "eager": getattr(reference, f"wrapped_normal_{op}"),
        "compiled": lambda *a, c: compiled_ref(op)(*a, c=c),
    }
    if mode == "fwd":
        c = torch.tensor(1.0)
        cands = [harness.Candidate(n, (lambda f=fns[n]: f(*args, c=c)), fatal=n != "compiled")
                 for n in candidates]
        return cands, oracle(op, args, diff, None), ["out"]
    leaves = [t.detach().requires_grad_(i in diff) for i, t in enumerate(args)]
    c = torch.tensor(1.0, requires_grad=True)
    wrt = [leaves[i] for i in diff] + [c]
    out_shape = x["eps"].shape if op == "rsample" else x["eps"].shape[:-1]
    g = torch.randn(out_shape, generator=torch.Generator().manual_seed(seed + 1))

    def step(f):
        def run():
            out = f(*leaves, c=c)
            return out, torch.autograd.grad(out, wrt, g)

        return run

    # The float32 reference's grad_c is a float32 reduction over all K*B rows (the native kernels sum it in
    # double); for log_prob at D = 64 it missed the tolerance by 4-30x. So the baselines are timed even
    # when a check fails, and marked (inexact) with the error, as bench_pointwise.py does for geoopt.
    cands = [harness.Candidate(n, step(fns[n]), fatal=n != "compiled", must_match=n == "native")
             for n in candidates]
    return cands, oracle(op, args, diff, g), ["out", *grad_labels(op), "grad_c"]


# --- part 2: Riemannian normal sampling --------------------------------------------------------------------
def _log_sinh_over_sc(r, sc):
    """log(sinh(sc r) / sc) for r > 0 without overflow."""
    x = sc * r
    return x + torch.log1p(-torch.exp(-2 * x)) - math.log(2.0) - torch.log(sc)


def rejection_radius(sigma: torch.Tensor, c: float, D: int, max_rounds: int = 10_000):
    """Radii r >= 0 with density ~ exp(-r^2/2s^2) (sinh(sqrt(c) r)/sqrt(c))^(D-1), one per entry of sigma
    (float64), by rejection from the Gaussian envelope at the mode, looping in Python until all are accepted.
    Returns (radii, rounds)."""
    sc = torch.tensor(c, dtype=torch.float64).sqrt()

    def h(r, s):
        out = -(r**2) / (2 * s**2)
        return out + (D - 1) * _log_sinh_over_sc(r.clamp_min(1e-300), sc) if D > 1 else out

    # the mode: h'(r) = -r/s^2 + (D-1) sqrt(c) coth(sqrt(c) r) decreases from +inf; it lies in
    # [max((D-1) sqrt(c) s^2, s sqrt(D-1)), (D-1) sqrt(c) s^2 + s sqrt(D-1)] (1, 1/x <= coth x <= 1 + 1/x)
    a, b = (D - 1) * sc * sigma**2, sigma * math.sqrt(D - 1)
    lo, hi = torch.maximum(a, b), a + b
    for _ in range(60):  # bisection to float64 resolution of the bracket
        mid = (lo + hi) / 2
        dh = -mid / sigma**2 + (D - 1) * sc / torch.tanh(sc * mid.clamp_min(1e-300))
        pos = dh > 0
        lo, hi = torch.where(pos, mid, lo), torch.where(pos, hi, mid)
    mode = (lo + hi) / 2 if D > 1 else torch.zeros_like(sigma)
    out = torch.empty_like(sigma)
    pending = torch.arange(sigma.numel())
    flat_sigma, flat_mode = sigma.reshape(-1), mode.reshape(-1)
    rounds = 0
    while pending.numel():
        rounds += 1
        if rounds > max_rounds:
            raise RuntimeError(f"rejection_radius: {pending.numel()} samples still rejected after "
                               f"{max_rounds} rounds")
        sigma_p, mode_p = flat_sigma[pending], flat_mode[pending]
        r = mode_p + sigma_p * torch.randn_like(sigma_p)
        bound = h(mode_p, sigma_p) - (r - mode_p) ** 2 / (2 * sigma_p**2)
        ok = (r > 0) & (torch.log(torch.rand_like(r)) < h(r.clamp_min(1e-300), sigma_p) - bound)
        out.view(-1)[pending[ok]] = r[ok]
        pending = pending[~ok]
    return out, rounds


def rejection_sample(loc: torch.Tensor, scale: torch.Tensor, c: float, K: int):
    """z [K, B, D] around loc [B, D] with isotropic scale [B, 1]: pvae's construction, radius by rejection."""
    B, D = loc.shape
    r, rounds = rejection_radius(scale.expand(K, B, 1).contiguous(), c, D)
    alpha = torch.randn(K, B, D, dtype=loc.dtype)
    alpha = alpha / alpha.norm(dim=-1, keepdim=True)
    sc = math.sqrt(c)
    w = torch.tanh(sc * r / 2) * alpha / sc
    return reference.mobius_add(loc.expand(K, B, D), w, c=c), rounds


def ks_pit_pvalue(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, c: float) -> float:
    """KS p-value of F_row(d(loc, z)) against U(0, 1), F_row the radial CDF of the sample's own row."""
    from scipy import stats

    K, B, D = z.shape
    rn = RiemannianNormal(loc, scale, c=c)
    d = reference.dist(loc.expand(K, B, D), z, c=c).reshape(K, B, 1)
    sigma = scale.double().expand(K, B, 1)
    logZ = rn.log_normalizer_radial().reshape(1, B, 1).expand(K, B, 1)
    F = rn._radial_cdf(d.double(), sigma, rn._c64().sqrt(), logZ)
    return float(stats.kstest(F.reshape(-1).numpy(), "uniform").pvalue)


def sampling_case(B: int, K: int, D: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, D, generator=g, dtype=torch.float64)
    loc = v / v.norm(dim=-1, keepdim=True) * torch.rand(B, 1, generator=g, dtype=torch.float64) * 0.7
    lo, hi = (0.1, 1.0) if D <= 8 else (0.1, 0.25)  # radii stay below ~6, inside float64's ball
    scale = torch.rand(B, 1, generator=g, dtype=torch.float64) * (hi - lo) + lo
    return loc, scale, (lo, hi)


# --- main --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=tuple(SIZES), default="full")
    ap.add_argument("--quick", action="store_true", help="smoke run: --size toy, 3 repeats, no torch.compile")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile candidate")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed rounds (default 15 for the ops, 5 for sampling; quick 3)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--allocator", choices=("reuse", "system"), default="reuse",
                    help="glibc malloc settings, as in bench_pointwise.py (see benchmarks/README.md)")
    ap.add_argument("--strict", action="store_true", help="abort at the first failed check or error")
    ap.add_argument("--out-dir", default=None, help="where CSV/JSON/MD go (default: bench-results/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=("all", "ops", "sampling"), default="all",
                    help="ops: part 1 only (the fused ops); sampling: part 2 only (RiemannianNormal)")
    ap.add_argument("--no-icdf", action="store_true",
                    help="leave the inverse-CDF RiemannianNormal sampler (seconds per call) out of part 2")
    args = ap.parse_args(argv)

    harness.set_threads(args.threads)
    size = "toy" if args.quick else args.size
    B, K, Ds = SIZES[size]
    cands = [c for c in CANDIDATES if c != "compiled" or not (args.no_compile or args.quick)]
    repeats = args.repeats or (3 if args.quick else 15)
    target_s = 0.001 if size == "toy" else 0.02
    if "compiled" in cands:
        harness.allow_recompiles()

    info = harness.machine_info()
    report = harness.Report("wrapped_normal" + ("-quick" if args.quick else ""), vars(args), info)
    head = "# hypops wrapped normal / Riemannian normal benchmark (CPU)"
    print(f"{head}\n\n{harness.format_machine(info)}\n", flush=True)

    table, notes = [], []
    for op in OPS if args.part in ("all", "ops") else ():
        for D in Ds:
            x = make_inputs(B, K, D, seed=args.seed)
            for mode in MODES:
                title = f"{op} {mode} K={K} B={B} D={D}"
                print(f"- {title} ...", flush=True)
                candidates, want, labels = build_case(op, mode, x, cands, args.seed)
                res = harness.run_row(title, candidates, want, labels, rtol=RTOL, atol=ATOL, warmup=1,
                                      repeats=repeats, target_s=target_s, strict=args.strict)
                ratios = {"eager/native": harness.ratio(res, "eager", "native"),
                          "compiled/native": harness.ratio(res, "compiled", "native")}
                report.add({"part": "ops", "op": op, "mode": mode, "K": K, "B": B, "D": D}, res, ratios)
                notes += harness.inexact_notes(title, res)
                table.append([op, D, mode, *(harness.time_cell(res.get(n)) for n in CANDIDATES),
                              *(harness.fmt_ratio(r) for r in ratios.values())])
    md_ops = (
        f"## wrapped_normal ops: float32, noise [K={K}, B={B}, D] against mu, std [B, D], "
        f"{torch.get_num_threads()} threads, median of {repeats} interleaved rounds (±: half the IQR; "
        "ratios: median of per-round ratios)\n\n"
        + harness.markdown_table(["op", "D", "mode", *CANDIDATES, "eager/native", "compiled/native"], table)
        + ("\n\n(inexact): a baseline that failed the accuracy check, timed anyway:\n"
           + "\n".join(f"- {t}" for t in notes) if notes else "")
    )
    if table:
        report.markdown.append(md_ops)
        print("\n" + md_ops + "\n", flush=True)

    c = 1.0
    srows = []
    names = ("hypops", "hypops-icdf", "pvae-loop")
    srepeats = args.repeats or (3 if args.quick else 5)
    for D in Ds if args.part in ("all", "sampling") else ():
        loc, scale, (lo, hi) = sampling_case(B, K, D, args.seed)
        title = f"RiemannianNormal sample K={K} B={B} D={D}"
        print(f"- {title} ...", flush=True)
        rounds = []

        def hyp():
            return RiemannianNormal(loc, scale, c=c).rsample((K,))

        def icdf():
            return RiemannianNormal(loc, scale, c=c, sampler="inverse_cdf").rsample((K,))

        def rej():
            z, n = rejection_sample(loc, scale, c, K)
            rounds.append(n)
            return z

        fns = {"hypops": hyp, "hypops-icdf": icdf, "pvae-loop": rej}
        if args.no_icdf:
            del fns["hypops-icdf"]
        rn = RiemannianNormal(loc, scale, c=c)
        acc = rn.radius_acceptance()
        hyp_stats: dict = {}
        torch.manual_seed(args.seed)
        rn._rejection_radius((K, B), rn._c64().sqrt(), stats=hyp_stats)
        pvals, candidates = {}, []
        for name, fn in fns.items():
            torch.manual_seed(args.seed)
            try:
                pvals[name] = ks_pit_pvalue(fn(), loc, scale, c)
                err = None if pvals[name] > KS_MIN_P else (
                    f"check failed: samples fail the KS test against the radial CDF (p = {pvals[name]:.2g})")
            except Exception as e:
                err = f"error: {type(e).__name__}: {e}"
            if err and args.strict:
                raise harness.CheckFailed(f"{title}: {name}: {err}")
            candidates.append(harness.Candidate(name, fn, check=False, error=err))
        # one sampling call at full size takes seconds: fewer rounds, and the checked call is the warm-up
        res = harness.run_row(title, candidates, None, [], rtol=RTOL, atol=ATOL,
                              warmup=1 if size == "toy" else 0, repeats=srepeats, target_s=target_s)
        ratios = {"pvae-loop/hypops": harness.ratio(res, "pvae-loop", "hypops"),
                  "hypops-icdf/hypops": harness.ratio(res, "hypops-icdf", "hypops")}
        meta = {"part": "riemannian_sampling", "K": K, "B": B, "D": D, "scale_lo": lo, "scale_hi": hi}
        report.add(meta, res, {**ratios, "ks_p": pvals, "acceptance_min": float(acc.min()),
                               "acceptance_mean": float(acc.mean()), "hypops_rounds": hyp_stats["rounds"],
                               "hypops_proposals_per_sample": hyp_stats["proposals"] / hyp_stats["samples"],
                               "pvae_loop_rounds": sum(rounds) / len(rounds) if rounds else None})
        n = K * B

        def rate(name):
            r = res.get(name)
            if r is None:
                return "-"
            return f"{n / r.stats.median:.3g} samples/s" if r.stats else "-"

        srows.append([D, f"{lo:g}..{hi:g}", n, *(harness.time_cell(res.get(k)) for k in names),
                      *(harness.fmt_ratio(r) for r in ratios.values()), *(rate(k) for k in names),
                      f"{float(acc.min()):.3f} / {float(acc.mean()):.3f}",
                      f"{hyp_stats['rounds']} / {sum(rounds) / len(rounds):.1f}" if rounds else "-",
                      " / ".join(f"{pvals.get(k, float('nan')):.2g}" for k in names)])
    md_s = (
        f"## RiemannianNormal sampling: float64, {K} samples at each of {B} locations, c = {c:g}, per-row "
        f"scale uniform in the range shown, {torch.get_num_threads()} threads, median of {srepeats} "
        "interleaved rounds. hypops: the default rejection sampler; hypops-icdf: sampler=\"inverse_cdf\"; "
        "pvae-loop: a Python rejection loop with a Gaussian envelope. acceptance: the hypops envelope's "
        "analytic acceptance probability, min / mean over the rows; rounds: hypops rejection rounds in one "
        "call / mean pvae-loop rounds per call\n\n"
        + harness.markdown_table(["D", "scale", "samples", *names, "pvae-loop/hypops", "hypops-icdf/hypops",
                                  *(f"{k} rate" for k in names), "acceptance", "rounds",
                                  "KS p (" + " / ".join(names) + ")"], srows)
    )
    if srows:
        report.markdown.append(md_s)
        print(md_s + "\n", flush=True)

    report.markdown.insert(0, head + "\n\n" + harness.format_machine(info))
    return report.finish(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
