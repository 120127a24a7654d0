"""The ``hypops`` command line: demo, train, segment, bench, info (SPEC §5). ``hypops COMMAND --help``
documents each; the files each command writes are part of the contract (other tools read them)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _cmd_info(args) -> int:
    import hypops
    from hypops._info import format_info

    d = hypops.info()
    print(json.dumps(d, indent=2) if args.json else format_info(d))
    return 0


# hypops.pipeline.DEFAULT_SMOOTH, spelled out so that building the parser imports nothing heavy
# (tests/test_cli.py checks the two agree)
SMOOTH_HELP = "1.5"


def _smooth(args) -> dict:
    return {} if args.smooth is None else {"smooth": args.smooth}


def _threads(args):
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _cmd_demo(args) -> int:
    from hypops.pipeline import dice_table, run_demo

    _threads(args)
    m = run_demo(out=args.out, steps=args.steps, batch_size=args.batch_size, n_train=args.train_volumes,
                 n_test=args.test_volumes, size=args.size, seed=args.seed, progress=not args.no_progress,
                 **_smooth(args))
    print(dice_table(m))
    print(f"\n{m['seconds']:.0f} s (training {m['seconds_train']:.0f} s, segmentation {m['seconds_segment']:.0f} s); "
          f"wrote {', '.join(m['files'])}")
    return 0


def _cmd_train(args) -> int:
    from hypops.pipeline import run_train

    _threads(args)
    terms = run_train(preset=args.preset, data=args.data, steps=args.steps, batch_size=args.batch_size,
                      seed=args.seed, out=args.out, resume=args.resume, lr=args.lr, n_toy=args.toy_volumes,
                      checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    print(json.dumps({"out": str(args.out), **terms}))
    return 0


def _cmd_segment(args) -> int:
    from hypops.pipeline import run_segment

    _threads(args)
    try:
        clusters = [int(k) for k in args.clusters.split(",") if k.strip()]
    except ValueError:
        print(f"hypops segment: --clusters must be comma-separated integers, got {args.clusters!r}", file=sys.stderr)
        return 2
    written = run_segment(checkpoint=args.checkpoint, data=args.data, clusters=clusters, out=args.out,
                          tile=args.tile, stride=args.stride, seed=args.seed, progress=not args.no_progress,
                          **_smooth(args))
    print(json.dumps({k: str(v) for k, v in written.items()}))
    return 0


BENCHMARKS = {
    "pointwise": "bench_pointwise.py",
    "bank": "bench_gyroplane_bank.py",
    "conv3d": "bench_gyroplane_conv3d.py",
    "train": "bench_train_step.py",
    "kmeans": "bench_kmeans.py",
    "wrapped_normal": "bench_wrapped_normal.py",
    "segment": "bench_segment.py",
}


def _cmd_bench(args) -> int:
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    if not root.is_dir():
        print("hypops bench: the benchmark scripts live in the source tree (benchmarks/), which this "
              "installation does not have; clone the repository to run them", file=sys.stderr)
        return 2
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    rc = 0
    for name in names:
        cmd = [sys.executable, str(root / BENCHMARKS[name])] + (["--quick"] if args.quick else []) + args.extra
        print(f"$ {' '.join(cmd)}", flush=True)
        rc = max(rc, subprocess.call(cmd))
    return rc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hypops", description="Fused Poincaré-ball ops for PyTorch, and "
                                     "unsupervised hierarchical 3D segmentation built on them.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate the synthetic set, train, segment held-out volumes, print Dice "
                       "next to the published numbers, write a report", description=(
                           "Writes OUT/model.pt, log.jsonl, metrics.json, report.html, segmentation.mrc and "
                           "slices_level{1,2,3}.png. No download, no GPU."))
    p.add_argument("--out", default="hypops-demo", help="output directory (default: hypops-demo)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="triplets per step (default 32)")
    p.add_argument("--train-volumes", type=int, default=8, help="synthetic training volumes (default 8)")
    p.add_argument("--test-volumes", type=int, default=20,
                   help="held-out volumes scored (default 20, as the paper's test split)")
    p.add_argument("--size", type=int, default=50, help="volume side in voxels (default 50, the published size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smooth", type=float, default=None, help="Gaussian sigma (voxels) applied to the latents "
                   f"before clustering, as in segment (default {SMOOTH_HELP}; 0: none)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(fn=_cmd_demo)

    p = sub.add_parser("train", help="train a model; writes OUT/model.pt and OUT/log.jsonl", description=(
        "Writes OUT/model.pt (the latest checkpoint: enough to resume and to segment) and OUT/log.jsonl (one "
        "JSON object per step: step, loss, recon, kl, triplet, seconds). --steps counts from the start of "
        "training, so a resumed run stops where an uninterrupted one would. Multi-process: torchrun "
        "--nproc-per-node N $(which hypops) train ... (gloo on CPU, nccl on GPU)."))
    p.add_argument("--preset", choices=("dense", "paper", "paper_fixed"), default="dense",
                   help="dense (ours, default), paper (the published model with its quirks), paper_fixed")
    p.add_argument("--data", default="toy", help="'toy' (the synthetic train split) or an MRC/NIfTI file")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/model.pt")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per preset)")
    p.add_argument("--toy-volumes", type=int, default=8, help="synthetic training volumes with --data toy")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("segment", help="segment a volume with a trained checkpoint", description=(
        "Writes OUT/segmentation_k{K}.mrc (labels, same shape, voxel size and origin as the input; clusters "
        "numbered by mean latent radius), OUT/latents.npy ([D, Z, Y, X]) and OUT/instances_k{K}.csv "
        "(connected components per cluster: sizes and centroids). A dense checkpoint embeds every voxel in "
        "overlapping tiles (--tile); a paper-preset checkpoint encodes the 10³ patch around each voxel (the "
        "voxel at patch index 5 on each axis, the volume edge-padded), in batches; with --stride S only every "
        "S-th voxel along each axis is encoded and the other voxels take the labels and latents of the "
        "nearest encoded one. The volume is read, normalised and segmented in slabs, so tomograms larger "
        "than memory work."))
    p.add_argument("--checkpoint", required=True, help="DIR/model.pt written by hypops train or demo")
    p.add_argument("--data", required=True, help="an MRC or NIfTI volume")
    p.add_argument("--clusters", default="2,4,6", help="comma-separated cluster counts (default 2,4,6)")
    p.add_argument("--out", required=True)
    p.add_argument("--tile", type=int, default=None, help="dense checkpoints: tile side of the encoder pass "
                   "(default 64; memory grows with its cube, time barely changes); an error for paper presets")
    p.add_argument("--stride", type=int, default=None, help="paper-preset checkpoints: encode every S-th voxel "
                   "along each axis, labels upsampled by nearest neighbour (default 1: every voxel, ~1e8 "
                   "multiply-adds each; 2 is 8x faster, 4 is 64x); above 1 an error for dense checkpoints, "
                   "which embed every voxel in one pass")
    p.add_argument("--smooth", type=float, default=None, help="Gaussian sigma in voxels: the latents are "
                   "smoothed (in the tangent space at the origin) before clustering, which removes single-voxel "
                   f"speckle; latents.npy holds the smoothed latents (default {SMOOTH_HELP}; 0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_segment)

    p = sub.add_parser("bench", help="run the benchmark scripts (benchmarks/*.py in the source tree)")
    p.add_argument("which", nargs="?", default="all", choices=("all", *BENCHMARKS))
    p.add_argument("--quick", action="store_true", help="toy sizes (a smoke run)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="further arguments for the script")
    p.set_defaults(fn=_cmd_bench)

    p = sub.add_parser("info", help="version, build (compiler, OpenMP, CUDA), torch/triton, threads, backends")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_info)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except Exception as e:
        # A user's error (a missing or unreadable file, a bad argument, a diverged run: messages that name
        # what is wrong) is one line; anything else is a bug and keeps its traceback.
        if isinstance(e, (FileNotFoundError, ValueError)) or str(e).startswith("hypops"):
            print(str(e) if str(e).startswith("hypops") else f"hypops {args.command}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
