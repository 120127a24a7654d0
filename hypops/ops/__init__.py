"""The public functional ops, one module per op (same names as csrc/cpu/<op>_cpu.cpp and tests/)."""

from .dist import dist
from .dist2plane import dist2plane
from .expmap import expmap
from .expmap0 import expmap0
from .gyroplane_bank import gyroplane_bank
from .gyroplane_conv3d import gyroplane_conv3d
from .logmap import logmap
from .logmap0 import logmap0
from .mobius_add import mobius_add
from .project import project
from .wrapped_normal import wrapped_normal_log_prob, wrapped_normal_rsample

__all__ = [
    "mobius_add",
    "expmap0",
    "logmap0",
    "expmap",
    "logmap",
    "dist",
    "project",
    "dist2plane",
    "gyroplane_bank",
    "gyroplane_conv3d",
    "wrapped_normal_rsample",
    "wrapped_normal_log_prob",
]
