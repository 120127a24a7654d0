"""Argument errors: clear exceptions that name the op and the argument, from the public functions and from
torch.ops.hypops.* called directly; explicit backends that cannot serve a call raise BackendUnavailable
with the reasons. Never a crash, never a silently wrong result."""

import os
import subprocess
import sys

import pytest
import torch
from hyptest import NATIVE_OPS, skip_unless_serves

import hypops
from hypops import BackendUnavailable, _backend

F32 = torch.float32

# public op -> (names of its tensor arguments, their shapes, extra keyword arguments)
PUBLIC = {
    "mobius_add": (("x", "y"), [(3, 4), (3, 4)], {}),
    "expmap0": (("u",), [(3, 4)], {}),
    "logmap0": (("y",), [(3, 4)], {}),
    "expmap": (("x", "u"), [(3, 4), (3, 4)], {}),
    "logmap": (("x", "y"), [(3, 4), (3, 4)], {}),
    "dist": (("x", "y"), [(3, 4), (3, 4)], {}),
    "project": (("x",), [(3, 4)], {}),
    "dist2plane": (("x", "p", "a"), [(3, 4), (3, 4), (3, 4)], {}),
    "gyroplane_bank": (("x", "p", "a"), [(3, 4), (2, 4), (2, 4)], {}),
    "wrapped_normal_rsample": (("mu", "std", "eps"), [(3, 4), (3, 4), (3, 4)], {}),
    "wrapped_normal_log_prob": (("z", "mu", "std"), [(3, 4), (3, 4), (3, 4)], {}),
    "gyroplane_conv3d": (("x", "p", "a"), [(1, 4, 2, 2, 2), (2, 4, 1, 1, 1), (2, 4, 1, 1, 1)], {}),
}
ROW_OPS = [op for op in PUBLIC if op != "gyroplane_conv3d"]


def _valid(op, dtype=F32):
    names, shapes, kw = PUBLIC[op]
    args = [torch.full(s, 0.1, dtype=dtype) for s in shapes]
    if "std" in names:
        args[names.index("std")] = torch.ones(shapes[names.index("std")], dtype=dtype)
    return names, args, kw


def _call(op, args, kw, **more):
    return getattr(hypops, op)(*args, **kw, **more)


@pytest.fixture(params=["native", "torch", None], ids=["native", "torch", "auto"])
def any_backend(request):
    return request.param


@pytest.mark.parametrize("op", list(PUBLIC))
def test_valid_call_works(op):
    names, args, kw = _valid(op)
    out = _call(op, args, kw)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("op", list(PUBLIC))
def test_integer_dtype_names_the_argument(op, any_backend):
    names, args, kw = _valid(op)
    for i, name in enumerate(names):
        bad = list(args)
        bad[i] = bad[i].to(torch.int64)
        with pytest.raises(TypeError, match=rf"hypops\.{op}: {name} must be a floating-point tensor"):
            _call(op, bad, kw, backend=any_backend)


@pytest.mark.parametrize("op", list(PUBLIC))
def test_mismatched_dtypes_name_both_arguments(op, any_backend):
    names, args, kw = _valid(op)
    for i, name in enumerate(names[1:], start=1):
        bad = list(args)
        bad[i] = bad[i].double()
        other = "|".join(n for n in names if n != name)
        with pytest.raises(
            TypeError, match=rf"hypops\.{op}: ({other}) is torch.float32 but {name} is torch.float64"
        ):
            _call(op, bad, kw, backend=any_backend)


@pytest.mark.parametrize("op", list(PUBLIC))
def test_mismatched_devices_name_both_arguments(op, any_backend):
    names, args, kw = _valid(op)
    for i, name in enumerate(names[1:], start=1):
        bad = list(args)
        bad[i] = bad[i].to("meta")
        other = "|".join(n for n in names if n != name)
        with pytest.raises(ValueError, match=rf"hypops\.{op}: ({other}) is on cpu but {name} is on meta"):
            _call(op, bad, kw, backend=any_backend)


@pytest.mark.parametrize("op", [op for op in ROW_OPS])
def test_mismatched_last_dims(op, any_backend):
    names, args, kw = _valid(op)
    for i, name in enumerate(names[1:], start=1):
        if name == "std":
            continue  # std may also be [..., 1] (isotropic); its own error is tested below
        bad = list(args)
        bad[i] = torch.full((*bad[i].shape[:-1], 5), 0.1)
        with pytest.raises(ValueError, match=rf"hypops\.{op}: .*{names[0]} has 4.*{name} has 5"):
            _call(op, bad, kw, backend=any_backend)


@pytest.mark.parametrize("op", ["wrapped_normal_rsample", "wrapped_normal_log_prob"])
def test_std_size(op):
    names, args, kw = _valid(op)
    args[names.index("std")] = torch.ones(3, 3)
    with pytest.raises(ValueError, match=rf"hypops\.{op}: std must have size 4 .* or 1 .*got 3"):
        _call(op, args, kw)


@pytest.mark.parametrize("op", list(PUBLIC))
@pytest.mark.parametrize("c", [0.0, -1.0, float("nan"), float("inf"), -float("inf")], ids=str)
def test_bad_curvature_value(op, c, any_backend):
    names, args, kw = _valid(op)
    with pytest.raises(ValueError, match=rf"hypops\.{op}: c must be positive and finite"):
        _call(op, args, kw, c=c, backend=any_backend)
    with pytest.raises(ValueError, match=rf"hypops\.{op}: c must be positive and finite"):
        _call(op, args, kw, c=torch.tensor(c), backend=any_backend)


@pytest.mark.parametrize("op", list(PUBLIC))
def test_bad_curvature_type_or_shape(op, any_backend):
    names, args, kw = _valid(op)
    with pytest.raises(
        ValueError, match=rf"hypops\.{op}: c must be a float or a 0-dim tensor, got shape \(1,\)"
    ):
        _call(op, args, kw, c=torch.ones(1), backend=any_backend)
    with pytest.raises(
        ValueError, match=rf"hypops\.{op}: c must be a float or a 0-dim tensor, got shape \(3, 4\)"
    ):
        _call(op, args, kw, c=torch.ones(3, 4), backend=any_backend)
    with pytest.raises(TypeError, match=rf"hypops\.{op}: c must be a floating-point tensor"):
        _call(op, args, kw, c=torch.tensor(1), backend=any_backend)
    for bad in ("1.0", None, True, [1.0]):
        with pytest.raises(TypeError, match=rf"hypops\.{op}: c must be a float or a 0-dim tensor"):
            _call(op, args, kw, c=bad, backend=any_backend)
    with pytest.raises(ValueError, match=rf"hypops\.{op}: c is on meta"):
        _call(op, args, kw, c=torch.tensor(1.0, device="meta"), backend=any_backend)


@pytest.mark.parametrize("op", ROW_OPS)
def test_zero_dim_point(op, any_backend):
    names, args, kw = _valid(op)
    bad = [torch.tensor(0.1) for _ in args]
    with pytest.raises(ValueError, match=rf"hypops\.{op}: {names[0]} must have at least one dimension"):
        _call(op, bad, kw, backend=any_backend)


@pytest.mark.parametrize("op", [op for op in ROW_OPS if op != "gyroplane_bank"])
def test_dim_out_of_range_and_empty(op, any_backend):
    names, args, kw = _valid(op)
    with pytest.raises(ValueError, match=rf"hypops\.{op}: dim=5 is out of range"):
        _call(op, args, kw, dim=5, backend=any_backend)
    empty = [torch.zeros(3, 0) for _ in args]
    with pytest.raises(ValueError, match=rf"hypops\.{op}: the coordinate dimension .* is empty"):
        _call(op, empty, kw, backend=any_backend)


@pytest.mark.parametrize("op", list(PUBLIC))
def test_non_tensor_argument(op):
    names, args, kw = _valid(op)
    bad = list(args)
    bad[0] = bad[0].tolist()
    with pytest.raises(TypeError, match=rf"hypops\.{op}: {names[0]} must be a torch.Tensor"):
        _call(op, bad, kw)


# --- backends -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", list(PUBLIC))
def test_explicit_triton_raises_with_reason(op, monkeypatch):
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("in a TRITON_INTERPRET=1 process triton may serve ops")
    names, args, kw = _valid(op)
    with pytest.raises(
        BackendUnavailable, match=rf"hypops\.{op}: backend 'triton' cannot serve cpu tensors: .+"
    ) as e:
        _call(op, args, kw, backend="triton")
    assert (
        "interpreter" in str(e.value)
        or "not installed" in str(e.value)
        or "no triton implementation" in str(e.value)
    )
    # the same through use_backend and the environment variable
    with hypops.use_backend("triton"):
        with pytest.raises(BackendUnavailable, match="triton"):
            _call(op, args, kw)
    monkeypatch.setenv("HYPOPS_BACKEND", "triton")
    with pytest.raises(BackendUnavailable, match="triton"):
        _call(op, args, kw)


def test_triton_reason_lists_missing_kernel_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    why = _backend.reasons("triton", "expmap0", torch.device("cpu"))
    try:
        import triton  # noqa: F401
    except ImportError:
        assert any("not installed" in w for w in why)
        return
    if "triton" not in _backend._IMPLS.get("expmap0", {}):
        assert why == ["expmap0 has no triton implementation yet"]
    else:
        assert why == []


@pytest.fixture
def torch_only_op():
    """An op that only the torch backend implements (every real op has a native kernel now)."""
    _backend.register("torch_only_op", "torch", lambda x: x)
    yield "torch_only_op"
    del _backend._IMPLS["torch_only_op"]
    _backend._CHOICE.clear()


def test_explicit_native_without_kernel_raises(torch_only_op):
    dev = torch.device("cpu")
    assert _backend.choose(torch_only_op, dev) == "torch"  # the automatic choice skips native
    with pytest.raises(
        BackendUnavailable,
        match=r"hypops\.torch_only_op: backend 'native' cannot serve cpu tensors: .*torch_only_op has no native "
        "implementation",
    ):
        _backend.select(torch_only_op, dev, "native")


def test_unknown_backend_name(monkeypatch):
    x = torch.zeros(2, 3)
    with pytest.raises(
        BackendUnavailable, match=r"unknown backend 'cuda'; choose one of native, triton, torch"
    ):
        hypops.expmap0(x, backend="cuda")
    with pytest.raises(ValueError, match=r"unknown backend 'bogus'"):
        with hypops.use_backend("bogus"):
            pass
    monkeypatch.setenv("HYPOPS_BACKEND", "bogus")
    with pytest.raises(BackendUnavailable, match=r"unknown backend 'bogus'"):
        hypops.expmap0(x)


def test_backend_selection_order(monkeypatch):
    """backend= beats use_backend(...) beats HYPOPS_BACKEND; use_backend(None) restores the automatic
    choice; the context manager restores on exit (also after an exception)."""
    dev = torch.device("cpu")
    assert _backend.choose("expmap0", dev) == "native"
    monkeypatch.setenv("HYPOPS_BACKEND", "torch")
    assert _backend.choose("expmap0", dev) == "torch"
    with hypops.use_backend("native"):
        assert _backend.choose("expmap0", dev) == "native"
        assert _backend.choose("expmap0", dev, "torch") == "torch"
        with hypops.use_backend(None):
            assert _backend.choose("expmap0", dev) == "torch"  # env applies again
    monkeypatch.delenv("HYPOPS_BACKEND")
    with pytest.raises(RuntimeError):
        with hypops.use_backend("torch"):
            assert _backend.choose("expmap0", dev) == "torch"
            raise RuntimeError
    assert _backend.choose("expmap0", dev) == "native"


def test_backend_choice_is_actually_used(monkeypatch):
    """The chosen implementation is the one that runs (backend=, use_backend, the automatic choice)."""
    x = torch.full((2, 3), 0.1)
    calls = []
    for name in ("native", "torch"):
        orig = _backend._IMPLS["expmap0"][name]
        monkeypatch.setitem(
            _backend._IMPLS["expmap0"],
            name,
            lambda *a, _n=name, _f=orig, **k: calls.append(_n) or _f(*a, **k),
        )
    hypops.expmap0(x, backend="torch")
    hypops.expmap0(x, backend="native")
    hypops.expmap0(x)
    with hypops.use_backend("torch"):
        hypops.expmap0(x)
    assert calls == ["torch", "native", "native", "torch"]


# --- torch.ops.hypops.* called directly ---------------------------------------------------------------------
def _native_args(op, dtype=torch.float64):
    names, shapes, _ = PUBLIC[op]
    args = [torch.full(s, 0.1, dtype=dtype) for s in shapes]
    flags = (True, False) if op in ("dist2plane", "gyroplane_bank") else ()
    return names, args, flags


@pytest.fixture
def native_available():
    skip_unless_serves("native", *NATIVE_OPS)


# The row ops whose tensors all have one last dimension (the wrapped normal's std may be [..., 1]: tested
# below; gyroplane_conv3d's direct-call errors are tested in tests/test_gyroplane_conv3d.py).
NATIVE_ROW_OPS = [op for op in NATIVE_OPS if op != "gyroplane_conv3d" and not op.startswith("wrapped_normal")]


@pytest.mark.parametrize("op", ["wrapped_normal_rsample", "wrapped_normal_log_prob"])
def test_direct_wrapped_normal_errors_name_the_argument(op, native_available):
    fn = getattr(torch.ops.hypops, op)
    names, args, _ = _native_args(op)
    c = torch.tensor(1.0, dtype=torch.float64)
    assert torch.isfinite(fn(*args, c)).all()
    i_std = names.index("std")
    for i, name in enumerate(names):
        bad = list(args)
        bad[i] = bad[i].to(torch.int32)
        with pytest.raises(RuntimeError, match=rf"hypops\.{op}: {name} must .*(floating-point|dtype)"):
            fn(*bad, c)
        if i > 0:
            bad = list(args)
            bad[i] = bad[i].float()
            with pytest.raises(RuntimeError, match=rf"hypops\.{op}: .*{name}.*(Float|dtype)"):
                fn(*bad, c)
    bad = list(args)
    bad[i_std] = torch.ones(3, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: std must have last dimension 4 .*or 1"):
        fn(*bad, c)
    other = next(i for i in range(3) if i not in (0, i_std))
    bad = list(args)
    bad[other] = torch.full((3, 5), 0.1, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: the last dimensions differ"):
        fn(*bad, c)
    for v in (0.0, -2.0, float("nan")):
        with pytest.raises(RuntimeError, match=rf"hypops\.{op}: c must be positive and finite"):
            fn(*args, torch.tensor(v, dtype=torch.float64))


@pytest.mark.parametrize("op", NATIVE_ROW_OPS)
def test_direct_op_errors_name_the_argument(op, native_available):
    fn = getattr(torch.ops.hypops, op)
    names, args, flags = _native_args(op)
    c = torch.tensor(1.0, dtype=torch.float64)
    assert torch.isfinite(fn(*args, c, *flags)).all()
    for i, name in enumerate(names):
        bad = list(args)
        bad[i] = bad[i].to(torch.int32)
        with pytest.raises(RuntimeError, match=rf"hypops\.{op}: {name} must be a floating-point tensor"):
            fn(*bad, c, *flags)
        if i > 0:
            bad = list(args)
            bad[i] = bad[i].float()
            with pytest.raises(
                RuntimeError, match=rf"hypops\.{op}: {names[0]} is Double but {name} is Float"
            ):
                fn(*bad, c, *flags)
            bad = list(args)
            bad[i] = torch.full((*bad[i].shape[:-1], 5), 0.1, dtype=torch.float64)
            with pytest.raises(
                RuntimeError,
                match=rf"hypops\.{op}: the last dimensions differ: {names[0]} has 4, {name} has 5",
            ):
                fn(*bad, c, *flags)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: {names[0]} must have at least one dimension"):
        fn(*[torch.tensor(0.1, dtype=torch.float64) for _ in args], c, *flags)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: c must be a 0-dim tensor, got 1 dims"):
        fn(*args, torch.ones(1, dtype=torch.float64), *flags)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: c must be floating-point"):
        fn(*args, torch.tensor(1), *flags)
    for v in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(RuntimeError, match=rf"hypops\.{op}: c must be positive and finite"):
            fn(*args, torch.tensor(v, dtype=torch.float64), *flags)
    with pytest.raises(RuntimeError, match=rf"hypops\.{op}: {names[0]} is undefined"):
        fn(None, *args[1:], c, *flags)


@pytest.mark.parametrize("op", NATIVE_ROW_OPS)
def test_direct_op_mixed_devices_raise(op, native_available):
    """A meta tensor next to CPU tensors (a stand-in for a second device) must raise, naming the
    arguments -- not return an uninitialised CPU tensor from the fake (shape) function."""
    fn = getattr(torch.ops.hypops, op)
    names, args, flags = _native_args(op)
    c = torch.tensor(1.0, dtype=torch.float64)
    for i, name in enumerate(names[1:], start=1):
        bad = list(args)
        bad[i] = bad[i].to("meta")
        with pytest.raises(RuntimeError, match=rf"{names[0]}.*cpu.*{name}.*meta|{name}.*meta.*cpu"):
            fn(*bad, c, *flags)
    with pytest.raises(RuntimeError, match=r"c is on meta"):
        fn(*args, c.to("meta"), *flags)


def test_direct_op_errors_do_not_crash_the_process():
    """The same bad calls in a fresh interpreter: a Python exception each, exit status 0 (no abort)."""
    from hypops import _C

    code = r"""
import sys, torch
torch.ops.load_library(sys.argv[1])  # the op library alone: a fresh process without hypops' Python layer
x = torch.zeros(3, 4, dtype=torch.float64); c = torch.tensor(1.0, dtype=torch.float64)
bad = [
    lambda: torch.ops.hypops.expmap0(torch.zeros(3, 4, dtype=torch.int64), c),
    lambda: torch.ops.hypops.mobius_add(x, torch.zeros(3, 5, dtype=torch.float64), c),
    lambda: torch.ops.hypops.expmap0(x, torch.ones(2)),
    lambda: torch.ops.hypops.expmap0(x, torch.tensor(float('nan'))),
    lambda: torch.ops.hypops.gyroplane_bank(torch.zeros(2, 3, 4, dtype=torch.float64), x, x, c, True, False),
    lambda: torch.ops.hypops.dist2plane_backward(torch.zeros(7, dtype=x.dtype), x, x, x, c, True, False),
    lambda: torch.ops.hypops.expmap0(torch.zeros(3, 0, dtype=torch.float64), c),
]
n = 0
for f in bad:
    try:
        f()
    except RuntimeError:
        n += 1
print(n)
"""
    r = subprocess.run([sys.executable, "-c", code, _C.__file__], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "7", r.stdout + r.stderr
