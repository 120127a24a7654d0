"""Dice of a trained dense checkpoint on synthetic volumes for several latent-smoothing sigmas: how the
default of ``hypops segment --smooth`` / ``hypops demo --smooth`` (``hypops.pipeline.DEFAULT_SMOOTH``) was
chosen, on validation volumes: seeds 80-87 (``toy_splits``' validation split), neither the demo's training
(0-7) nor its test (8-27) volumes.

    .venv/bin/python scripts/sweep_smooth.py hypops-demo/model.pt --seeds 80-87 --sigmas 0,1,1.5,2,3

Each volume is embedded once; for each sigma the latents are smoothed (``segment.smooth_latents``),
clustered at 2 / 4 / 6 clusters exactly as the demo does, and scored against levels 1 / 2 / 3 (Hungarian-
matched Dice, the demo's convention). Prints one Markdown row per sigma: the mean Dice over the volumes.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hypops.data.toy import make_toy_volume
from hypops.models import segment as seg
from hypops.models.scoring import hungarian_scores
from hypops.pipeline import LEVEL_CLUSTERS, load_model


def seed_list(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--seeds", default="80-87", help="synthetic volume seeds, e.g. 80-87 or 80,83 (default 80-87)")
    ap.add_argument("--sigmas", default="0,1,1.5,2,3", help="comma-separated sigmas in voxels")
    ap.add_argument("--size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="k-means seed (the demo's default)")
    args = ap.parse_args(argv)
    model, _ = load_model(args.checkpoint)
    if not hasattr(model, "receptive_field"):
        ap.error("the checkpoint is not a dense model (hypops demo / hypops train --preset dense)")
    sigmas = [float(s) for s in args.sigmas.split(",")]
    c = model.config.c
    dice = {s: {lv: [] for lv in LEVEL_CLUSTERS} for s in sigmas}
    for vs in seed_list(args.seeds):
        tv = make_toy_volume(vs, size=args.size)
        latents = seg.embed_volume(model, tv.volume)
        for s in sigmas:
            labels = seg.cluster_latents(seg.smooth_latents(latents, s, c=c), LEVEL_CLUSTERS.values(), c=c,
                                         seed=args.seed)
            for lv, k in LEVEL_CLUSTERS.items():
                dice[s][lv].append(hungarian_scores(labels[k], tv.labels[lv])["dice"])
    print("| sigma | Dice level 1 | level 2 | level 3 | mean |\n|---|---|---|---|---|")
    for s in sigmas:
        m = [float(np.mean(dice[s][lv])) for lv in LEVEL_CLUSTERS]
        print(f"| {s:g} | " + " | ".join(f"{v:.3f}" for v in m) + f" | {np.mean(m):.3f} |")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
