"""What the CLI runs: ``train`` (a model on the synthetic set or a volume file), ``segment`` (a volume with a
trained checkpoint) and ``demo`` (generate, train, segment, score, report). Each writes the files SPEC §5
names, so other tools can read them; the functions return what they wrote.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import io
from .data.toy import make_toy_volume, toy_splits
from .models import segment as seg
from .models.sampling import sample_triplets
from .models.scoring import hungarian_scores, instance_columns
from .models.train import init_distributed, load_checkpoint, train
from .models.vae import build_vae

# Published Dice on the synthetic set (SPEC §6; Hsu et al. 2021, Table 1)
PUBLISHED = {"level1": 0.952, "level2": 0.541, "level3": 0.216}
# The granularity that scores each synthetic level: its number of labels (bg+cell; +vesicle, mito; +2 small)
LEVEL_CLUSTERS = {1: 2, 2: 4, 3: 6}
# The demo's dense model: half the default encoder width, so that 300 steps fit the 5-minute CPU budget
# (measured: 0.56 s per step at batch 32 on 2 cores, against ~1.2 s for the default widths).
DEMO_MODEL = {"channels": (16, 32, 32), "decoder_channels": 16}
# Learning rates that train each preset in a few hundred CPU steps (the published 5e-7 needs ~122k steps)
DEFAULT_LR = {"dense": 2e-3, "paper": 5e-7, "paper_fixed": 1e-4}
# Gaussian smoothing of the latents before clustering (voxels; seg.smooth_slabs), chosen with
# scripts/sweep_smooth.py on validation volumes (seeds 80-87, toy_splits' validation split; never the demo's
# test volumes 8-27): see README "The demo"
DEFAULT_SMOOTH = 1.5


def sampler_options(side: int) -> dict:
    """The published triplet sizes (anchor 5..34, child 3..14 on 50³ volumes) scaled to the smallest volume
    side, so that small volumes (tests, quick runs) still fit an anchor and a disjoint negative."""
    scale = side / 50
    child_max = max(3, round(14 * scale))
    top = max(5, round(34 * scale))

    def extent(r):  # the sampler's crops are odd: 2 (r // 2) + 1 voxels
        return 2 * (r // 2) + 1

    while top > 5 and extent(top) + extent(child_max) > side:
        top -= 1
    return {"anchor_range": (5, top), "child_max": child_max}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_volumes(data: str, *, n_toy: int = 8, toy_size: int = 50) -> torch.Tensor:
    """[V, X, Y, Z] float32 training volumes: ``"toy"`` -> the first ``n_toy`` volumes of the synthetic train
    split; a file -> that volume (MRC or NIfTI), normalised."""
    if data == "toy":
        seeds = toy_splits(n_train=n_toy, n_val=0, n_test=0)["train"]
        return torch.stack([make_toy_volume(s, size=toy_size).volume for s in seeds])
    vol = io.read_volume(data)
    return torch.from_numpy(io.normalize(vol.data))[None]


def run_train(*, preset: str, data: str, steps: int, batch_size: int, seed: int, out, resume: bool = False,
              lr: float | None = None, n_toy: int = 8, checkpoint_every: int = 50, progress: bool = True,
              model_options: dict | None = None) -> dict:
    """Trains ``preset`` on ``data`` and writes ``out/model.pt`` and ``out/log.jsonl``; returns the last terms."""
    out = Path(out)
    init_distributed()  # under torchrun: join the process group, so train() wraps the model in DDP
    options = dict(model_options or {})
    if resume:  # rebuild exactly the model that was saved
        cfg = load_checkpoint(out / "model.pt")["config"]
        preset, options = cfg["preset"], cfg["model"]
    torch.manual_seed(seed)  # the model's initial weights
    model = build_vae(preset, **options)
    volumes = load_volumes(data, n_toy=n_toy)
    patch = 10

    def sample(b, gen):
        batch = sample_triplets(volumes, b, gen, patch_size=patch, **sampler_options(min(volumes.shape[1:])))
        return batch.anchor, batch.positive, batch.negative

    config = {"preset": preset, "model": _plain(dataclasses.asdict(model.config)), "data": data,
              "batch_size": batch_size, "seed": seed}
    return train(model, sample, out=out, steps=steps, batch_size=batch_size, seed=seed,
                 lr=lr if lr is not None else DEFAULT_LR.get(preset, 1e-4), checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, config=config)


def _plain(d):
    """A config dict with tuples as lists (torch.load(weights_only=True) accepts plain containers)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def load_model(checkpoint):
    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    model_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["model"].items()}
    model = build_vae(cfg["preset"], **model_cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg


def _segment_slabs(model, volume, *, tile, stride, progress):
    """The latent slabs of ``volume`` and the grid they cover: the dense model embeds every voxel in tiles;
    a patch model (the paper presets) encodes the 10³ patch at every ``stride``-th voxel."""
    dense = hasattr(model, "receptive_field")
    if dense:
        if stride not in (None, 1):
            raise ValueError(f"hypops segment: --stride {stride} applies to patch-encoder checkpoints (--preset "
                             "paper / paper_fixed); the dense model embeds every voxel in one pass, leave it out")
        report = (lambda i, n: _log(f"segment: tile {i}/{n}")) if progress else None
        return seg.dense_slabs(model, volume, tile=64 if tile is None else tile, progress=report), tuple(volume.shape)
    if tile is not None:
        raise ValueError("hypops segment: --tile applies to dense checkpoints; a patch-encoder checkpoint "
                         "(paper preset) is encoded patch by patch, use --stride to sample fewer voxels")
    if getattr(model, "hyperbolic", True) is False:
        raise ValueError("hypops segment: this checkpoint's latents are Euclidean (manifold='euclidean'); "
                         "segmentation clusters points of the Poincaré ball")
    stride = 1 if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"hypops segment: --stride must be a positive integer, got {stride!r}")
    report = (lambda i, n: _log(f"segment: plane {i}/{n} (stride {stride})")) if progress else None
    return seg.patch_slabs(model, volume, stride=stride, progress=report), seg.grid_shape(volume.shape, stride)


def run_segment(*, checkpoint, data, clusters, out, tile: int | None = None, stride: int | None = None,
                smooth: float = DEFAULT_SMOOTH, seed: int = 0, progress: bool = True) -> dict:
    """Segments the volume file ``data``: writes ``segmentation_k{K}.mrc`` (same shape, voxel size and origin
    as the input), ``latents.npy`` ([D, Z, Y, X] float32) and ``instances_k{K}.csv`` per cluster count.

    ``tile`` (dense checkpoints; default 64): tile side of the dense encoder pass. ``stride`` (patch-encoder
    checkpoints, the paper presets; default 1): encode every ``stride``-th voxel along each axis; the labels
    and latents of the other voxels are those of the nearest encoded voxel. ``smooth``: the latents are
    Gaussian-smoothed with this sigma in voxels (in the tangent space at the origin, ``seg.smooth_slabs``)
    before clustering, and ``latents.npy`` holds what was clustered; 0 turns it off. Streams: the volume is read and
    normalised tile by tile from its memory map and the latents go to ``latents.npy`` slab by slab
    (``seg.segment_slabs``), so a 512³ tomogram segments in bounded memory."""
    smooth = _check_smooth(smooth)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, cfg = load_model(checkpoint)
    vol = io.read_volume(data)
    volume = io.Normalized(vol.data)
    shape = tuple(volume.shape)
    t0 = time.perf_counter()
    slabs, grid = _segment_slabs(model, volume, tile=tile, stride=stride, progress=progress)
    slabs = seg.smooth_slabs(slabs, smooth / (stride or 1), c=model.config.c)  # sigma in grid steps
    written = {"latents": out / "latents.npy"}
    on_grid = written["latents"] if grid == shape else out / "latents_grid.tmp.npy"
    labels = seg.segment_slabs(slabs, grid, model.config.latent_dim, clusters, on_grid, c=model.config.c,
                               seed=seed)
    if on_grid != written["latents"]:
        seg.upsample_npy(on_grid, written["latents"], shape, stride)
        on_grid.unlink()
    for k in list(labels):
        lab = seg.upsample_nearest(labels.pop(k), shape, stride or 1)  # pop: each label volume freed once written
        written[f"segmentation_k{k}"] = io.write_mrc(out / f"segmentation_k{k}.mrc", lab, vol.voxel_size, vol.origin)
        path = out / f"instances_k{k}.csv"
        _write_instances(path, instance_columns(lab, k))
        written[f"instances_k{k}"] = path
        del lab
    written["seconds"] = time.perf_counter() - t0
    return written


def _check_smooth(smooth) -> float:
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not np.isfinite(smooth) or smooth < 0:
        raise ValueError(f"--smooth must be a finite number of voxels >= 0 (0: no smoothing), got {smooth!r}")
    return float(smooth)


def _write_instances(path, cols, chunk: int = 1 << 16) -> None:
    """Writes instance columns (``instance_columns``) as CSV, centroids to 1/1000 voxel. One format string
    per row over plain Python numbers: a speckled tomogram segmentation has millions of instances, and
    csv.DictWriter took ~3x as long."""
    names = ["cluster", "instance", "voxels", "centroid_z", "centroid_y", "centroid_x"]
    fmt = "%d,%d,%d,%.3f,%.3f,%.3f\n".__mod__
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        n = len(cols["cluster"])
        for i in range(0, n, chunk):  # chunks: the rows' text is never held whole
            f.write("".join(map(fmt, zip(*(cols[c][i:i + chunk].tolist() for c in names)))))


def _metrics_html(metrics) -> str:
    rows = "".join(
        f"<tr><th>{lv}</th><td>{metrics['dice'][lv]:.3f}</td><td>{metrics['iou'][lv]:.3f}</td>"
        f"<td>{PUBLISHED[lv]:.3f}</td></tr>" for lv in PUBLISHED)
    return ("<table><tr><th>level</th><th>Dice (ours)</th><th>IoU (ours)</th><th>Dice (published)</th></tr>"
            f"{rows}</table>")


def dice_table(metrics) -> str:
    """The Dice table printed by ``hypops demo`` (Markdown)."""
    lines = ["| level | clusters | Dice (hypops demo) | IoU | Dice (Hsu et al. 2021) |", "|---|---|---|---|---|"]
    for i, lv in enumerate(PUBLISHED, start=1):
        lines.append(f"| {i} | {LEVEL_CLUSTERS[i]} | {metrics['dice'][lv]:.3f} | {metrics['iou'][lv]:.3f} | "
                     f"{PUBLISHED[lv]:.3f} |")
    return "\n".join(lines)


def run_demo(*, out, steps: int = 300, batch_size: int = 32, n_train: int = 8, n_test: int = 20, size: int = 50,
             seed: int = 0, progress: bool = True, model_options: dict | None = None, lr: float | None = None,
             smooth: float = DEFAULT_SMOOTH) -> dict:
    """The main job (SPEC §5): generates the synthetic set, trains the dense model, segments held-out test
    volumes at levels 1-3 (latents smoothed with sigma ``smooth`` voxels first, as ``run_segment``), scores
    them against the truth (Hungarian-matched Dice/IoU) and writes
    ``model.pt``, ``log.jsonl``, ``metrics.json``, ``report.html``, ``segmentation.mrc`` (the first test
    volume at level 3) and PNG slices to ``out``."""
    t_start = time.perf_counter()
    smooth = _check_smooth(smooth)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = toy_splits(n_train=n_train, n_val=0, n_test=n_test)
    _log(f"demo: generating {n_train} training and {n_test} test volumes ({size}³)")
    volumes = torch.stack([make_toy_volume(s, size=size).volume for s in splits["train"]])
    test = [make_toy_volume(s, size=size) for s in splits["test"]]
    torch.manual_seed(seed)
    model = build_vae("dense", **dict(DEMO_MODEL if model_options is None else model_options))

    def sample(b, gen):
        batch = sample_triplets(volumes, b, gen, **sampler_options(size))
        return batch.anchor, batch.positive, batch.negative

    _log(f"demo: training the dense model for {steps} steps (batch {batch_size})")
    t0 = time.perf_counter()
    config = {"preset": "dense", "model": _plain(dataclasses.asdict(model.config)), "data": "toy",
              "batch_size": batch_size, "seed": seed}
    train(model, sample, out=out, steps=steps, batch_size=batch_size, seed=seed, lr=lr or DEFAULT_LR["dense"],
          checkpoint_every=max(1, steps), progress=progress, config=config)
    train_s = time.perf_counter() - t0

    _log(f"demo: segmenting {n_test} test volumes at levels 1-3")
    t0 = time.perf_counter()
    model.eval()
    per_volume, first = [], None
    for tv in test:
        latents = seg.smooth_latents(seg.embed_volume(model, tv.volume), smooth, c=model.config.c)
        labels = seg.cluster_latents(latents, LEVEL_CLUSTERS.values(), c=model.config.c, seed=seed)
        scores = {f"level{lv}": hungarian_scores(labels[k], tv.labels[lv]) for lv, k in LEVEL_CLUSTERS.items()}
        per_volume.append(scores)
        if first is None:
            first = (tv, latents, labels)
    segment_s = time.perf_counter() - t0
    metrics = {
        "dice": {lv: float(np.mean([s[lv]["dice"] for s in per_volume])) for lv in PUBLISHED},
        "iou": {lv: float(np.mean([s[lv]["iou"] for s in per_volume])) for lv in PUBLISHED},
        "published": dict(PUBLISHED),
        "per_volume_dice": [{lv: s[lv]["dice"] for lv in PUBLISHED} for s in per_volume],
        "settings": {"steps": steps, "batch_size": batch_size, "n_train": n_train, "n_test": n_test, "size": size,
                     "seed": seed, "threads": torch.get_num_threads(), "model": "dense", "smooth": smooth},
        "seconds_train": round(train_s, 1),
        "seconds_segment": round(segment_s, 1),
    }
    tv, latents, labels = first
    segs = {f"level{lv}": seg.order_by_radius(labels[k], latents).numpy() for lv, k in LEVEL_CLUSTERS.items()}
    truths = {f"level{lv}": tv.labels[lv].numpy() for lv in LEVEL_CLUSTERS}
    io.write_mrc(out / "segmentation.mrc", segs["level3"].astype(np.int16))
    from .viz.report import save_pngs, write_report

    pngs = save_pngs(out, tv.volume.numpy(), segs, truths)
    write_report(out / "report.html", title="hypops demo: hierarchical segmentation of a synthetic volume",
                 volume=tv.volume.numpy(), segmentations=segs, latents=latents.numpy(), truths=truths,
                 metrics_table=_metrics_html(metrics),
                 notes=f"dense model, {steps} steps, batch {batch_size}, {n_train} training volumes; scores are "
                       f"the mean over {n_test} held-out test volumes.")
    metrics["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    metrics["files"] = [str(p) for p in [out / "model.pt", out / "metrics.json", out / "report.html",
                                         out / "segmentation.mrc", *pngs]]
    return metrics
