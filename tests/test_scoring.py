"""hypops.models.scoring: confusion matrix, Hungarian-matched Dice/IoU, connected components."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from hypops.models.scoring import (
    INSTANCE_COLUMNS,
    confusion_matrix,
    connected_components,
    dice_iou_matrices,
    hungarian_scores,
    instances_table,
)


def test_confusion_matrix_matches_naive_loop():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 5, size=(7, 6, 5))
    truth = rng.integers(0, 3, size=(7, 6, 5))
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(truth))
    naive = np.zeros((5, 3), dtype=np.int64)
    for p, t in zip(pred.ravel(), truth.ravel()):
        naive[p, t] += 1
    assert conf.dtype == torch.int64
    np.testing.assert_array_equal(conf.numpy(), naive)


def test_confusion_matrix_explicit_sizes_and_errors():
    conf = confusion_matrix(np.array([0, 1]), np.array([1, 1]), n_pred=4, n_truth=3)
    assert conf.shape == (4, 3)
    assert conf.tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="n_pred"):
        confusion_matrix(np.array([0, 5]), np.array([0, 0]), n_pred=3)
    with pytest.raises(ValueError, match="pred has shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(TypeError, match="truth"):
        confusion_matrix(np.zeros(3, int), np.zeros(3))
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(np.array([-1, 0]), np.array([0, 0]))


def test_dice_iou_hand_computed():
    # cluster 0 = {0,1,2}, cluster 1 = {3}; label 0 = {0,1}, label 1 = {2,3}
    pred = np.array([0, 0, 0, 1])
    truth = np.array([0, 0, 1, 1])
    dice, iou = dice_iou_matrices(confusion_matrix(pred, truth))
    np.testing.assert_allclose(dice.numpy(), [[4 / 5, 2 / 5], [0, 2 / 3]])
    np.testing.assert_allclose(iou.numpy(), [[2 / 3, 1 / 4], [0, 1 / 2]])
    s = hungarian_scores(pred, truth)
    assert s["matching"] == {0: 0, 1: 1}
    assert s["dice"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert s["iou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_hungarian_is_permutation_invariant():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, size=500)
    pred = truth.copy()
    flip = rng.random(500) < 0.1
    pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
    perm = np.array([2, 0, 3, 1])
    a = hungarian_scores(pred, truth)
    b = hungarian_scores(perm[pred], truth)
    assert a["dice"] == pytest.approx(b["dice"])
    assert a["iou"] == pytest.approx(b["iou"])
    assert b["matching"] == {int(j): int(perm[j]) for j in range(4)}
    # A relabelled perfect segmentation scores 1.
    perfect = hungarian_scores(perm[truth], truth)
    assert perfect["dice"] == 1.0 and perfect["iou"] == 1.0


def test_hungarian_more_clusters_than_labels():
    # Label 0 = 6 voxels, label 1 = 4 voxels; the prediction splits label 0 into clusters 0 (4) and 2 (2).
    truth = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 0, 2, 2, 1, 1, 1, 1])
    s = hungarian_scores(pred, truth)
    assert s["n_clusters"] == 3 and s["n_labels"] == 2
    assert s["matching"] == {0: 0, 1: 1}
    assert s["unmatched_clusters"] == [2] and s["unmatched_labels"] == []
    # Mean over min(3, 2) = 2 pairs: Dice(0,0) = 2*4/(4+6) = 0.8, Dice(1,1) = 1.
    assert s["dice"] == pytest.approx((0.8 + 1.0) / 2)
    assert s["iou"] == pytest.approx((4 / 6 + 1.0) / 2)
    # The convention favours over-clustering: the two-cluster answer that puts the 2 stray voxels with
    # label 1 scores lower than the three-cluster one.
    merged = hungarian_scores(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), truth)
    assert merged["dice"] < s["dice"]


def test_hungarian_fewer_clusters_than_labels():
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 0, 1, 1])
    s = hungarian_scores(pred, truth)
    assert s["n_clusters"] == 2 and s["n_labels"] == 3
    assert s["matching"][2] == 1
    assert len(s["unmatched_labels"]) == 1
    # Label 2 matched perfectly (1.0); one of labels 0/1 matched to cluster 0: Dice 2*2/(4+2) = 2/3.
    assert s["dice"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_hungarian_uses_only_present_ids():
    # Cluster ids 0 and 7 (1..6 unused) must behave like 0 and 1.
    truth = np.array([0, 0, 1, 1])
    a = hungarian_scores(np.array([0, 0, 7, 7]), truth)
    assert a["n_clusters"] == 2 and a["dice"] == 1.0 and a["matching"] == {0: 0, 1: 7}


def _two_blobs():
    v = np.zeros((6, 7, 8), dtype=np.int64)
    v[0:2, 0:2, 0:2] = 1  # 8 voxels, centroid (0.5, 0.5, 0.5)
    v[4:6, 4:7, 5:8] = 1  # 18 voxels, centroid (4.5, 5, 6)
    v[3, 0, 7] = 2  # a single voxel
    v[5, 0, 0] = 2  # touches nothing of cluster 2
    return v


def test_connected_components_hand_made():
    v = _two_blobs()
    comps, counts = connected_components(torch.from_numpy(v))
    assert counts.tolist() == [1, 2, 2]
    assert comps.shape == v.shape
    # Each cluster's instances are numbered from 1 within the cluster.
    assert set(comps[torch.from_numpy(v == 1)].tolist()) == {1, 2}
    assert set(comps[torch.from_numpy(v == 0)].tolist()) == {1}


def test_connectivity_changes_the_count():
    v = np.zeros((3, 3, 3), dtype=np.int64)
    v[0, 0, 0] = 1
    v[1, 1, 1] = 1  # corner neighbours only
    v[2, 1, 1] = 1  # face neighbour of (1,1,1)
    assert connected_components(v, connectivity=1)[1].tolist() == [1, 2]
    assert connected_components(v, connectivity=2)[1].tolist() == [1, 2]
    assert connected_components(v, connectivity=3)[1].tolist() == [1, 1]
    with pytest.raises(ValueError, match="connectivity"):
        connected_components(v, connectivity=4)


def test_instances_table_sizes_centroids_and_csv():
    v = _two_blobs()
    rows = instances_table(v, k=4)
    by = {(r["cluster"], r["instance"]): r for r in rows}
    assert set(by) == {(0, 1), (1, 1), (1, 2), (2, 1), (2, 2)}  # cluster 3 is empty
    assert by[(1, 1)]["voxels"] == 8
    assert (by[(1, 1)]["centroid_z"], by[(1, 1)]["centroid_y"], by[(1, 1)]["centroid_x"]) == (0.5, 0.5, 0.5)
    assert by[(1, 2)]["voxels"] == 18
    assert (by[(1, 2)]["centroid_z"], by[(1, 2)]["centroid_y"], by[(1, 2)]["centroid_x"]) == (4.5, 5.0, 6.0)
    assert sorted(by[(2, i)]["voxels"] for i in (1, 2)) == [1, 1]
    assert by[(0, 1)]["voxels"] == v.size - 8 - 18 - 2
    # Sizes and centroids agree with the component map.
    comps, _ = connected_components(v)
    for r in rows:
        sel = (v == r["cluster"]) & (comps.numpy() == r["instance"])
        assert sel.sum() == r["voxels"]
        np.testing.assert_allclose(
            np.argwhere(sel).mean(0), [r["centroid_z"], r["centroid_y"], r["centroid_x"]]
        )
    buf = io.StringIO()
    w = csv.DictWriter(buf, INSTANCE_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    assert buf.getvalue().splitlines()[0] == "cluster,instance,voxels,centroid_z,centroid_y,centroid_x"
    # min_voxels drops the single-voxel instances.
    assert {(r["cluster"], r["instance"]) for r in instances_table(v, min_voxels=2)} == {
        (0, 1),
        (1, 1),
        (1, 2),
    }


def test_instance_errors_name_the_argument():
    with pytest.raises(ValueError, match="labels must be a 3-D"):
        instances_table(np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="labels"):
        connected_components(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="k=1"):
        instances_table(np.ones((2, 2, 2), dtype=np.int64), k=1)
    with pytest.raises(ValueError, match="min_voxels"):
        instances_table(np.ones((2, 2, 2), dtype=np.int64), min_voxels=0)
