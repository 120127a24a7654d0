"""hypops.data: the synthetic hierarchical data set (toy.py)."""

from .toy import ToyObject, ToyVolume, make_toy_volume, toy_splits

__all__ = ["ToyObject", "ToyVolume", "make_toy_volume", "toy_splits"]
