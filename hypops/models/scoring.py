"""Scoring a segmentation against ground truth, and counting instances per cluster.

Everything goes through one confusion matrix (a single ``bincount``): Dice_ij = 2 C_ij / (|P_i| + |G_j|)
and IoU_ij = C_ij / (|P_i| + |G_j| - C_ij) for predicted cluster i and true label j.

Hungarian scores follow the published convention (Hsu et al. 2021, ``segment_and_score.py``): clusters
are matched one-to-one to labels by maximising the summed Dice, and the score is the mean over the
min(#clusters, #labels) matched pairs, background included as a class. With more clusters than labels
the spare clusters are simply dropped, so over-clustering is never penalised and usually helps (each
label gets to pick its best fragment). With fewer clusters than labels, the unmatched labels are left out
of the mean too. Report the cluster and label counts next to these numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

__all__ = [
    "INSTANCE_COLUMNS",
    "confusion_matrix",
    "connected_components",
    "dice_iou_matrices",
    "hungarian_scores",
    "instance_columns",
    "instances_table",
]

INSTANCE_COLUMNS = ("cluster", "instance", "voxels", "centroid_z", "centroid_y", "centroid_x")


def _labels(name: str, x, fn: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype == torch.bool:
        t = t.long()
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{fn}: {name} must hold integer labels, got {t.dtype}")
    t = t.reshape(-1).long().cpu()
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{fn}: {name} must hold non-negative labels, found {int(t.min())}")
    return t


def confusion_matrix(pred, truth, n_pred: int | None = None, n_truth: int | None = None) -> torch.Tensor:
    """C[i, j] = number of voxels with pred == i and truth == j, as int64 [n_pred, n_truth].

    pred and truth are integer arrays/tensors of one shape (any dims). n_pred / n_truth default to
    max + 1; a label at or above an explicit count is an error.
    """
    fn = "confusion_matrix"
    if tuple(np.shape(pred)) != tuple(np.shape(truth)):
        raise ValueError(
            f"{fn}: pred has shape {tuple(np.shape(pred))} but truth has {tuple(np.shape(truth))}"
        )
    p = _labels("pred", pred, fn)
    t = _labels("truth", truth, fn)
    counts = {}
    for name, v, n in (("n_pred", p, n_pred), ("n_truth", t, n_truth)):
        top = int(v.max()) + 1 if v.numel() else 0
        if n is None:
            n = top
        elif not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{fn}: {name} must be a non-negative int, got {n!r}")
        elif top > n:
            raise ValueError(f"{fn}: {name}={n} but the labels go up to {top - 1}")
        counts[name] = int(n)
    npred, ntruth = counts["n_pred"], counts["n_truth"]
    flat = torch.bincount(p * ntruth + t, minlength=npred * ntruth)
    return flat.reshape(npred, ntruth)


def dice_iou_matrices(conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU for every (cluster, label) pair of a confusion matrix, float64. A pair where both
    sets are empty scores 0 (it never matters: empty rows/columns are dropped before matching)."""
    c = conf.to(torch.float64)
    p = c.sum(1, keepdim=True)
    g = c.sum(0, keepdim=True)
    tot = p + g
    dice = torch.where(tot > 0, 2 * c / tot.clamp_min(1), torch.zeros_like(c))
    union = tot - c
    iou = torch.where(union > 0, c / union.clamp_min(1), torch.zeros_like(c))
    return dice, iou


def hungarian_scores(pred, truth) -> dict:
    """Hungarian-matched Dice and IoU of a clustering against ground-truth labels.

    Only the cluster ids and labels that occur are used (as in the published code, which enumerated the
    values present). The matching maximises the summed Dice; IoU is read off the same pairs (IoU is a
    monotone function of Dice per pair, but a matching on summed IoU could differ).

    Returns a dict: ``dice`` and ``iou`` (means over the matched pairs), ``per_class_dice`` and
    ``per_class_iou`` ({label: score} for matched labels), ``matching`` ({label: cluster}),
    ``unmatched_labels``, ``unmatched_clusters``, ``n_clusters``, ``n_labels``.
    """
    conf = confusion_matrix(pred, truth)
    if conf.numel() == 0:
        raise ValueError("hungarian_scores: pred and truth are empty")
    rows = torch.nonzero(conf.sum(1) > 0).flatten()
    cols = torch.nonzero(conf.sum(0) > 0).flatten()
    dice, iou = dice_iou_matrices(conf[rows][:, cols])
    ri, ci = linear_sum_assignment(dice.numpy(), maximize=True)
    matching = {int(cols[j]): int(rows[i]) for i, j in zip(ri, ci)}
    per_dice = {int(cols[j]): float(dice[i, j]) for i, j in zip(ri, ci)}
    per_iou = {int(cols[j]): float(iou[i, j]) for i, j in zip(ri, ci)}
    return {
        "dice": float(np.mean(list(per_dice.values()))),
        "iou": float(np.mean(list(per_iou.values()))),
        "per_class_dice": dict(sorted(per_dice.items())),
        "per_class_iou": dict(sorted(per_iou.items())),
        "matching": dict(sorted(matching.items())),
        "unmatched_labels": sorted(set(cols.tolist()) - set(matching)),
        "unmatched_clusters": sorted(set(rows.tolist()) - set(matching.values())),
        "n_clusters": len(rows),
        "n_labels": len(cols),
    }


def _structure(connectivity: int):
    if connectivity not in (1, 2, 3):
        raise ValueError(f"connectivity must be 1 (faces), 2 (+edges) or 3 (+corners), got {connectivity!r}")
    return ndimage.generate_binary_structure(3, connectivity)


def _volume(labels, fn: str) -> np.ndarray:
    a = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if a.ndim != 3:
        raise ValueError(f"{fn}: labels must be a 3-D label volume (z, y, x), got shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{fn}: labels must hold integer cluster ids, got {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{fn}: labels must be non-negative, found {a.min()}")
    return a


def _n_clusters(a: np.ndarray, k, fn: str) -> int:
    top = int(a.max()) + 1 if a.size else 0
    if k is None:
        return top
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"{fn}: k must be a non-negative int, got {k!r}")
    if top > k:
        raise ValueError(f"{fn}: k={k} but the labels go up to {top - 1}")
    return int(k)


def connected_components(labels, k: int | None = None, connectivity: int = 1):
    """Connected components of every cluster of a 3-D label volume.

    Returns (components, counts): ``components`` int64 of the volume's shape, holding in each voxel the
    1-based instance number of its component *within its own cluster*; ``counts[c]`` the number of
    instances of cluster c (length k, default max label + 1). connectivity 1 joins voxels sharing a face
    (6-neighbourhood), 2 also edges (18), 3 also corners (26).
    """
    fn = "connected_components"
    a = _volume(labels, fn)
    k = _n_clusters(a, k, fn)
    struct = _structure(connectivity)
    comps = np.zeros(a.shape, dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    for cl in range(k):  # one pass per cluster; the voxel work happens inside ndimage.label
        lab, n = ndimage.label(a == cl, structure=struct)
        comps += lab
        counts[cl] = n
    return torch.from_numpy(comps), torch.from_numpy(counts)


def _component_sums(lab: np.ndarray, n: int):
    """Sizes [n] and coordinate sums [3, n] (z, y, x) of the components 1..n of a component map (0 = none).
    Accumulated over groups of whole z-planes: coordinate arrays for the whole volume would take 24 bytes a
    voxel (3 GiB for a 512³ tomogram), a group's take a few MiB."""
    Z, Y, X = lab.shape
    per = max(1, (1 << 20) // max(1, Y * X))  # planes per group: about a million voxels
    yy = np.repeat(np.arange(Y, dtype=np.float64), X)
    xx = np.tile(np.arange(X, dtype=np.float64), Y)
    size = np.zeros(n + 1, dtype=np.int64)
    sums = np.zeros((3, n + 1))
    for z0 in range(0, Z, per):
        g = lab[z0:z0 + per].reshape(-1)
        planes = g.size // (Y * X)
        cnt = np.bincount(g, minlength=n + 1)
        size += cnt
        zz = np.repeat(np.arange(z0, z0 + planes, dtype=np.float64), Y * X)
        sums[0] += np.bincount(g, weights=zz, minlength=n + 1)
        sums[1] += np.bincount(g, weights=np.tile(yy, planes), minlength=n + 1)
        sums[2] += np.bincount(g, weights=np.tile(xx, planes), minlength=n + 1)
    return size[1:], sums[:, 1:]


def instance_columns(labels, k: int | None = None, connectivity: int = 1, min_voxels: int = 1) -> dict:
    """``instances_table`` as numpy columns (one array per ``INSTANCE_COLUMNS`` entry), without a Python object
    per instance: a noisy tomogram segmentation has millions of instances."""
    fn = "instances_table"
    if not isinstance(min_voxels, (int, np.integer)) or min_voxels < 1:
        raise ValueError(f"{fn}: min_voxels must be a positive int, got {min_voxels!r}")
    a = _volume(labels, fn)
    k = _n_clusters(a, k, fn)
    struct = _structure(connectivity)
    parts = []
    lab = np.empty(a.shape, dtype=np.int32)  # reused for every cluster (a tomogram's map is 4 bytes a voxel)
    for cl in range(k):
        n = ndimage.label(a == cl, structure=struct, output=lab)
        size, sums = _component_sums(lab, n)
        keep = np.flatnonzero(size >= min_voxels)  # dropped instances keep their numbers (gaps)
        parts.append((np.full(len(keep), cl, dtype=np.int64), keep + 1, size[keep], sums[:, keep] / size[keep]))
    cat = (lambda i: np.concatenate([p[i] for p in parts])) if parts else (lambda i: np.zeros(0, np.int64))
    cent = np.concatenate([p[3] for p in parts], axis=1) if parts else np.zeros((3, 0))
    return {"cluster": cat(0), "instance": cat(1), "voxels": cat(2), "centroid_z": cent[0], "centroid_y": cent[1],
            "centroid_x": cent[2]}


def instances_table(labels, k: int | None = None, connectivity: int = 1, min_voxels: int = 1) -> list[dict]:
    """One row per connected instance of every cluster, ready for ``csv.DictWriter(f, INSTANCE_COLUMNS)``.

    Columns: cluster, instance (1-based within the cluster, numbered in scan order), voxels, centroid_z,
    centroid_y, centroid_x (mean voxel index along each array axis, the label volume being (z, y, x)).
    Instances smaller than ``min_voxels`` are dropped; the numbering keeps its gaps so that
    ``instance`` still indexes ``connected_components``' output. (``instance_columns``: the same as arrays.)
    """
    cols = instance_columns(labels, k, connectivity, min_voxels)
    ints = [cols[c].tolist() for c in INSTANCE_COLUMNS[:3]]
    floats = [cols[c].tolist() for c in INSTANCE_COLUMNS[3:]]
    return [dict(zip(INSTANCE_COLUMNS, row)) for row in zip(*ints, *floats)]
