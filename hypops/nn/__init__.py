"""hypops.nn: layers over the hypops ops. They hold parameters and choose their parameterisation; every
formula they evaluate lives in the functional ops (hypops.gyroplane_bank, gyroplane_conv3d, expmap0,
logmap0)."""

from ._common import Curvature
from .conv import GyroplaneConv3d
from .gyroplane import Gyroplane
from .maps import ExpMap0, LogMap0

__all__ = ["Gyroplane", "GyroplaneConv3d", "ExpMap0", "LogMap0", "Curvature"]
