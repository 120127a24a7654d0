"""The C++ autograd kernel of the row ops, the bank and the wrapped normal (csrc/autograd.cpp).

The gradients themselves are checked against the float64 reference for every op in tests/hyptest.py
(all inputs requiring grad at once). Here: the wiring of the one boxed kernel that serves all of them —
each input alone requiring grad (c included) gets the reference's gradient, nothing is recorded when
nothing needs a graph, the node is the C++ one (the Python wrapper it replaced cost ~100 us a call), and
differentiating a gradient raises.
"""

from __future__ import annotations

import pytest
import torch

import hypops
from hyptest import skip_unless_serves

# name -> (argument names, shapes, flags of the public call)
OPS = {
    "project": (("x",), [(5, 4)], {}),
    "expmap0": (("u",), [(5, 4)], {}),
    "logmap0": (("y",), [(5, 4)], {}),
    "mobius_add": (("x", "y"), [(5, 4), (5, 4)], {}),
    "expmap": (("x", "u"), [(5, 4), (5, 4)], {}),
    "logmap": (("x", "y"), [(5, 4), (1, 4)], {}),  # y broadcast: its gradient is reduced
    "dist": (("x", "y"), [(5, 4), (5, 4)], {}),
    "dist2plane": (("x", "p", "a"), [(5, 4), (5, 4), (5, 4)], {"signed": True}),
    "gyroplane_bank": (("x", "p", "a"), [(5, 4), (3, 4), (3, 4)], {"scaled": True}),
    "wrapped_normal_rsample": (("mu", "std", "eps"), [(5, 4), (5, 1), (5, 4)], {}),
    "wrapped_normal_log_prob": (("z", "mu", "std"), [(5, 4), (5, 4), (5, 4)], {}),
}


def _inputs(op):
    names, shapes, _ = OPS[op]
    g = torch.Generator().manual_seed(7)
    args = []
    for name, shape in zip(names, shapes):
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        args.append(t.abs() * 0.5 + 0.2 if name == "std" else t * 0.2)
    return names, args, torch.tensor(0.7, dtype=torch.float64)


def _call(op, args, c, backend):
    return getattr(hypops, op)(*args, c=c, backend=backend, **OPS[op][2])


@pytest.mark.parametrize("op", list(OPS))
def test_each_input_alone_gets_its_gradient(op):
    skip_unless_serves("native", op)
    names, args, c = _inputs(op)
    for which in range(len(names) + 1):  # each tensor, then c alone
        leaves = [a.clone().requires_grad_(i == which) for i, a in enumerate(args)]
        c_leaf = c.clone().requires_grad_(which == len(names))
        target = leaves[which] if which < len(names) else c_leaf
        got = _call(op, leaves, c_leaf, "native")
        assert got.requires_grad
        weight = torch.linspace(-1.0, 1.0, got.numel(), dtype=torch.float64).reshape(got.shape)
        got.backward(weight)  # .backward: the gradient accumulates into the one leaf that requires it
        ref_leaves = [a.clone().requires_grad_() for a in args]
        ref_c = c.clone().requires_grad_()
        ref = _call(op, ref_leaves, ref_c, "torch")
        ref_grads = torch.autograd.grad(ref, [*ref_leaves, ref_c], weight)
        torch.testing.assert_close(target.grad, ref_grads[which], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("op", list(OPS))
def test_graph_only_when_needed(op):
    skip_unless_serves("native", op)
    names, args, c = _inputs(op)
    assert _call(op, args, c, "native").grad_fn is None  # nothing requires grad
    leaves = [a.clone().requires_grad_() for a in args]
    with torch.no_grad():
        assert _call(op, leaves, c, "native").grad_fn is None
    flags = (True, True) if op in ("dist2plane", "gyroplane_bank") else ()
    out = getattr(torch.ops.hypops, op)(*leaves, c, *flags)  # the op itself: the public bank reshapes
    # the C++ node, not torch.library's Python wrapper (GeneratedBackwardFor_hypops_<op>...)
    assert "RowOpFunction" in out.grad_fn.name()
    # the saved inputs are released after backward, as with any autograd node
    out.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.sum().backward()


def test_every_native_op_has_an_autograd_kernel():
    """Every op of csrc/ops.cpp but the conv (whose autograd is hypops/ops/gyroplane_conv3d.py's) is served by
    the kernel, and is in OPS here; each <op>_backward has the "not implemented" kernel."""
    skip_unless_serves("native", *OPS)
    schemas = {n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("hypops::")}
    forward = {n for n in schemas if not n.endswith("_backward") and "_triton" not in n}
    assert forward - {"gyroplane_conv3d"} == set(OPS)
    for op in forward:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"hypops::{op}", "Autograd"), op


@pytest.mark.parametrize("op", ["expmap0", "dist", "gyroplane_bank", "gyroplane_conv3d"])
def test_double_backward_raises(op):
    """A gradient of a gradient is not implemented: it raises, rather than leaving .grad silently None."""
    skip_unless_serves("native", op)
    if op == "gyroplane_conv3d":
        x = torch.full((1, 2, 3, 3, 3), 0.1, dtype=torch.float64, requires_grad=True)
        p, a = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64)
        out = hypops.gyroplane_conv3d(x, p, a, c=1.0, kernel_size=3, padding=1, backend="native")
    else:
        names, args, c = _inputs(op)
        x = args[0].clone().requires_grad_()
        out = _call(op, [x, *args[1:]], c, "native")
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=rf"derivative for hypops::{op}_backward is not implemented"):
        g.pow(2).sum().backward()
