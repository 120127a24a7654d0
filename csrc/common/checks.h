// Argument checks for the ops, with messages that name the op and the argument. The Python layer
// checks the same things first (hypops/_checks.py); these keep direct torch.ops.hypops calls safe.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>
#include <utility>
#include <vector>

namespace hypops {

using Named = std::pair<const at::Tensor*, const char*>;

inline bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// Row tensors of one call: floating, one dtype, one device, at least 1-D, equal non-empty last dims.
inline void check_rows(const char* op, const std::vector<Named>& args) {
  const at::Tensor& first = *args[0].first;
  for (const auto& [t, name] : args) {
    TORCH_CHECK(t->defined(), "hypops.", op, ": ", name, " is undefined");
    TORCH_CHECK(is_float_dtype(t->scalar_type()), "hypops.", op, ": ", name,
                " must be a floating-point tensor (float16, bfloat16, float32 or float64), got ",
                t->scalar_type());
    TORCH_CHECK(t->dim() >= 1, "hypops.", op, ": ", name, " must have at least one dimension");
    TORCH_CHECK(t->scalar_type() == first.scalar_type(), "hypops.", op, ": ", args[0].second, " is ",
                first.scalar_type(), " but ", name, " is ", t->scalar_type());
    TORCH_CHECK(t->device() == first.device(), "hypops.", op, ": ", args[0].second, " is on ",
                first.device(), " but ", name, " is on ", t->device());
    TORCH_CHECK(t->size(-1) == first.size(-1), "hypops.", op, ": the last dimensions differ: ",
                args[0].second, " has ", first.size(-1), ", ", name, " has ", t->size(-1));
    TORCH_CHECK(t->size(-1) > 0, "hypops.", op, ": ", name, " has an empty last dimension");
  }
}

// c: a 0-dim floating tensor on the points' device (or the CPU).
inline void check_c(const char* op, const at::Tensor& c, const at::Tensor& like) {
  TORCH_CHECK(c.defined() && c.dim() == 0, "hypops.", op, ": c must be a 0-dim tensor, got ",
              c.defined() ? c.dim() : -1, " dims");
  TORCH_CHECK(c.is_floating_point(), "hypops.", op, ": c must be floating-point, got ", c.scalar_type());
  TORCH_CHECK(c.device() == like.device() || c.device().is_cpu(), "hypops.", op, ": c is on ", c.device(),
              " but the points are on ", like.device());
}

// Reads c on the CPU (no device to synchronise with) and rejects c <= 0 and NaN/Inf.
inline double read_c_cpu(const char* op, const at::Tensor& c) {
  const double v = c.to(at::kDouble).item<double>();
  TORCH_CHECK(v > 0 && std::isfinite(v), "hypops.", op,
              ": c must be positive and finite (c is minus the curvature), got ", v);
  return v;
}

}  // namespace hypops
