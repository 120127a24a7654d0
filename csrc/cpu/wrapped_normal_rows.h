// Row views of the wrapped normal's inputs, shared by the CPU and CUDA kernels (device-agnostic host code:
// checks, expand/reshape). Two [..., D] inputs (mu and eps, or z and mu) and std, diagonal [..., D] or
// isotropic [..., 1], broadcast over their leading dimensions. The isotropic std stays one value per row
// (the kernels read it with a column stride of 0) instead of being expanded to [..., D] in memory.
#pragma once

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include <vector>

#include "cpu/rows.h"

namespace hypops {

struct WnRows {
  Rows r;           // the [N, D] inputs other than std
  at::Tensor std_;  // [N, 1] (iso) or [N, D]
  bool iso;
};

inline WnRows wn_rows(const char* op, const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn,
                      const at::Tensor& std) {
  check_rows(op, {{&a, an}, {&b, bn}});
  TORCH_CHECK(is_float_dtype(std.scalar_type()) && std.scalar_type() == a.scalar_type(), "hypops.", op,
              ": std must have the dtype of ", an, " (", a.scalar_type(), "), got ", std.scalar_type());
  TORCH_CHECK(std.device() == a.device(), "hypops.", op, ": std is on ", std.device(), " but ", an, " is on ",
              a.device());
  TORCH_CHECK(std.dim() >= 1 && (std.size(-1) == a.size(-1) || std.size(-1) == 1), "hypops.", op,
              ": std must have last dimension ", a.size(-1), " (diagonal) or 1 (isotropic), got ",
              std.dim() ? std.size(-1) : 0);
  const int64_t D = a.size(-1);
  const bool iso = std.size(-1) == 1 && D > 1;
  // the common leading shape of all three
  std::vector<int64_t> lead = at::infer_size(a.sizes().slice(0, a.dim() - 1), b.sizes().slice(0, b.dim() - 1));
  lead = at::infer_size(lead, std.sizes().slice(0, std.dim() - 1));
  std::vector<int64_t> shape = lead;
  shape.push_back(D);
  WnRows w{make_rows({a.expand(shape), b.expand(shape)}), at::Tensor(), iso};
  std::vector<int64_t> sshape = lead;
  sshape.push_back(iso ? 1 : D);
  w.std_ = std.expand(sshape).reshape({w.r.N, iso ? 1 : D});
  if (w.std_.stride(-1) != 1 && !iso) w.std_ = w.std_.contiguous();
  return w;
}

// The gradient of std from its [N, 1] or [N, D] per-row gradient, summed to std's shape.
inline at::Tensor wn_std_grad(const at::Tensor& gs, const WnRows& w, const at::Tensor& std) {
  std::vector<int64_t> sshape(w.r.shape.begin(), w.r.shape.end() - 1);
  sshape.push_back(w.iso ? 1 : w.r.D);
  return gs.view(sshape).sum_to_size(std.sizes()).contiguous();
}

}  // namespace hypops
