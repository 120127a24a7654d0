"""hypops.models: clustering and scoring for segmentation (more modules join here)."""

from .kmeans import PoincareKMeans, frechet_mean
from .scoring import (
    confusion_matrix,
    connected_components,
    dice_iou_matrices,
    hungarian_scores,
    instances_table,
)

__all__ = [
    "PoincareKMeans",
    "confusion_matrix",
    "connected_components",
    "dice_iou_matrices",
    "frechet_mean",
    "hungarian_scores",
    "instances_table",
]
