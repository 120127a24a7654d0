// Gyroplane 3D convolution on the CPU: the tiled (output voxels x offsets) loop of gyroplane-bank calls in
// csrc/common/gyroplane_conv3d.h, whose steps run the CPU bank kernel (csrc/cpu/gyroplane_bank_cpu.cpp:
// two GEMMs + the per-pair dist2plane map). The driver itself is device-agnostic ATen code.
#include <torch/library.h>

#include "common/gyroplane_conv3d.h"

namespace hypops {

TORCH_LIBRARY_IMPL(hypops, CPU, m) {
  m.impl("gyroplane_conv3d", &conv3d::forward);
  m.impl("gyroplane_conv3d_backward", &conv3d::backward);
}

}  // namespace hypops
