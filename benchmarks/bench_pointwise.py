"""Pointwise Poincaré-ball ops: hypops native vs eager reference vs torch.compile'd reference vs geoopt,
with ``x.clone()`` as the memory-bandwidth floor (SPEC §7).

    python benchmarks/bench_pointwise.py                 # both sizes (2^20 x 64 and 4096 x 16)
    python benchmarks/bench_pointwise.py --size large    # 2^20 x 64 float32 only
    python benchmarks/bench_pointwise.py --quick         # smoke run at toy size, a few seconds

Modes:
  fwd     the op on inputs that do not require grad (no autograd graph is recorded).
  fwdbwd  every tensor input and c (a 0-dim tensor) require grad; one timed call is
          ``out = op(...); torch.autograd.grad(out, [*inputs, c], g)`` with g a fixed random tensor of
          out's shape (a random-gradient dot, the realistic case: the gradient comes from a loss
          downstream). ``autograd.grad`` returns the gradients without accumulating into ``.grad``.
          geoopt's c is ``softplus(isp_c)`` (PoincareBall(learnable=True)): its gradient is taken with
          respect to isp_c and converted to dc for the check.

Candidates: clone (floor; fwd cost of ``inputs[0].clone()``, shown in both modes), add (a second floor,
shown in both modes: the fwd cost of one pass of torch's own elementwise loop over the op's tensor inputs,
``x + y`` for a binary op, ``addcmul(x, p, a)`` for dist2plane, ``x + 0`` for a unary one: it reads what
the op reads and writes one [N, D] tensor with plain stores; SPEC §7's targets are against clone, and
native/add says how far an op is from the cheapest elementwise op torch has on the same inputs), native
(``hypops.<op>(..., backend="native")``), eager (``hypops.reference.<op>``), compiled
(``torch.compile(hypops.reference.<op>, dynamic=False)``, compiled once per shape and mode, warmed up,
then timed; a failure to compile is recorded in the table), geoopt (``geoopt.PoincareBall(c=1)`` methods).
On request (``--candidates``): native-avx2, native-baseline and native-scalar, native with other CPU
kernels (csrc/cpu/simd/): the AVX2+FMA build of the vectorised per-row stage (what a CPU without AVX-512
runs; native itself runs the best build the CPU has), the x86-64 baseline (SSE2) build (what a CPU
without AVX2 runs), and the plain per-row loop on libm / Dual numbers (the kernels before
vectorisation), so that before and after compare side by side in one run.

Every candidate is checked against the float64 reference on the same inputs before it is timed.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _allocator  # noqa: E402

if __name__ == "__main__":
    _allocator.ensure()  # before torch is imported: glibc reads its malloc settings at start-up

import torch  # noqa: E402

import harness  # noqa: E402
import hypops  # noqa: E402
from hypops import reference  # noqa: E402
from hypops._constants import PROJ_EPS  # noqa: E402

try:
    import geoopt  # noqa: E402
except ImportError:  # pragma: no cover - geoopt is a declared dependency
    geoopt = None

SIZES = {"large": (1 << 20, 64), "small": (4096, 16), "toy": (256, 8)}
CANDIDATES = ("clone", "add", "native", "eager", "compiled", "geoopt", "native-avx2", "native-baseline",
              "native-scalar")
DEFAULT_CANDIDATES = ("clone", "add", "native", "eager", "compiled", "geoopt")
FLOORS = ("clone", "add")  # timed, never checked against the reference
MODES = ("fwd", "fwdbwd")
# float32 candidates vs the float64 reference: |err| <= ATOL * max(1, max|ref|) + RTOL * |ref|
RTOL, ATOL = 2e-3, 2e-4
GEOOPT_TOL_SCALE = 10.0  # geoopt's float32 formulas are less accurate (e.g. expmap's gradient near the boundary)


@dataclass(frozen=True)
class OpSpec:
    name: str
    kinds: tuple[str, ...]  # per tensor input: "point" (|x| < 0.9/sqrt(c)), "tangent", "wide" (|x| up to 1.2)
    geo: Callable  # (ball, *tensors) -> output, geoopt's equivalent


OPS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        OpSpec("expmap0", ("tangent",), lambda b, u: b.expmap0(u)),
        OpSpec("logmap0", ("point",), lambda b, y: b.logmap0(y)),
        OpSpec("expmap", ("point", "tangent"), lambda b, x, u: b.expmap(x, u)),
        OpSpec("logmap", ("point", "point"), lambda b, x, y: b.logmap(x, y)),
        OpSpec("mobius_add", ("point", "point"), lambda b, x, y: b.mobius_add(x, y)),
        OpSpec("dist", ("point", "point"), lambda b, x, y: b.dist(x, y)),
        OpSpec("project", ("wide",), lambda b, x: b.projx(x)),
        OpSpec("dist2plane", ("point", "point", "tangent"), lambda b, x, p, a: b.dist2plane(x, p, a)),
    )
}


def make_input(kind: str, n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """float32 [n, d]: a random direction times a radius drawn per row."""
    v = torch.randn(n, d, generator=gen)
    if kind == "tangent":  # norms around 1 (tanh not saturated, projection rarely active)
        return v.mul_(1.0 / math.sqrt(d))
    hi = 0.9 if kind == "point" else 1.2  # "wide": about 1/4 of the rows lie beyond the ball and get projected
    r = torch.rand(n, 1, generator=gen).mul_(hi)
    return v.div_(v.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mul_(r)


def make_inputs(op: str, n: int, d: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [make_input(k, n, d, gen) for k in OPS[op].kinds]


def add_floor(inputs: list[torch.Tensor]) -> torch.Tensor:
    """The add candidate: one pass of torch's elementwise loop over the op's inputs, one [N, D] output:
    ``x + 0``, ``x + y``, or ``torch.addcmul(x, p, a)`` for three (``x + p + a`` would be two passes)."""
    if len(inputs) == 1:
        return inputs[0] + 0
    if len(inputs) == 2:
        return inputs[0] + inputs[1]
    assert len(inputs) == 3, "ops take one to three tensors"
    return torch.addcmul(*inputs)


def _out_shape(op: str, n: int, d: int) -> tuple[int, ...]:
    return (n,) if op in ("dist", "dist2plane") else (n, d)


# Ops that return points project them with the eps of the *storage* dtype (float32: 4e-3). The float64
# oracle is therefore the float64 reference projected again with float32's eps (projecting onto the
# (1 - 4e-3)/sqrt(c) sphere after the (1 - 1e-5)/sqrt(c) one is the same function, gradients included),
# as tests/hyptest.py does.
POINT_OPS = ("expmap0", "expmap", "mobius_add", "project")


def proj64(x: torch.Tensor, c: torch.Tensor, eps: float) -> torch.Tensor:
    n = x.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    maxnorm = (1 - eps) / c.sqrt()
    return torch.where(n > maxnorm, x / n * maxnorm, x)


def oracle_fn(op: str) -> Callable:
    """float64 function (*tensors, c) -> the float32 op's exact value."""
    rop = getattr(reference, op)
    if op in POINT_OPS:
        return lambda *a: proj64(rop(*a[:-1], c=a[-1]), a[-1], PROJ_EPS[torch.float32])
    return lambda *a: rop(*a[:-1], c=a[-1])


_COMPILED: dict[str, Callable] = {}

# candidate -> the CPU kernels it runs (hypops._C._set_cpu_kernels; "best" = the default choice)
KERNELS = {"native": "best", "native-avx2": "avx2", "native-baseline": "baseline", "native-scalar": "scalar"}


def kernels_available(name: str) -> bool:
    """Whether this build and CPU run the candidate's CPU kernels (native-avx2 needs AVX2+FMA)."""
    kernels = KERNELS[name]
    if kernels == "best":
        return True
    if not hasattr(hypops._C, "_set_cpu_kernels"):
        return False
    before = hypops._C.cpu_kernels()
    try:
        hypops._C._set_cpu_kernels(kernels)
        return True
    except ValueError:
        return False
    finally:
        hypops._C._set_cpu_kernels(before)


def with_kernels(name: str, f: Callable) -> Callable:
    """f with the candidate's CPU kernels switched on first. The kernels are chosen when an op runs, so a
    fwd+bwd step (forward, then autograd's backward) runs both with them (candidates take turns)."""
    kernels = KERNELS[name]

    def run(*a):
        if hasattr(hypops._C, "_set_cpu_kernels"):
            hypops._C._set_cpu_kernels(kernels)
        elif kernels != "best":
            raise RuntimeError("this build of hypops has no selectable CPU kernels")
        return f(*a)

    return run


def compiled_ref(op: str) -> Callable:
    if op not in _COMPILED:
        _COMPILED[op] = torch.compile(getattr(reference, op), dynamic=False)
    return _COMPILED[op]


def build_case(op: str, mode: str, inputs: list[torch.Tensor], *, candidates=CANDIDATES, seed: int = 0):
    """Candidates for one (op, mode) on ``inputs`` (float32 [N, D]), the float64 oracle and labels."""
    spec = OPS[op]
    n, d = inputs[0].shape
    hop, rop = getattr(hypops, op), getattr(reference, op)
    gen = torch.Generator().manual_seed(seed + 1)
    cands: list[harness.Candidate] = []
    x0 = inputs[0]
    if mode == "fwd":
        c = torch.tensor(1.0)
        ball = geoopt.PoincareBall(c=1.0) if geoopt else None
        fns = {
            "clone": lambda: x0.clone(),
            "add": lambda: add_floor(inputs),
            **{k: with_kernels(k, lambda: hop(*inputs, c=c, backend="native")) for k in KERNELS},
            "eager": lambda: rop(*inputs, c=c),
            "compiled": lambda: compiled_ref(op)(*inputs, c=c),
            "geoopt": (lambda: spec.geo(ball, *inputs)) if ball else None,
        }
        for name in candidates:
            cands.append(harness.Candidate(name, fns[name], check=name not in FLOORS,
                                           fatal=name != "compiled",
                                           tol_scale=GEOOPT_TOL_SCALE if name == "geoopt" else 1.0,
                                           must_match=name != "geoopt"))
        want = harness.oracle(oracle_fn(op), inputs, [torch.tensor(1.0)], None, elems_per_row=d)
        labels = ["out"]
        return cands, want, labels

    # fwd+bwd: all tensor inputs and c require grad; gradient of <out, g> with g random
    g = torch.randn(_out_shape(op, n, d), generator=gen)
    xs = [t.detach().requires_grad_() for t in inputs]
    c = torch.tensor(1.0, requires_grad=True)

    def step(f, extra=(c,)):
        def run():
            out = f()
            return out, torch.autograd.grad(out, [*xs, *extra], g)

        return run

    ball = geoopt.PoincareBall(c=1.0, learnable=True) if geoopt else None

    def geo_canon(res):
        out, grads = res
        isp = ball.isp_c.detach()
        gc = grads[-1] / torch.sigmoid(isp)  # c = softplus(isp_c): dL/dc = dL/disp / sigmoid(isp)
        return [out, *grads[:-1], gc]

    fns = {
        "clone": lambda: x0.clone(),
        "add": lambda: add_floor(inputs),
        **{k: with_kernels(k, step(lambda: hop(*xs, c=c, backend="native"))) for k in KERNELS},
        "eager": step(lambda: rop(*xs, c=c)),
        "compiled": step(lambda: compiled_ref(op)(*xs, c=c)),
        "geoopt": step(lambda: spec.geo(ball, *xs), extra=(ball.isp_c,)) if ball else None,
    }
    for name in candidates:
        cands.append(
            harness.Candidate(name, fns[name], canon=geo_canon if name == "geoopt" else None,
                              check=name not in FLOORS,
                              fatal=name != "compiled", tol_scale=GEOOPT_TOL_SCALE if name == "geoopt" else 1.0,
                              must_match=name != "geoopt")
        )
    want = harness.oracle(oracle_fn(op), inputs, [torch.tensor(1.0)], g, elems_per_row=d)
    labels = ["out", *(f"grad_{k}" for k in _arg_names(op)), "grad_c"]
    return cands, want, labels


def _arg_names(op: str) -> list[str]:
    import inspect

    params = inspect.signature(getattr(reference, op)).parameters
    return [p for p in params if params[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][: len(OPS[op].kinds)]


TARGETS = {
    # (ratio name, comparison, bound, modes it applies to)
    "native/clone": [("fwd", "<=", 1.5), ("fwdbwd", "<=", 4.0)],
    "geoopt/native": [("fwdbwd", ">=", 10.0)],
    "compiled/native": [("fwd", ">=", 1.0), ("fwdbwd", ">=", 1.0)],
}


def target_misses(mode: str, ratios: dict[str, float | None]) -> list[str]:
    misses = []
    for name, rules in TARGETS.items():
        for m, cmp, bound in rules:
            r = ratios.get(name)
            if m != mode or r is None:
                continue
            ok = r <= bound if cmp == "<=" else r >= bound
            if not ok:
                misses.append(f"{name} {r:.2f} (want {cmp} {bound:g})")
    return misses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("small", "large", "both"), default="both")
    ap.add_argument("--quick", action="store_true", help="smoke run: toy size 256x8, few repeats, no torch.compile")
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of: " + ", ".join(OPS))
    ap.add_argument("--modes", default=",".join(MODES), help="fwd, fwdbwd or both")
    ap.add_argument("--candidates", default=None, help="comma-separated subset of: " + ", ".join(CANDIDATES))
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile candidate")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 5 large, 15 small, 3 quick)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed interleaved rounds after the checked first call (default: 0 large, 1 otherwise)")
    ap.add_argument("--allocator", choices=("reuse", "system"), default="reuse",
                    help="reuse: glibc keeps freed memory (default); system: glibc defaults (fresh mmap, page "
                         "faults, per large tensor). See benchmarks/README.md")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--strict", action="store_true", help="abort at the first failed correctness check or error")
    ap.add_argument("--out-dir", default=None, help="where CSV/JSON/MD go (default: bench-results/)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    harness.set_threads(args.threads)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for o in ops:
        if o not in OPS:
            ap.error(f"unknown op {o!r}")
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    cands = [c.strip() for c in args.candidates.split(",")] if args.candidates else list(DEFAULT_CANDIDATES)
    for c in cands:
        if c not in CANDIDATES:
            ap.error(f"unknown candidate {c!r}")
    shown = [c for c in CANDIDATES if c in DEFAULT_CANDIDATES or c in cands]
    if args.no_compile or (args.quick and not args.candidates):
        cands = [c for c in cands if c != "compiled"]
    if geoopt is None:
        cands = [c for c in cands if c != "geoopt"]
    sizes = ["toy"] if args.quick else (["large", "small"] if args.size == "both" else [args.size])
    if "compiled" in cands:
        harness.allow_recompiles()

    info = harness.machine_info()
    report = harness.Report("pointwise" + ("-quick" if args.quick else ""), vars(args), info)
    print(f"# hypops pointwise benchmark (float32, CPU)\n\n{harness.format_machine(info)}\n", flush=True)

    for size in sizes:
        n, d = SIZES[size]
        repeats = args.repeats or {"large": 5, "small": 15, "toy": 3}[size]
        warmup = args.warmup if args.warmup is not None else (0 if size == "large" else 1)
        target_s = {"large": 0.0, "small": 0.02, "toy": 0.001}[size]
        table, notes = [], []
        for op in ops:
            inputs = make_inputs(op, n, d, seed=args.seed)
            for mode in modes:
                title = f"{op} {mode} {n}x{d}"
                print(f"- {title} ...", flush=True)
                candidates, want, labels = build_case(op, mode, inputs, candidates=cands, seed=args.seed)
                res = harness.run_row(
                    title, candidates, want, labels, rtol=RTOL, atol=ATOL, warmup=warmup, repeats=repeats,
                    target_s=target_s, strict=args.strict,
                )
                del candidates, want
                ratios = {
                    "native/clone": harness.ratio(res, "native", "clone"),
                    "native/add": harness.ratio(res, "native", "add"),
                    "eager/native": harness.ratio(res, "eager", "native"),
                    "compiled/native": harness.ratio(res, "compiled", "native"),
                    "geoopt/native": harness.ratio(res, "geoopt", "native"),
                }
                if "native-scalar" in cands:
                    ratios["scalar/native"] = harness.ratio(res, "native-scalar", "native")
                misses = target_misses(mode, ratios)
                report.add({"size": size, "n": n, "d": d, "op": op, "mode": mode}, res,
                           {**ratios, "target_misses": misses})
                cells = [harness.time_cell(res.get(name)) for name in shown]
                notes += harness.inexact_notes(title, res)
                table.append([op, mode, *cells, *(harness.fmt_ratio(ratios[k]) for k in ratios),
                              "ok" if not misses else "MISS " + "; ".join(misses)])
        md = (
            f"## {n} x {d} float32, {torch.get_num_threads()} threads, allocator {_allocator.current()}, "
            f"median of {repeats} interleaved rounds (±: half the IQR; ratios: median of per-round ratios)\n\n"
            + harness.markdown_table(
                ["op", "mode", *shown, "native/clone", "native/add", "eager/native", "compiled/native",
                 "geoopt/native",
                 *(["scalar/native"] if "native-scalar" in cands else []), "targets"],
                table,
            )
            + ("\n\n(inexact): an outside baseline that failed the accuracy check, timed anyway:\n"
               + "\n".join(f"- {t}" for t in notes) if notes else "")
        )
        report.markdown.append(md)
        print("\n" + md + "\n", flush=True)

    report.markdown.insert(0, "# hypops pointwise benchmark (float32, CPU)\n\n" + harness.format_machine(info))
    return report.finish(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
