// CPU plumbing shared by the row-wise kernels: broadcasting inputs to [N, D] row views, the
// row-parallel loop, and the per-dtype projection eps.
#pragma once

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/checks.h"
#include "common/math.h"

namespace hypops {

// Inputs broadcast to one shape and viewed as [N, D] with unit column stride. A row stride of 0 is
// kept (a broadcast row is read, never copied); anything else that cannot be viewed is copied.
struct Rows {
  std::vector<int64_t> shape;
  int64_t N = 0;
  int64_t D = 0;
  std::vector<at::Tensor> mats;
};

inline Rows make_rows(const std::vector<at::Tensor>& ts) {
  Rows r;
  std::vector<int64_t> shape = ts[0].sizes().vec();
  for (size_t i = 1; i < ts.size(); ++i) shape = at::infer_size(shape, ts[i].sizes());
  r.shape = shape;
  r.D = shape.back();
  r.N = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r.N *= shape[i];
  for (const auto& t : ts) {
    at::Tensor m = t.expand(shape).reshape({r.N, r.D});
    if (m.stride(1) != 1 && r.D > 1) m = m.contiguous();
    r.mats.push_back(m);
  }
  return r;
}

template <typename scalar_t> struct Row {
  const scalar_t* base;
  int64_t stride;
  const scalar_t* operator()(int64_t i) const { return base + i * stride; }
};
template <typename scalar_t> Row<scalar_t> row_of(const at::Tensor& m) {
  return {m.data_ptr<scalar_t>(), m.size(0) > 1 ? m.stride(0) : 0};
}

// Rows per task: enough work per task (~32K elements) that scheduling costs nothing.
inline int64_t row_grain(int64_t D) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1)); }

template <typename F> void for_rows(int64_t N, int64_t D, const F& f) {
  at::parallel_for(0, N, row_grain(D), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

// Sum over rows of f(i) (the gradient of c), accumulated in double per task.
template <typename F> double sum_rows(int64_t N, int64_t D, const F& f) {
  return at::parallel_reduce(
      0, N, row_grain(D), 0.0,
      [&](int64_t b, int64_t e, double acc) {
        for (int64_t i = b; i < e; ++i) acc += double(f(i));
        return acc;
      },
      std::plus<double>());
}

template <typename scalar_t> constexpr double proj_eps() {
  if constexpr (std::is_same_v<scalar_t, double>) return PROJ_EPS_FLOAT64;
  if constexpr (std::is_same_v<scalar_t, float>) return PROJ_EPS_FLOAT32;
  if constexpr (std::is_same_v<scalar_t, at::Half>) return PROJ_EPS_FLOAT16;
  return PROJ_EPS_BFLOAT16;
}

// Gradient of a broadcast input: reduce the [N, D] full-size gradient to the input's shape.
inline at::Tensor reduce_to(const at::Tensor& full, const std::vector<int64_t>& shape, const at::Tensor& like) {
  return full.view(shape).sum_to_size(like.sizes()).contiguous();
}

inline at::Tensor grad_c_tensor(double g, const at::Tensor& c) { return at::full({}, g, c.options()); }

#define HYPOPS_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

}  // namespace hypops
