"""hypops: fused Poincaré-ball (hyperbolic) operations for PyTorch.

Functional ops (``hypops.expmap0(u, c=1.0)``, ...) take ``c`` as a positive float or 0-dim tensor
(minus the curvature), broadcast like torch, work on ``dim=-1`` and pick a backend automatically
(``backend=``, ``hypops.use_backend(...)`` or ``HYPOPS_BACKEND`` choose one explicitly).
``hypops.reference`` holds the same functions in plain PyTorch. See ``hypops.info()``.
"""

from __future__ import annotations

import warnings

from . import _backend

__version__ = "0.1.0"

try:
    from . import _C  # noqa: F401  (loads the op library: torch.ops.hypops.*)

    _backend.native_error = None
    _backend.native_has_cuda = bool(_C.has_cuda)
except ImportError as e:  # a source checkout without a build: the torch backend serves everything
    _backend.native_error = f"import hypops._C failed: {e}"
    warnings.warn(
        f"hypops: the compiled extension is not available ({e}); every op runs on the slower 'torch' "
        "backend. Build it with: pip install --no-build-isolation .",
        RuntimeWarning,
        stacklevel=2,
    )

from . import distributions, nn, reference  # noqa: E402

if _backend._has_triton:
    try:
        from . import _triton  # noqa: F401  (registers the triton backend)
    except Exception as e:  # a broken triton install must not break import hypops
        _backend.triton_error = f"importing hypops._triton failed: {e}"
from ._backend import BackendUnavailable, use_backend  # noqa: E402
from ._info import info  # noqa: E402
from .manifold import PoincareBall  # noqa: E402
from .ops import (  # noqa: E402
    dist,
    dist2plane,
    expmap,
    expmap0,
    gyroplane_bank,
    gyroplane_conv3d,
    logmap,
    logmap0,
    mobius_add,
    project,
    wrapped_normal_log_prob,
    wrapped_normal_rsample,
)

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
    "reference",
    "distributions",
    "nn",
    "use_backend",
    "BackendUnavailable",
    "info",
    "PoincareBall",
]
