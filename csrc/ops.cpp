// Every hypops op schema, forward and backward. Kernels register their implementations per dispatch
// key in csrc/cpu/<op>_cpu.cpp and csrc/cuda/<op>_cuda.cu; autograd in csrc/autograd.cpp (gyroplane_conv3d's
// in Python), fakes in Python (hypops/ops/).
//
// Argument order (never reordered between layers): points first, then tangent vectors / plane
// parameters, then c (a 0-dim tensor), then flags. Every op works on the last dimension; the Python
// layer moves `dim` there. Inputs broadcast like torch; each *_backward returns one gradient per tensor
// input, reduced to that input's shape, and the gradient of c last.
#include <torch/library.h>

TORCH_LIBRARY(hypops, m) {
  m.def("project(Tensor x, Tensor c) -> Tensor");
  m.def("project_backward(Tensor grad, Tensor x, Tensor c) -> (Tensor, Tensor)");
  m.def("expmap0(Tensor u, Tensor c) -> Tensor");
  m.def("expmap0_backward(Tensor grad, Tensor u, Tensor c) -> (Tensor, Tensor)");
  m.def("logmap0(Tensor y, Tensor c) -> Tensor");
  m.def("logmap0_backward(Tensor grad, Tensor y, Tensor c) -> (Tensor, Tensor)");
  m.def("mobius_add(Tensor x, Tensor y, Tensor c) -> Tensor");
  m.def("mobius_add_backward(Tensor grad, Tensor x, Tensor y, Tensor c) -> (Tensor, Tensor, Tensor)");
  m.def("expmap(Tensor x, Tensor u, Tensor c) -> Tensor");
  m.def("expmap_backward(Tensor grad, Tensor x, Tensor u, Tensor c) -> (Tensor, Tensor, Tensor)");
  m.def("logmap(Tensor x, Tensor y, Tensor c) -> Tensor");
  m.def("logmap_backward(Tensor grad, Tensor x, Tensor y, Tensor c) -> (Tensor, Tensor, Tensor)");
  // dist reduces the last dimension: [..., D] -> [...]
  m.def("dist(Tensor x, Tensor y, Tensor c) -> Tensor");
  m.def("dist_backward(Tensor grad, Tensor x, Tensor y, Tensor c) -> (Tensor, Tensor, Tensor)");
  // dist2plane reduces the last dimension: [..., D] -> [...]
  m.def("dist2plane(Tensor x, Tensor p, Tensor a, Tensor c, bool signed, bool scaled) -> Tensor");
  m.def("dist2plane_backward(Tensor grad, Tensor x, Tensor p, Tensor a, Tensor c, bool signed, bool scaled)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  // A bank of planes: x [N, D], p and a [P, D] -> [N, P], through two GEMMs (no [N, P, D] temporary).
  m.def("gyroplane_bank(Tensor x, Tensor p, Tensor a, Tensor c, bool signed, bool scaled) -> Tensor");
  m.def("gyroplane_bank_backward(Tensor grad, Tensor x, Tensor p, Tensor a, Tensor c, bool signed,"
        " bool scaled) -> (Tensor, Tensor, Tensor, Tensor)");
  // Gyroplane 3D convolution (SPEC §2): x [B, D, X, Y, Z]; p, a [C_out, D, kx, ky, kz] (per offset) or
  // [C_out, D] (tied); signed, unscaled distances summed over the window, plus bias. -> [B, C_out, OX, OY, OZ].
  // The backward returns the gradients of x, p, a and c (the bias gradient is grad summed, done by autograd).
  m.def("gyroplane_conv3d(Tensor x, Tensor p, Tensor a, Tensor c, Tensor? bias, int[3] stride, int[3] padding,"
        " int[3] dilation, int[3] kernel_size) -> Tensor");
  m.def("gyroplane_conv3d_backward(Tensor grad, Tensor x, Tensor p, Tensor a, Tensor c, int[3] stride,"
        " int[3] padding, int[3] dilation, int[3] kernel_size) -> (Tensor, Tensor, Tensor, Tensor)");
  // Wrapped normal: std is [..., D] (diagonal) or [..., 1] (isotropic); mu, std, eps broadcast.
  m.def("wrapped_normal_rsample(Tensor mu, Tensor std, Tensor eps, Tensor c) -> Tensor");
  m.def("wrapped_normal_rsample_backward(Tensor grad, Tensor mu, Tensor std, Tensor eps, Tensor c)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  // log density with respect to the Riemannian volume; reduces the last dimension: [..., D] -> [...]
  m.def("wrapped_normal_log_prob(Tensor z, Tensor mu, Tensor std, Tensor c) -> Tensor");
  m.def("wrapped_normal_log_prob_backward(Tensor grad, Tensor z, Tensor mu, Tensor std, Tensor c)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
}
