// Run-time choice of the per-ISA kernels (csrc/cpu/simd/). Built with the baseline flags like every
// other TU; it only reads CPUID (through gcc's __builtin_cpu_supports) and hands out function tables.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/simd/bank_kernels.h"
#include "cpu/simd/row_kernels.h"

namespace hypops {
namespace simd {
namespace {

// "scalar": no table functions; gyroplane_bank_cpu.cpp then runs its plain per-pair loop on libm (the
// code before vectorisation), kept as the reference the tests and benchmarks compare the tables with.
const BankKernels scalar_kernels = {"scalar"};  // every function pointer null
// Likewise for the row kernels (cpu/rowwise.h, dist_cpu.cpp, dist2plane_cpu.cpp): their plain per-row
// loops on libm and Dual<double>.
const RowKernels scalar_row_kernels = {"scalar"};  // every function pointer null
// "scalar-avx2": the same plain loops, run inside the AVX2+FMA sweeps as the AVX2 kernels run their sweeps
// (cpu/rows.h; so the per-row formulas, where gcc inlines them there, are compiled with FMA too and differ
// from "scalar" by ulps). The reference for the AVX2 and AVX-512 kernels in tests: the AVX-512 kernels' sweeps
// run in AVX-512 code but keep the same 32-byte vectors and FMA in their reductions, so the float reductions
// are the same on both sides, which leaves only the per-row stage to compare.
const BankKernels scalar_avx2_kernels = {"scalar-avx2"};  // every function pointer null
RowKernels scalar_avx2_rows() {
  RowKernels k{"scalar-avx2"};
  k.sweeps = SweepIsa::avx2;
  return k;
}
const RowKernels scalar_avx2_row_kernels = scalar_avx2_rows();

// One instruction set's tables, chosen together.
struct Isa {
  const BankKernels* bank;
  const RowKernels* rows;
};
const Isa kScalar{&scalar_kernels, &scalar_row_kernels};
const Isa kScalarAvx2{&scalar_avx2_kernels, &scalar_avx2_row_kernels};
const Isa kBaseline{&isa_baseline::kernels, &isa_baseline::row_kernels};
const Isa kAvx2{&isa_avx2::kernels, &isa_avx2::row_kernels};
const Isa kAvx512{&isa_avx512::kernels, &isa_avx512::row_kernels};

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

const Isa* choose(const char* name) {
  // The default: AVX-512 where the CPU has it (in one process, against AVX2: the gyroplane bank's forward
  // 1.25x and backward 1.1x faster at D = P = 32; the row ops' per-row stage within noise, their sweeps in
  // AVX-512 code 1.01-1.33x in backward in cache, cpu/rows.h), else AVX2+FMA, else baseline.
  if (name == nullptr || std::strcmp(name, "best") == 0) {
    return cpu_has_avx512() ? &kAvx512 : cpu_has_avx2_fma() ? &kAvx2 : &kBaseline;
  }
  if (std::strcmp(name, "avx2") == 0) return cpu_has_avx2_fma() ? &kAvx2 : &kBaseline;
  if (std::strcmp(name, "avx512") == 0) return cpu_has_avx512() ? &kAvx512 : nullptr;
  if (std::strcmp(name, "baseline") == 0) return &kBaseline;
  if (std::strcmp(name, "scalar") == 0) return &kScalar;
  if (std::strcmp(name, "scalar-avx2") == 0) return cpu_has_avx2_fma() ? &kScalarAvx2 : nullptr;
  return nullptr;
}

std::atomic<const Isa*>& current() {
  static std::atomic<const Isa*> k{[] {
    const Isa* c = choose(std::getenv("HYPOPS_CPU_KERNELS"));
    return c ? c : choose(nullptr);  // an unknown value: the best the CPU runs
  }()};
  return k;
}

}  // namespace

const BankKernels& bank_kernels() { return *current().load(std::memory_order_relaxed)->bank; }
const RowKernels& row_kernels() { return *current().load(std::memory_order_relaxed)->rows; }
const char* kernels_name() { return bank_kernels().name; }

bool set_kernels(const char* name) {
  if (std::strcmp(name, "avx2") == 0 && !cpu_has_avx2_fma()) return false;
  const Isa* k = choose(name);
  if (k == nullptr) return false;
  current().store(k, std::memory_order_relaxed);
  return true;
}

}  // namespace simd
}  // namespace hypops
