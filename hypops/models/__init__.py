"""hypops.models: clustering and scoring for segmentation (more modules join here)."""

from .scoring import (
    confusion_matrix,
    connected_components,
    dice_iou_matrices,
    hungarian_scores,
    instances_table,
)

__all__ = [
    "confusion_matrix",
    "connected_components",
    "dice_iou_matrices",
    "hungarian_scores",
    "instances_table",
]
