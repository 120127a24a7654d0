"""Compiles every hypops Triton kernel for an NVIDIA Hopper GPU (sm_90) without a GPU.

Triton's interpreter (how the tests run the kernels on CPU) executes the Python semantics but not the
compiler: a construct the compiler rejects, or a libdevice call, would only fail on a real GPU. This
script lowers each kernel through Triton's compiler to PTX/cubin for every dtype and formula variant the
ops launch, and fails if any does not compile. Run without TRITON_INTERPRET.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("check_triton_gpu: unset TRITON_INTERPRET (the interpreter replaces the compiler)")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

from hypops._constants import PROJ_EPS  # noqa: E402
from hypops._triton import (  # noqa: E402
    _rowwise,
    dist,
    dist2plane,
    expmap,
    expmap0,
    gyroplane_bank,
    logmap,
    logmap0,
    mobius_add,
    project,
    wrapped_normal,
)

TARGET = GPUTarget("cuda", 90, 32)
EPS = {"fp32": PROJ_EPS[torch.float32], "fp64": PROJ_EPS[torch.float64], "bf16": PROJ_EPS[torch.bfloat16],
       "fp16": PROJ_EPS[torch.float16]}
TYPES = tuple(EPS)


def compile_kernel(kernel, storage: str, constexprs: dict) -> None:
    acc = "fp64" if storage == "fp64" else "fp32"
    sig = {}
    bank = kernel in (gyroplane_bank.bank_fwd_kernel, gyroplane_bank.bank_bwd_kernel)
    for name in kernel.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif not name.endswith("_ptr"):
            sig[name] = "i32"
        elif bank:  # the bank kernel reads and writes accumulation-type buffers; only its output is stored
            sig[name] = "*" + (storage if name == "out_ptr" else acc)
        else:  # c and the per-program gradient-of-c partials are in the accumulation type
            sig[name] = "*" + (acc if name in ("c_ptr", "gc_ptr") else storage)
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=constexprs)
    triton.compile(src, target=TARGET)


def main() -> int:
    jobs = []
    unary = [(project.project_coef, project.project_coef_bwd), (expmap0.expmap0_coef, expmap0.expmap0_coef_bwd),
             (logmap0.logmap0_coef, logmap0.logmap0_coef_bwd)]
    binary = [(mobius_add.mobius_add_coef, mobius_add.mobius_add_coef_bwd), (expmap.expmap_coef, expmap.expmap_coef_bwd),
              (logmap.logmap_coef, logmap.logmap_coef_bwd)]
    for st in TYPES:
        blk = {"ACC64": st == "fp64", "BLOCK_M": 16, "BLOCK_D": 64}
        for fwd, bwd in unary:
            jobs.append((_rowwise.unary_fwd_kernel, st, {**blk, "EPS": EPS[st], "COEF": fwd}))
            jobs.append((_rowwise.unary_bwd_kernel, st, {**blk, "EPS": EPS[st], "COEF_BWD": bwd}))
        for fwd, bwd in binary:
            jobs.append((_rowwise.binary_fwd_kernel, st, {**blk, "EPS": EPS[st], "COEF": fwd}))
            jobs.append((_rowwise.binary_bwd_kernel, st, {**blk, "EPS": EPS[st], "COEF_BWD": bwd}))
        jobs.append((dist.dist_fwd_kernel, st, blk))
        jobs.append((dist.dist_bwd_kernel, st, blk))
        for iso in (False, True):
            wn = {**blk, "ISO": iso}
            jobs.append((wrapped_normal.rsample_fwd_kernel, st, {**wn, "EPS": EPS[st]}))
            jobs.append((wrapped_normal.rsample_bwd_kernel, st, {**wn, "EPS": EPS[st]}))
            jobs.append((wrapped_normal.log_prob_fwd_kernel, st, wn))
            jobs.append((wrapped_normal.log_prob_bwd_kernel, st, wn))
        for signed, scaled in itertools.product([False, True], repeat=2):
            flags = {"SIGNED": signed, "SCALED": scaled}
            jobs.append((dist2plane.dist2plane_fwd_kernel, st, {**blk, **flags}))
            jobs.append((dist2plane.dist2plane_bwd_kernel, st, {**blk, **flags}))
            if st in ("fp32", "fp64"):
                bank = {"ACC64": st == "fp64", "BLOCK": gyroplane_bank.BLOCK, **flags}
                jobs.append((gyroplane_bank.bank_fwd_kernel, st, bank))
                jobs.append((gyroplane_bank.bank_bwd_kernel, st, bank))
    failed = 0
    t0 = time.time()
    for kernel, st, cx in jobs:
        label = f"{kernel.__name__}[{st}, " + ", ".join(
            f"{k}={getattr(v, '__name__', v)}" for k, v in cx.items() if k not in ("BLOCK_M", "BLOCK_D", "ACC64", "BLOCK")
        ) + "]"
        try:
            compile_kernel(kernel, st, cx)
        except Exception as e:  # report every failure, then fail
            failed += 1
            print(f"FAIL {label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    print(f"check_triton_gpu: {len(jobs) - failed}/{len(jobs)} kernel variants compiled for sm_90 in {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
