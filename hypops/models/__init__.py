"""hypops.models (SPEC §4): the hyperbolic VAEs, the hierarchical triplet loss, the multi-scale triplet
sampler, hyperbolic k-means and scoring, training and segmentation. See each module's docstring."""

from .kmeans import PoincareKMeans, frechet_mean
from .sampling import TripletBatch, TripletSampler, sample_triplets
from .scoring import confusion_matrix, connected_components, dice_iou_matrices, hungarian_scores, instances_table
from .triplet import HierarchicalTripletLoss
from .vae import ABLATIONS, PRESETS, DenseConfig, DenseVAE, PaperConfig, PaperVAE, build_vae, paper_ablation

__all__ = [
    "ABLATIONS",
    "PRESETS",
    "DenseConfig",
    "DenseVAE",
    "HierarchicalTripletLoss",
    "PaperConfig",
    "PaperVAE",
    "PoincareKMeans",
    "TripletBatch",
    "TripletSampler",
    "build_vae",
    "confusion_matrix",
    "connected_components",
    "dice_iou_matrices",
    "frechet_mean",
    "hungarian_scores",
    "instances_table",
    "paper_ablation",
    "sample_triplets",
]
