"""GPU benchmark of the pointwise ops: achieved memory bandwidth of each backend (native CUDA, Triton,
the torch reference) against the device's peak and against x.clone().

Run on a machine with an NVIDIA GPU:  python benchmarks/bench_gpu.py [--rows 1048576 --dim 64 --dtype float32]
Timing: triton.testing.do_bench (median of repeated launches, L2 flushed between them). Bytes moved are
the compulsory traffic of each op (every input row read once, every output written once), so GB/s here
is comparable to the bandwidth floor; backward counts grad + inputs read and input-gradients written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

# Nominal peak DRAM bandwidth (GB/s) by device-name substring; used only to print a fraction of peak.
NOMINAL_PEAK_GBPS = {"H100 SXM": 3350, "H100 PCIe": 2000, "H100": 3350, "H200": 4800, "A100-SXM4-80GB": 2039,
                     "A100-SXM4-40GB": 1555, "A100": 1555, "L40S": 864, "RTX 4090": 1008}


def nominal_peak(name: str):
    for key, gbps in NOMINAL_PEAK_GBPS.items():
        if key in name:
            return gbps
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1 << 20)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device; nothing to measure", file=sys.stderr)
        return 1
    import triton.testing

    import hypops

    dtype = getattr(torch, args.dtype)
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    N, D = args.rows, args.dim
    x = (torch.randn(N, D, device=dev, generator=g) * 0.5 / D**0.5).to(dtype)
    y = (torch.randn(N, D, device=dev, generator=g) * 0.5 / D**0.5).to(dtype)
    a = torch.randn(N, D, device=dev, generator=g).to(dtype)
    esz = x.element_size()
    row_bytes = N * D * esz
    ops = {  # name: (callable(backend), inputs, bytes forward)
        "expmap0": (lambda b: hypops.expmap0(x, backend=b), 2 * row_bytes),
        "logmap0": (lambda b: hypops.logmap0(x, backend=b), 2 * row_bytes),
        "project": (lambda b: hypops.project(x, backend=b), 2 * row_bytes),
        "mobius_add": (lambda b: hypops.mobius_add(x, y, backend=b), 3 * row_bytes),
        "expmap": (lambda b: hypops.expmap(x, y, backend=b), 3 * row_bytes),
        "logmap": (lambda b: hypops.logmap(x, y, backend=b), 3 * row_bytes),
        "dist": (lambda b: hypops.dist(x, y, backend=b), 2 * row_bytes + N * esz),
        "dist2plane": (lambda b: hypops.dist2plane(x, y, a, signed=True, backend=b), 3 * row_bytes + N * esz),
    }
    name = torch.cuda.get_device_name()
    peak = nominal_peak(name)
    clone_ms = triton.testing.do_bench(lambda: x.clone())
    clone_gbps = 2 * row_bytes / clone_ms / 1e6
    rows = []
    for op, (fn, nbytes) in ops.items():
        for backend in ("native", "triton", "torch"):
            why = hypops._backend.reasons(backend, op, dev)
            if why:
                rows.append({"op": op, "backend": backend, "skipped": "; ".join(why)})
                continue
            ms = triton.testing.do_bench(lambda: fn(backend))
            gbps = nbytes / ms / 1e6
            rows.append({"op": op, "backend": backend, "ms": ms, "GB/s": gbps, "vs_clone": gbps / clone_gbps,
                         "vs_peak": gbps / peak if peak else None})
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"device: {name}; torch {torch.__version__}; triton {triton.__version__}; git {sha}; {N}x{D} {args.dtype}")
    print(f"clone: {clone_ms:.3f} ms = {clone_gbps:.0f} GB/s" + (f" ({clone_gbps / peak:.0%} of nominal {peak} GB/s)" if peak else ""))
    print("| op | backend | ms | GB/s | of clone's bandwidth | of nominal peak |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['op']} | {r['backend']} | — | — | — | skipped: {r['skipped']} |")
        else:
            vp = f"{r['vs_peak']:.0%}" if r["vs_peak"] else "n/a"
            print(f"| {r['op']} | {r['backend']} | {r['ms']:.3f} | {r['GB/s']:.0f} | {r['vs_clone']:.0%} | {vp} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "clone_gbps": clone_gbps, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
