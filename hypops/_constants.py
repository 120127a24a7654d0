"""Numerical constants shared by every backend.

They mirror ``csrc/common/math.h`` (``tests/test_constants.py`` pins the two together); the comments
there say why each one exists.
"""

import torch

MIN_NORM = 1e-15
ARTANH_CLAMP = 1e-7
TANH_CLAMP = 15.0
MIN_DENOM = 1e-15

#: Projection eps per storage dtype: points are kept at norm <= (1 - eps) / sqrt(c).
#: float32/float64 are geoopt's values; the half types are chosen so that rounding the result to the
#: half type still leaves it strictly inside the ball.
PROJ_EPS = {
    torch.float64: 1e-5,
    torch.float32: 4e-3,
    torch.float16: 4e-3,
    torch.bfloat16: 8e-3,
}

FLOAT_DTYPES = tuple(PROJ_EPS)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in: half types compute in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32
