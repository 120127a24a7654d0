"""hypops.models: the hyperbolic VAEs, the hierarchical triplet loss and the multi-scale triplet sampler
(SPEC §4). See each module's docstring for the API."""

from .sampling import TripletBatch, TripletSampler, sample_triplets
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
    "TripletBatch",
    "TripletSampler",
    "build_vae",
    "paper_ablation",
    "sample_triplets",
]
