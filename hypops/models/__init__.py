"""hypops.models: the hyperbolic VAEs, the hierarchical triplet loss and the multi-scale triplet sampler
(SPEC §4). See each module's docstring for the API."""

from .sampling import TripletBatch, TripletSampler, sample_triplets

__all__ = [
    "TripletBatch",
    "TripletSampler",
    "sample_triplets",
]
