"""Triton kernels, one module per op (same names as hypops/ops/ and csrc/cpu/). Importing this package
registers ``torch.ops.hypops.<op>_triton`` (+ ``_backward``) and the ``triton`` backend of each op.
They run on CUDA tensors, and on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1, set before
importing hypops), which is how CI tests them."""

from . import (  # noqa: F401
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
    wrapped_normal,
)
