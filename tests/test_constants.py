"""The numerical constants of csrc/common/math.h (exposed as hypops._C.constants) equal those of
hypops/_constants.py, which hypops.reference uses: the kernels and the oracle clamp at the same places."""

import re
from pathlib import Path

import pytest
import torch

from hypops import _backend, _constants

C_NAMES = ("MIN_NORM", "ARTANH_CLAMP", "TANH_CLAMP", "MIN_DENOM")
DTYPE_NAMES = {
    torch.float64: "PROJ_EPS_FLOAT64",
    torch.float32: "PROJ_EPS_FLOAT32",
    torch.float16: "PROJ_EPS_FLOAT16",
    torch.bfloat16: "PROJ_EPS_BFLOAT16",
}


@pytest.fixture(scope="module")
def native_constants():
    if _backend.native_error is not None:
        pytest.skip(_backend.native_error)
    from hypops import _C

    return dict(_C.constants)


def test_scalar_constants_match(native_constants):
    for name in C_NAMES:
        assert native_constants[name] == getattr(_constants, name), name


def test_projection_eps_per_dtype_match(native_constants):
    assert set(_constants.PROJ_EPS) == set(DTYPE_NAMES)
    for dtype, name in DTYPE_NAMES.items():
        assert native_constants[name] == _constants.PROJ_EPS[dtype], name


def test_no_unpinned_constants(native_constants):
    # every constant the extension exposes is pinned by a test above
    assert set(native_constants) == set(C_NAMES) | set(DTYPE_NAMES.values())


def test_geoopt_defaults():
    """SPEC §1: defaults match geoopt (projection eps 4e-3 float32, 1e-5 float64; norms floored at 1e-15),
    and the half types' eps keeps a rounded point strictly inside (relative rounding 2^-11 / 2^-8)."""
    import geoopt

    ball = geoopt.PoincareBall(c=1.0)
    for dtype in (torch.float32, torch.float64):
        far = torch.tensor([[3.0, 4.0]], dtype=dtype)
        geoopt_eps = 1 - ball.projx(far).double().norm().item()
        assert abs(geoopt_eps - _constants.PROJ_EPS[dtype]) < 1e-7, (dtype, geoopt_eps)
    assert _constants.MIN_NORM == 1e-15
    assert _constants.PROJ_EPS[torch.float16] > 2.0**-11
    assert _constants.PROJ_EPS[torch.bfloat16] > 2.0**-8
    assert _constants.compute_dtype(torch.float16) == torch.float32
    assert _constants.compute_dtype(torch.bfloat16) == torch.float32
    assert _constants.compute_dtype(torch.float64) == torch.float64


def test_header_values_match_source():
    """Also read csrc/common/math.h itself (catches a stale build: the source changed, the .so did not)."""
    header = Path(__file__).resolve().parents[1] / "csrc" / "common" / "math.h"
    if not header.exists():
        pytest.skip("no source tree")
    text = header.read_text()
    for name in C_NAMES:
        m = re.search(rf"constexpr double {name} = ([0-9.eE+-]+);", text)
        assert m, name
        assert float(m.group(1)) == getattr(_constants, name), name
    for dtype, name in DTYPE_NAMES.items():
        m = re.search(rf"constexpr double {name} = ([0-9.eE+-]+);", text)
        assert m, name
        assert float(m.group(1)) == _constants.PROJ_EPS[dtype], name
