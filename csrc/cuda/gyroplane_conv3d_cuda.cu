// Gyroplane 3D convolution on CUDA: the tiled (output voxels x offsets) loop of gyroplane-bank calls in
// csrc/common/gyroplane_conv3d.h, whose steps run the CUDA bank kernels (csrc/cuda/gyroplane_bank_cuda.cu:
// cuBLAS GEMMs + the per-pair dist2plane kernel) on the current stream. Nothing is read back to the host.
#include <torch/library.h>

#include "common/gyroplane_conv3d.h"

namespace hypops {

TORCH_LIBRARY_IMPL(hypops, CUDA, m) {
  m.impl("gyroplane_conv3d", &conv3d::forward);
  m.impl("gyroplane_conv3d_backward", &conv3d::backward);
}

}  // namespace hypops
