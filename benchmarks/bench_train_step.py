"""One training step of the hypops VAEs (issue 7 item 6): hypops native, the torch reference backend, and the
same model built on geoopt, side by side.

    python benchmarks/bench_train_step.py            # paper preset at batch 128, dense preset at batch 32
    python benchmarks/bench_train_step.py --quick    # smoke run: tiny batches, 3 rounds, no memory workers

A step is ``hypops.models.train.train_step`` on a fresh batch, exactly what ``hypops.models.train`` does once
per step: draw a triplet batch (``sample_triplets`` on the synthetic training volumes with the sizes
``hypops train`` uses, ``pipeline.sampler_options``), forward (encoder, wrapped-normal posterior rsample and
log-densities, gyroplane decoder, ELBO + triplet loss), the NaN guard, backward, gradient clipping to 8 and an
Adam (amsgrad) step at the preset's default learning rate (``pipeline.DEFAULT_LR``). Float32, CPU.

Cases (``--cases``): ``paper`` (``build_vae("paper")``, the published model, 10³ patches, batch 128, its
published batch size); ``dense`` (``build_vae("dense")``, full width, what ``hypops train --preset dense``
builds: 10³ patches, batch 32, the CLI's default); on request ``dense-demo`` (the half-width dense model that
``hypops demo`` trains, ``pipeline.DEMO_MODEL``, batch 32).

Candidates, each with its own copy of the same initial weights, its own optimiser and its own data
generator (same seed, so they see the same batches):
  native   the model as built: every hyperbolic op on hypops' native kernels;
  torch    the same model run under ``hypops.use_backend("torch")``: every op from ``hypops.reference``
           (plain PyTorch; the unfold-based gyroplane convolution);
  geoopt   the same architecture and weights with the hyperbolic pieces written the way a geoopt user writes
           them, with ``geoopt.PoincareBall`` methods (``geoopt_build`` below): expmap0/logmap0 for the
           encoder mean and the dense patch embedding; the wrapped normal as pvae writes it (z = expmap(mu,
           transp0(mu, sigma eps / 2)); log-density from logmap, transp0back and dist, log(sinh(x)/x) written
           out); the triplet distances with ``dist``; the gyroplane layer with ``dist2plane``: the paper's
           pvae-exact k = 1 layer as pvae computes it (``mobius_add`` then ``dist2plane`` to the plane through
           the origin), a tied k = 3 layer (dense default) as a pointwise ``dist2plane`` over the
           origin-padded grid followed by a window sum (``avg_pool3d`` with divisor 1), a per-offset layer by
           unfolding the windows. Same optimiser (torch Adam: every parameter is Euclidean).
  sampler  the batch draw alone (not a candidate: how much of a step is data), timed in the same rounds.

Check before timing (a benchmark compares equals only): in float64, on a small batch (4 triplets paper, 2
dense) with the same weights and the same posterior noise, every candidate's loss terms and the gradient of
the loss with respect to every parameter must agree with the torch backend's (hypops.reference in float64)
to rtol 1e-6 (harness.compare; the gyroplanes' gradients must be non-zero, else the check would not cover
the decoder: the paper's bottleneck ReLU cuts it for some initial weights, and then the next seed is used).
The float32 loss terms of each candidate's first timed step, from the same weights, batch and noise, are
reported too.

Timing: interleaved rounds (harness.time_interleaved): every round runs one step of each candidate in a rotated
order, so bursts of load from other users of the machine hit all alike; ratios are paired per round. Peak
memory (not with --quick or --no-memory): one fresh process per (case, candidate), as in the other scripts: two
warm-up steps, then VmHWM minus the resident set before one more step (everything a step holds at its peak:
batch, activations, gradients, optimiser temporaries).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _allocator  # noqa: E402

if __name__ == "__main__" and "--memory-worker" not in sys.argv:
    _allocator.ensure()  # before torch is imported: glibc reads its malloc settings at start-up

import geoopt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import harness  # noqa: E402
from hypops import _backend, use_backend  # noqa: E402
from hypops.models import build_vae  # noqa: E402
from hypops.models.sampling import sample_triplets  # noqa: E402
from hypops.models.train import LOGGED, make_optimizer, train_step  # noqa: E402
from hypops.models.triplet import HierarchicalTripletLoss  # noqa: E402
from hypops.nn import GyroplaneConv3d  # noqa: E402
from hypops.pipeline import DEFAULT_LR, DEMO_MODEL, load_volumes, sampler_options  # noqa: E402

CANDIDATES = ("native", "torch", "geoopt")
CLIP = 8.0  # train()'s default
PATCH = 10  # the patch side hypops train samples for every preset
# name: (preset, model overrides, batch size, check batch size)
CASES = {
    "paper": ("paper", {}, 128, 4),
    "dense": ("dense", {}, 32, 2),
    "dense-demo": ("dense", DEMO_MODEL, 32, 2),
}
DEFAULT_CASES = ("paper", "dense")
QUICK_BATCH = {"paper": 4, "dense": 2, "dense-demo": 2}
CHECK_RTOL, CHECK_ATOL = 1e-6, 1e-9
# geoopt forms 1 - c|w|^2 by subtraction, which loses digits for points w near the sphere (the published
# layer's (-A) (+) x often lands there and is projected): measured up to 3e-9 absolute in float64 gradients of
# ~1e-1, 3x the hypops tolerance on the smallest entries; the same 10x allowance as bench_pointwise.py's.
GEOOPT_TOL_SCALE = 10.0
MIB = 2**20


# --- the geoopt-built equivalent -------------------------------------------------------------------------
def _geoopt_ball(c: float) -> geoopt.PoincareBall:
    # c given in float64: geoopt stores softplus^-1(c), which in float32 would give c = 1 +- 1e-7 and spoil the
    # float64 check; a float64 0-dim curvature leaves float32 inputs in float32.
    return geoopt.PoincareBall(c=torch.tensor(float(c), dtype=torch.float64))


class _GeooptMaps:
    """The hyperbolic maps of hypops' _VAE (its ``_expmap0``, ``_logmap0``, ``_wrapped_normal_kl``) written
    with ``self.ball``, a geoopt.PoincareBall. Mixed in ahead of PaperVAE / DenseVAE by ``geoopt_build``."""

    def _expmap0(self, u, dim=-1):
        return self.ball.expmap0(u, dim=dim)

    def _logmap0(self, y, dim=-1):
        return self.ball.logmap0(y, dim=dim)

    def _log_wrapped_normal(self, z, mu, sigma):
        # pvae's WrappedNormal.log_prob: the tangent vector at mu carried to the origin, in the origin's
        # coordinates (times lambda_0 = 2), under N(0, sigma^2), minus log det of the exponential map.
        ball = self.ball
        v = 2 * ball.transp0back(mu, ball.logmap(mu, z))
        sc_d = ball.c.sqrt() * ball.dist(mu, z)
        log_normal = torch.distributions.Normal(torch.zeros_like(sigma), sigma).log_prob(v).sum(-1)
        return log_normal - (z.shape[-1] - 1) * torch.log(torch.sinh(sc_d) / sc_d)

    def _wrapped_normal_kl(self, mu, sigma, eps):
        # pvae's WrappedNormal.rsample: sigma eps / lambda_0 at the origin, carried to mu, then expmap.
        ball = self.ball
        z = ball.expmap(mu, ball.transp0(mu, sigma * eps / 2))
        zero = mu.new_zeros(mu.shape[-1:])  # the prior N_W(0, I)
        return z, self._log_wrapped_normal(z, mu, sigma) - self._log_wrapped_normal(z, zero, torch.ones_like(zero))


class GeooptTripletLoss(HierarchicalTripletLoss):
    """HierarchicalTripletLoss with ``self.ball.dist`` (its curvature is fixed when built: the ``c`` passed
    at call time, the model's fixed c or 1, is the ball's by construction in ``geoopt_build``)."""

    def distances(self, anchor, positive, negative, c=None):
        if self.metric == "euclidean":
            return super().distances(anchor, positive, negative, c)
        self._check(anchor, positive, negative)
        return self.ball.dist(anchor, positive), self.ball.dist(anchor, negative)


class GeooptGyroplaneConv3d(GyroplaneConv3d):
    """GyroplaneConv3d (same parameters, same state dict) computed with ``self.ball.dist2plane``."""

    def _geoopt_planes(self):
        ball = self.ball
        if self.parameterization == "pvae":
            P = ball.expmap0(self._bias * self._weight)
            A = self._weight * (1 - ball.c * P.pow(2).sum(-1, keepdim=True))
            return A, P  # pvae's roles: the plane goes through A and has normal P
        return ball.expmap0(self.point_tangent, dim=1), self.normal

    def forward(self, x):
        ball = self.ball
        if self.dilation != (1, 1, 1):
            raise NotImplementedError("the geoopt-built gyroplane layer covers dilation 1 (both presets)")
        p, a = self._geoopt_planes()
        if self.pvae_exact:  # kernel size 1: pvae's GeodesicLayer on every grid point
            w = ball.mobius_add(-p, x.movedim(1, -1).unsqueeze(-2))  # [B, X, Y, Z, C, D]
            y = ball.dist2plane(w, torch.zeros_like(a), a, signed=True).movedim(-1, 1)
        else:
            px, py, pz = self.padding
            xp = F.pad(x, (pz, pz, py, py, px, px))  # zeros: the origin, as hypops pads
            if self.tied:  # one plane per channel: distances of every voxel, then the sum over each window
                d = ball.dist2plane(xp.movedim(1, -1).unsqueeze(-2), p, a, signed=True).movedim(-1, 1)
                y = F.avg_pool3d(d, self.kernel_size, self.stride, divisor_override=1)
            else:  # one plane per offset: the windows unfolded, [B, OX, OY, OZ, k^3, D] against [C, k^3, D]
                win = xp
                for i in range(3):
                    win = win.unfold(2 + i, self.kernel_size[i], self.stride[i])
                win = win.movedim(1, -1).flatten(4, 6)
                pk, ak = p.flatten(2).transpose(1, 2), a.flatten(2).transpose(1, 2)
                y = ball.dist2plane(win.unsqueeze(4), pk, ak, signed=True).sum(-1).movedim(-1, 1)
        return y if self.bias is None else y + self.bias.view(-1, 1, 1, 1)


def geoopt_build(model):
    """A copy of ``model`` (a hyperbolic PaperVAE or DenseVAE with a fixed curvature; same weights) whose
    hyperbolic pieces run on geoopt.PoincareBall. The copy's classes are swapped for subclasses that only
    override how the hyperbolic maps are computed, so everything else (encoder, decoder tail, loss assembly)
    is the hypops model's own code."""
    cfg = model.config
    if not model.hyperbolic or cfg.learnable_c:
        raise ValueError("geoopt_build: needs a hyperbolic model with a fixed curvature")
    g = copy.deepcopy(model)
    g.__class__ = type(f"Geoopt{type(model).__name__}", (_GeooptMaps, type(model)), {})
    g.ball = _geoopt_ball(cfg.c)
    g.triplet_loss.__class__ = GeooptTripletLoss
    g.triplet_loss.ball = _geoopt_ball(1.0 if cfg.triplet_c_one else cfg.c)
    if isinstance(getattr(g, "gyroconv", None), GyroplaneConv3d):
        g.gyroconv.__class__ = GeooptGyroplaneConv3d
        g.gyroconv.ball = g.ball
    return g


# --- setup -----------------------------------------------------------------------------------------------
def make_volumes(quick: bool) -> torch.Tensor:
    # The 8 synthetic training volumes hypops train --data toy uses (50³); --quick: 2 volumes of 24³.
    return load_volumes("toy", n_toy=2, toy_size=24) if quick else load_volumes("toy")


def make_sampler(volumes):
    opts = sampler_options(min(volumes.shape[1:]))

    def sample(b, gen):
        batch = sample_triplets(volumes, b, gen, patch_size=PATCH, **opts)
        return batch.anchor, batch.positive, batch.negative

    return sample


def make_model(case: str, seed: int):
    preset, overrides = CASES[case][:2]
    torch.manual_seed(seed)
    return build_vae(preset, **overrides)


def backend_context(name: str):
    # native and torch are requested explicitly: a missing native build raises instead of falling back.
    return use_backend(name) if name in ("native", "torch") else contextlib.nullcontext()


@contextlib.contextmanager
def served_by():
    """Records (op, backend) for every hypops op called in the block: each public op looks its
    implementation up through hypops._backend.select, which is wrapped here."""
    seen: set = set()
    select = _backend.select

    def recording(op, device, backend=None):
        seen.add((op, _backend.choose(op, device, backend)))
        return select(op, device, backend)

    _backend.select = recording
    try:
        yield seen
    finally:
        _backend.select = select


class Step:
    """One training step of candidate ``name``: its own model (a copy of ``model``, or the geoopt build of
    it), its own Adam and its own data generator; ``train_step`` on a freshly sampled batch per call."""

    def __init__(self, name: str, model, sample, batch_size: int, lr: float, seed: int):
        self.name = name
        self.model = geoopt_build(model) if name == "geoopt" else copy.deepcopy(model)
        self.opt = make_optimizer(self.model.parameters(), "adam", lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.sample, self.batch_size = sample, batch_size

    def __call__(self) -> dict:
        with backend_context(self.name):
            return train_step(self.model, self.opt, self.sample(self.batch_size, self.gen), clip=CLIP)


def check_case(case: str, sample, seed: int) -> tuple[dict, int]:
    """The float64 check of every candidate against the torch backend (see the module docstring). Returns
    {candidate: None (passed) or why it failed} and the model seed used."""
    b = CASES[case][3]
    batch = [t.double() for t in sample(b, torch.Generator().manual_seed(seed))]
    for s in range(seed, seed + 20):
        model = make_model(case, s).double()
        names = [n for n, _ in model.named_parameters()]
        got = {}
        for name in CANDIDATES:
            m = geoopt_build(model) if name == "geoopt" else model
            params = dict(m.named_parameters())
            torch.manual_seed(seed + 1)  # the same posterior noise for every candidate
            with served_by() as ops, backend_context(name):
                out = m(*batch)
                grads = torch.autograd.grad(out["loss"], [params[n] for n in names], allow_unused=True)
            grads = [torch.zeros_like(params[n]) if g is None else g for n, g in zip(names, grads)]
            got[name] = ([out[k].detach() for k in LOGGED] + grads, ops)
        gyro = [g for n, g in zip(names, got["torch"][0][len(LOGGED):]) if n.startswith("gyroconv.")]
        if any(bool(g.abs().max() > 0) for g in gyro):
            break
    else:
        raise RuntimeError(f"{case}: no gradient reaches the gyroplanes for 20 initial seeds; the check would "
                           "not cover the decoder")
    want, labels = got["torch"][0], [*LOGGED, *(f"grad {n}" for n in names)]
    verdict = {}
    for name in CANDIDATES:
        vals, ops = got[name]
        wrong = sorted(f"{op}->{be}" for op, be in ops if be != name)
        if name == "geoopt" and ops:
            verdict[name] = f"the geoopt build called hypops ops: {sorted(ops)}"
        elif name != "geoopt" and (wrong or not ops):
            verdict[name] = f"ops not served by {name}: {wrong or 'no hypops op called'}"
        else:
            scale = GEOOPT_TOL_SCALE if name == "geoopt" else 1.0
            err, where = harness.compare(vals, want, labels, rtol=CHECK_RTOL * scale, atol=CHECK_ATOL * scale)
            verdict[name] = None if err <= 1 else (f"float64 {where} differs from the torch backend's by "
                                                   f"{err:.3g}x the tolerance (rtol {CHECK_RTOL * scale:g})")
    return verdict, s


# --- memory worker (runs in a fresh process) ------------------------------------------------------------
def memory_worker(payload: dict) -> dict:
    if payload.get("threads"):
        torch.set_num_threads(payload["threads"])
    case, name = payload["case"], payload["candidate"]
    try:
        sample = make_sampler(make_volumes(False))
        step = Step(name, make_model(case, payload["seed"]), sample, payload["batch"],
                    DEFAULT_LR[CASES[case][0]], payload["seed"])
        step()
        step()
        gc.collect()
        return {"peak_extra_bytes": harness.peak_extra_rss(step)}
    except Exception as e:  # an OOM or a failure of the candidate: report it, do not crash the run
        return {"error": harness.error_record(e)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny batches, 2 small volumes, no memory")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--batch-size", type=int, default=None, help="override every case's batch size")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10, quick 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds after the first step (default 1)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--allocator", choices=("reuse", "system"), default="reuse", help="see benchmarks/README.md")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_worker is not None:
        harness.worker_reply(memory_worker(json.loads(args.memory_worker)))
        return 0

    harness.set_threads(args.threads)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    repeats = args.repeats or (3 if args.quick else 10)
    info = harness.machine_info()
    report = harness.Report("train_step" + ("-quick" if args.quick else ""), vars(args), info)
    print(f"# hypops training step benchmark (float32, CPU)\n\n{harness.format_machine(info)}\n", flush=True)
    sample = make_sampler(make_volumes(args.quick))
    me = Path(__file__).resolve()

    table = []
    for case in cases:
        preset, overrides, batch, _ = CASES[case]
        batch = args.batch_size or (QUICK_BATCH[case] if args.quick else batch)
        lr = DEFAULT_LR[preset]
        print(f"- {case}: float64 check ...", flush=True)
        verdict, model_seed = check_case(case, sample, args.seed)
        model = make_model(case, model_seed)
        candidates, first = [], {}
        for name in CANDIDATES:
            if verdict[name] is not None:
                print(f"  !! CHECK FAILED {case}: {name}: {verdict[name]}", flush=True)
                candidates.append(harness.Candidate(name, None, error=f"check failed: {verdict[name]}"))
                continue
            step = Step(name, model, sample, batch, lr, args.seed)
            torch.manual_seed(args.seed + 2)  # the same posterior noise in every candidate's first step
            try:
                first[name] = step()
            except Exception as e:
                candidates.append(harness.Candidate(name, None, error=f"{type(e).__name__}: {e}"[:300]))
                continue
            candidates.append(harness.Candidate(name, step, check=False))
        gen = torch.Generator().manual_seed(args.seed)
        candidates.append(harness.Candidate("sampler", lambda: sample(batch, gen), check=False))
        mem = {}
        if not args.quick and not args.no_memory:
            print(f"- {case}: peak memory (one fresh process per candidate) ...", flush=True)
            for name in CANDIDATES:
                if verdict[name] is None:
                    ans = harness.run_worker(me, {"case": case, "candidate": name, "batch": batch,
                                                  "seed": model_seed, "threads": torch.get_num_threads()})
                    mem[name] = ans.get("peak_extra_bytes")
                    if "error" in ans:
                        print(f"  !! memory worker {case} {name}: {ans['error']}", flush=True)
        print(f"- {case}: timing {repeats} interleaved rounds (batch {batch}) ...", flush=True)
        res = harness.run_row(f"train step {case}", candidates, None, [], rtol=0, atol=0, warmup=args.warmup,
                              repeats=repeats, target_s=0.0)
        ratios = {f"{c}/native": harness.ratio(res, c, "native") for c in (*CANDIDATES[1:], "sampler")}
        for name, r in res.items():
            if name in mem:
                r.extra["peak_extra_bytes"] = mem[name]
            if name in first:
                r.extra["first_step"] = first[name]
        report.add({"case": case, "preset": preset, "batch": batch, "lr": lr, "model_seed": model_seed}, res, ratios)
        for name in (*CANDIDATES, "sampler"):
            r = res[name]
            med = r.stats.median if r.stats else None
            rat = 1.0 if name == "native" and med else ratios.get(f"{name}/native")
            loss = first.get(name, {}).get("loss")
            table.append([case, batch, name, harness.time_cell(r), "-" if not med else f"{1 / med:.2f}",
                          harness.fmt_ratio(rat),
                          "-" if mem.get(name) is None else f"{mem[name] / MIB:.0f}",
                          "-" if loss is None else f"{loss:.6g}"])
        del candidates, res
        gc.collect()

    heads = ["case", "batch", "candidate", "time per step", "steps/s", "time / native", "peak extra MiB",
             "loss at step 1"]
    md = (f"## one training step, float32, {torch.get_num_threads()} threads, median of {repeats} interleaved "
          "rounds (±: half the IQR)\n\n" + harness.markdown_table(heads, table) +
          "\n\n`time / native`: paired median ratio (>1: slower than native); `sampler`: the batch draw alone, "
          "part of every step.")
    report.markdown += ["# hypops training step benchmark (float32, CPU)\n\n" + harness.format_machine(info), md]
    print("\n" + md + "\n", flush=True)
    return report.finish(args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
