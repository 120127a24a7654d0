"""Training loop for the hypops models: Adam (amsgrad) or geoopt's RiemannianAdam, gradient clipping, a
progress bar with the loss terms, atomic periodic checkpoints, bit-identical resume on the CPU, a NaN/Inf
guard, and multi-process data parallelism under ``torchrun`` (gloo on CPU, nccl on GPU).

The loop needs two things:
- ``model(anchor, positive, negative)`` (its forward) returning a dict with at least ``loss`` (what is
  minimised), ``recon``, ``kl`` and ``triplet`` (0-dim tensors; logged) -- forward, not another method,
  because DistributedDataParallel synchronises gradients through hooks set up by forward;
- ``sample(batch_size, generator)`` returning ``(anchor, positive, negative)`` batches; every random draw
  of the data goes through ``generator`` (a ``torch.Generator`` whose state is checkpointed).
Everything else random (the posterior samples) uses torch's global generator, whose state is checkpointed
too, so a run resumed from ``DIR/model.pt`` continues exactly as the uninterrupted run would have.

Outputs (SPEC §5; other tools read them): ``DIR/model.pt``, the latest checkpoint (``torch.load(...,
weights_only=True)`` loads it: tensors and plain containers only), and ``DIR/log.jsonl``, one JSON object
per logged step with ``step``, ``loss``, ``recon``, ``kl``, ``triplet`` (and ``seconds``). ``steps`` counts
from the start of training, so a resumed run stops at the same step as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

LOGGED = ("loss", "recon", "kl", "triplet")
# Linear learning-rate warm-up (train's default). Adam's first step moves every weight by about lr whatever
# its gradient's size (m / sqrt(v) = +-1 at step 1), and all the weights of a layer's fan-in move together,
# so a wide layer's output moves by ~fan-in x lr x its input. The full-width dense preset at lr 2e-3 (fan-in
# 32 x 27 in its decoder conv, fed by window sums of 27 distances) went from loss 3.6e3 to 2.1e5 at step 2
# (the reconstruction term; the half-width demo model, a quarter of the effect, rose 2x at most). Over 20
# steps from lr / 20 it stays within 1.05x of its first loss (measured on 2 seeds, patches 6³ and 10³), and
# its losses at steps 10-15 were as low as without warm-up (within the step-to-step noise).
WARMUP_STEPS = 20


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite; the message names the step and the term."""


def _rank_world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Joins the process group when started by torchrun (WORLD_SIZE > 1): gloo on the CPU, nccl with CUDA.
    Returns whether this process is part of a multi-process run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def save_checkpoint(path: Path, state: dict) -> None:
    """Writes state to path atomically: a temporary file in the same directory, then a rename, so a kill
    mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hypops train: no checkpoint at {path} (nothing to resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, not a pickle traceback
        raise RuntimeError(f"hypops train: {path} is not a readable hypops checkpoint ({type(e).__name__}: {e})") from None


def make_optimizer(params, name: str, lr: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, amsgrad=True)
    if name == "riemannian_adam":
        import geoopt

        return geoopt.optim.RiemannianAdam(params, lr=lr, amsgrad=True)
    raise ValueError(f"hypops train: optimizer must be 'adam' or 'riemannian_adam', got {name!r}")


class _Progress:
    """tqdm when it is installed and stderr is a terminal or forced; otherwise a line every few seconds."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar, self.enabled, self.last = None, enabled, 0.0
        self.total = total
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
        except ImportError:
            pass

    def update(self, step: int, terms: dict) -> None:
        if not self.enabled:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in terms.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif time.monotonic() - self.last > 5 or step == self.total:
            self.last = time.monotonic()
            print(f"train: step {step}/{self.total} {text}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, batch, *, clip: float | None = 8.0,
               step: int = 1) -> dict:
    """One optimisation step of ``train`` on ``batch`` = (anchor, positive, negative): forward (the model's
    ``forward``: DDP's gradient hooks need it), the NaN/Inf guard (``step`` names the step in its message),
    backward, gradient clipping to norm ``clip`` (None or 0: none), the optimiser's step. Returns the logged
    terms as floats. ``train`` calls exactly this once per step, and benchmarks/bench_train_step.py times
    it, so the benchmark measures the loop's own step."""
    anchor, positive, negative = batch
    opt.zero_grad(set_to_none=True)
    parts = net(anchor, positive, negative)
    # one read-back for all the logged terms (each float() would be its own device sync on a GPU)
    values = dict(zip(LOGGED, torch.stack([parts[k].detach().double() for k in LOGGED]).tolist()))
    for k, v in values.items():
        if not math.isfinite(v):
            raise TrainingDiverged(f"hypops train: step {step}: loss term {k!r} is {v} "
                                   f"(terms: {values}); lower the learning rate or check the data")
    parts["loss"].backward()
    if clip:
        # A DDP wrapper's parameters are the wrapped model's, so this clips the model's gradients.
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()
    return values


def train(model: torch.nn.Module, sample: Callable, *, out, steps: int, batch_size: int, seed: int, lr: float,
          optimizer: str = "adam", clip: float | None = 8.0, warmup: int = WARMUP_STEPS, checkpoint_every: int = 100,
          log_every: int = 1, resume: bool = False, progress: bool = True, config: dict | None = None) -> dict:
    """Trains ``model`` for ``steps`` steps (counted from the start of training) and returns the last logged
    terms. ``out``: the run directory (``model.pt``, ``log.jsonl``). ``config``: plain values stored in the
    checkpoint (what ``hypops segment`` needs to rebuild the model). In a torchrun job each process draws its
    own batch (the data generator is seeded with ``seed`` and the rank) and DistributedDataParallel averages
    the gradients; only rank 0 writes files. ``warmup``: the learning rate rises linearly from lr / warmup to lr
    over the first ``warmup`` steps (0: lr from the start; see ``WARMUP_STEPS``); it depends on the step
    number alone, so a resumed run follows the same schedule."""
    if steps < 0 or batch_size < 1 or checkpoint_every < 1 or log_every < 1 or warmup < 0:
        raise ValueError("hypops train: steps and warmup must be >= 0, batch_size, checkpoint_every and log_every "
                         ">= 1")
    rank, world = _rank_world()
    out = Path(out)
    ckpt_path, log_path = out / "model.pt", out / "log.jsonl"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed + rank)
    data_gen = torch.Generator().manual_seed(seed * 1000003 + rank)
    opt = make_optimizer(model.parameters(), optimizer, lr)
    step = 0
    if resume:
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rngs = state["rng"][rank] if world > 1 else state["rng"][0]
        torch.set_rng_state(rngs["torch"])
        data_gen.set_state(rngs["data"])
        if rank == 0 and log_path.exists():  # drop what was logged after the checkpoint: it is redone
            lines = [ln for ln in log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            log_path.write_text("".join(ln + "\n" for ln in lines))
    elif rank == 0 and log_path.exists():
        log_path.unlink()
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    def checkpoint():
        rng = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
        rngs = [rng]
        if world > 1:
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, rng)
        if rank == 0:
            save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                        "rng": rngs, "config": dict(config or {})})

    bar = _Progress(steps, step, progress and rank == 0)
    terms: dict = {}
    t0 = time.perf_counter()
    try:
        log = open(log_path, "a") if rank == 0 else None
        while step < steps:
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
            values = train_step(net, opt, sample(batch_size, data_gen), clip=clip, step=step + 1)
            step += 1
            terms = values
            if log is not None and (step % log_every == 0 or step == steps):
                log.write(json.dumps({"step": step, **values, "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
                log.flush()
            bar.update(step, values)
            if step % checkpoint_every == 0 or step == steps:
                checkpoint()
        if step == 0:  # steps=0: still leave a model.pt (the initial weights) behind
            checkpoint()
    finally:
        bar.close()
        if rank == 0 and log is not None:
            log.close()
    return terms
