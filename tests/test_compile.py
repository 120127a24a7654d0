"""torch.compile(fullgraph=True) of code built from several native ops: no graph break, forward and
backward (c's gradient included) equal to eager. fullgraph=True is the point: a graph break anywhere in
hypops' Python layer (argument checks, backend choice) fails these tests."""

import pytest
import torch
from hyptest import ball_points, gen, sample, skip_unless_serves

import hypops

OP = (
    "mobius_add",
    "expmap0",
    "logmap0",
    "expmap",
    "logmap",
    "dist",
    "project",
    "dist2plane",
    "gyroplane_bank",
)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class HypModel(torch.nn.Module):
    """Euclidean features -> ball (expmap0) -> Möbius translation -> expmap step -> a gyroplane bank and
    distances, logmap back out: eight native ops in one graph."""

    def __init__(self, d=4, planes=3):
        super().__init__()
        g = gen(0)
        self.bias = torch.nn.Parameter(ball_points(1, d, 1.0, g, max_frac=0.3, zero_rows=0)[0].float())
        self.p = torch.nn.Parameter(ball_points(planes, d, 1.0, g, max_frac=0.5, zero_rows=0).float())
        self.a = torch.nn.Parameter(sample("normal", planes, d, 1.0, g).float())
        self.logc = torch.nn.Parameter(torch.tensor(-0.3))

    def forward(self, u, v, backend="native"):
        c = self.logc.exp()
        x = hypops.expmap0(u, c=c, backend=backend)
        x = hypops.mobius_add(x, self.bias, c=c, backend=backend)
        y = hypops.expmap(x, v, c=c, backend=backend)
        y = hypops.project(y * 1.01, c=c, backend=backend)
        bank = hypops.gyroplane_bank(y, self.p, self.a, c=c, backend=backend)
        d2p = hypops.dist2plane(y, self.p[0], self.a[0], c=c, signed=True, backend=backend)
        d = hypops.dist(x, y, c=c, backend=backend)
        t = hypops.logmap(x, y, c=c, backend=backend) + hypops.logmap0(y, c=c, backend=backend)
        return bank.sum(-1) + d2p + d + t.pow(2).sum(-1)


def _inputs():
    g = gen(1)
    u = torch.randn(6, 4, generator=g)
    v = 0.3 * torch.randn(6, 4, generator=g)
    return u, v


def test_model_fullgraph_forward_backward_matches_eager():
    skip_unless_serves("native", *OP)
    model = HypModel()
    u, v = _inputs()
    u.requires_grad_(True)

    eager = model(u, v)
    eager.sum().backward()
    g_eager = [p.grad.clone() for p in model.parameters()] + [u.grad.clone()]
    model.zero_grad()
    u.grad = None

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(u, v)
    torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    g_comp = [p.grad.clone() for p in model.parameters()] + [u.grad.clone()]
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert model.logc.grad is not None and model.logc.grad != 0  # c's gradient flows through the graph


def test_functions_fullgraph_with_python_float_c_and_dim():
    skip_unless_serves("native", *OP)

    def f(x, y, a):
        z = hypops.mobius_add(x, y, c=0.5, dim=0)
        return hypops.dist(z, y, c=0.5, dim=0, keepdim=True) + hypops.dist2plane(
            x, y, a, c=0.5, dim=0, keepdim=True
        )

    g = gen(2)
    x = ball_points(5, 3, 0.5, g).t().contiguous()  # coordinates along dim 0
    y = ball_points(5, 3, 0.5, g).t().contiguous()
    a = sample("normal", 5, 3, 0.5, g).t().contiguous()
    want = f(x, y, a)
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x, y, a)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_compile_with_inductor_and_dynamic_shapes():
    """The default (inductor) backend with dynamic=True: one graph for several batch sizes (c a tensor)."""
    skip_unless_serves("native", "expmap0", "logmap", "dist")

    def f(u, y, c):
        x = hypops.expmap0(u, c=c)
        return hypops.dist(x, y, c=c) + hypops.logmap(x, y, c=c).sum(-1)

    cf = torch.compile(f, fullgraph=True, dynamic=True)
    c = torch.tensor(0.8, dtype=torch.float64)
    for n in (3, 7):
        g = gen(n)
        u = torch.randn(n, 4, generator=g, dtype=torch.float64)
        y = ball_points(n, 4, 0.8, g)
        torch.testing.assert_close(cf(u, y, c), f(u, y, c), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_python_float_c_changing_between_calls(backend):
    """c passed as a Python float that changes between calls: Dynamo then makes the float dynamic
    (a SymFloat), and hypops' curvature check must not break the graph on it (math.isfinite on a SymFloat
    is a graph break, i.e. an error under fullgraph=True)."""
    skip_unless_serves(backend, "expmap0")

    def f(u, c):
        return hypops.expmap0(u, c=c, backend=backend)

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    u = torch.randn(4, 3, dtype=torch.float64)
    for c in (0.7, 0.8, 1.3):
        torch.testing.assert_close(cf(u, c), f(u, c), rtol=1e-12, atol=1e-12)


def test_python_float_c_with_dynamic_true():
    """dynamic=True with c a Python float (the default c=1.0 included)."""
    skip_unless_serves("native", "expmap0", "dist")

    def f(u, y, c):
        return hypops.dist(hypops.expmap0(u), y, c=c)

    cf = torch.compile(f, fullgraph=True, dynamic=True, backend="aot_eager")
    u = torch.randn(5, 4, dtype=torch.float64)
    y = ball_points(5, 4, 0.5, gen(3), max_frac=0.5)
    torch.testing.assert_close(cf(u, y, 0.5), f(u, y, 0.5), rtol=1e-12, atol=1e-12)


def test_use_backend_inside_compiled_region_is_respected():
    """A backend chosen outside the compiled function (use_backend) is honoured: compiled under
    use_backend("torch") the graph must hold no hypops custom op."""
    skip_unless_serves("native", "expmap0")

    def f(u):
        return hypops.expmap0(u)

    u = torch.randn(4, 3)
    seen = []

    def backend(gm, example_inputs):
        seen.append(str(gm.graph))
        return gm.forward

    with hypops.use_backend("torch"):
        out = torch.compile(f, fullgraph=True, backend=backend)(u)
    torch.testing.assert_close(out, hypops.reference.expmap0(u))
    assert seen and "hypops" not in seen[-1]
    torch._dynamo.reset()
    seen.clear()
    torch.compile(f, fullgraph=True, backend=backend)(u)
    assert seen and "hypops.expmap0" in seen[-1]
