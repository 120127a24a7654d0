"""`hypops segment` end to end on N³ volumes (SPEC §7: 50³ under 2 s; 512³ under 10 minutes on 2 cores with
peak memory under 4 GiB; time linear in the voxel count).

    python benchmarks/bench_segment.py                       # 50³, 128³, 256³, 512³ (~15 min on 2 cores)
    python benchmarks/bench_segment.py --sizes 50,128,256    # skip the 512 MiB tomogram
    python benchmarks/bench_segment.py --quick               # smoke run: 24³

What is timed is ``hypops.pipeline.run_segment``, the code behind ``hypops segment``: load the checkpoint,
read the float32 MRC (memory-mapped), normalise and embed it tile by tile with the dense model, fit
PoincareKMeans at each cluster count (default 2, 4, 6) on a 200k-voxel subsample, assign every voxel, and
write ``latents.npy``, ``segmentation_k{K}.mrc`` and ``instances_k{K}.csv``.

The model is a freshly initialised dense model of the demo's width (``pipeline.DEMO_MODEL``): the time of
the encoder pass does not depend on the weights, and a trained model would only change the k-means
iterations (fitted on a fixed-size subsample, so not the scaling) and the number of instances counted. The
input is a 64³ synthetic volume (``make_toy_volume``: cells, vesicles, noise) tiled periodically to N³, so
the instance tables have realistic, not noise-sized, component counts.

Each size runs in a fresh process, with the allocator settings a user's ``hypops segment`` gets (not
``harness.MEMORY_ENV``: unmapping every freed block above 64 KiB made k-means' many medium temporaries page
fault afresh, measured 15 s -> 36-52 s at 50³). The process first segments a 16³ volume (untimed: library
loading, OpenMP start-up, first-call allocations), then resets its peak-RSS counter and times one full run.
``peak RSS`` is the process's whole resident set at its peak (VmHWM: interpreter, torch, the pages of the
memory-mapped input it touched, everything the run allocates, and freed memory glibc kept), so it bounds the
live memory from above; ``base`` is the resident set before the run. ``CPU s`` is the process's CPU time
over all its threads during the run: on a shared machine, where the wall time depends on the other jobs, it
shows the work done (on 2 idle cores the wall time would be roughly between CPU s / 2 and CPU s). The inputs
and outputs live in a temporary directory, deleted after each size.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import harness  # noqa: E402

TARGETS = {"50": 2.0, "512_seconds": 600.0, "512_peak_gib": 4.0}
GIB = 2**30


def write_checkpoint(path: Path) -> None:
    from hypops.models.vae import build_vae
    from hypops.pipeline import DEMO_MODEL, _plain

    torch.manual_seed(0)
    model = build_vae("dense", **DEMO_MODEL)
    torch.save({"model": model.state_dict(),
                "config": {"preset": "dense", "model": _plain(dataclasses.asdict(model.config))}}, path)


def write_volume(path: Path, n: int) -> None:
    """An n³ float32 MRC: a 64³ synthetic volume tiled periodically, written slab by slab (a 512³ file is
    512 MiB; it is never held whole)."""
    import mrcfile

    from hypops.data import make_toy_volume

    cell = make_toy_volume(0, size=64).volume.numpy().astype(np.float32)
    reps = -(-n // cell.shape[1])
    plane = np.tile(cell, (1, reps, reps))[:, :n, :n]
    with mrcfile.new_mmap(path, shape=(n, n, n), mrc_mode=2, overwrite=True) as mrc:
        for z0 in range(0, n, cell.shape[0]):
            z1 = min(n, z0 + cell.shape[0])
            mrc.data[z0:z1] = plane[: z1 - z0]
        mrc.voxel_size = 10.0


def worker(payload: dict) -> None:
    """One size in this fresh process: a warm-up run on a small volume, then the timed, measured run."""
    harness.set_threads(payload["threads"])
    from hypops.pipeline import run_segment

    kw = dict(checkpoint=payload["checkpoint"], clusters=payload["clusters"], tile=payload["tile"],
              progress=False)
    run_segment(data=payload["warm"], out=payload["out"] + "-warm", **kw)
    gc.collect()
    ok = harness.reset_peak_rss()
    base = harness.read_status()["VmRSS"]
    t, cpu = time.perf_counter(), time.process_time()
    written = run_segment(data=payload["data"], out=payload["out"], **kw)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    status = harness.read_status()
    harness.worker_reply({"seconds": seconds, "cpu_seconds": cpu, "seconds_after_load": written["seconds"],
                          "peak_rss": status["VmHWM"] if ok else None, "base_rss": base,
                          "outputs": sorted(Path(p).name for k, p in written.items() if k != "seconds")})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one 24³ volume (a smoke run)")
    ap.add_argument("--sizes", default="50,128,256,512", help="volume sides, comma-separated (default 50,128,256,512)")
    ap.add_argument("--clusters", default="2,4,6", help="cluster counts (default 2,4,6, hypops segment's)")
    ap.add_argument("--checkpoint", default=None, help="a dense model.pt to time instead of the fresh demo-width "
                    "model (a trained model changes the k-means iterations and the instance counts)")
    ap.add_argument("--tile", type=int, default=None, help="hypops segment --tile (default: its default)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tmp-dir", default=None, help="where the volumes and outputs are written (default: $TMPDIR)")
    ap.add_argument("--out-dir", default=None, help="where the result JSON goes (default bench-results/)")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_worker:
        worker(json.loads(args.memory_worker))
        return 0
    try:
        sizes = [24] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
        clusters = [int(k) for k in args.clusters.split(",") if k.strip()]
    except ValueError:
        ap.error(f"--sizes and --clusters take comma-separated integers, got {args.sizes!r} and {args.clusters!r}")
    if not sizes or min(sizes) < 1:
        ap.error(f"--sizes must list positive volume sides, got {args.sizes!r}")
    harness.set_threads(args.threads)
    info = harness.machine_info()
    rows, failures = [], []
    load = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-segment-", dir=args.tmp_dir) as tmp:
        tmp = Path(tmp)
        ckpt = Path(args.checkpoint) if args.checkpoint else tmp / "model.pt"
        if not args.checkpoint:
            write_checkpoint(ckpt)
        write_volume(tmp / "warm.mrc", 16)
        for n in sizes:
            data = tmp / f"vol{n}.mrc"
            write_volume(data, n)
            payload = {"data": str(data), "warm": str(tmp / "warm.mrc"), "checkpoint": str(ckpt),
                       "out": str(tmp / f"out{n}"), "clusters": clusters, "tile": args.tile,
                       "threads": torch.get_num_threads()}
            print(f"segmenting {n}³ in a fresh process ...", file=sys.stderr, flush=True)
            r = harness.run_worker(Path(__file__), payload, timeout=3600, memory_env=False)
            data.unlink()
            for d in (tmp / f"out{n}", tmp / f"out{n}-warm"):
                shutil.rmtree(d, ignore_errors=True)
            if "error" in r:
                failures.append(f"{n}³: {r['error']}")
                continue
            want = {"latents.npy", *(f"{p}_k{k}.{e}" for k in clusters for p, e in
                                     (("segmentation", "mrc"), ("instances", "csv")))}
            if set(r["outputs"]) != want:
                failures.append(f"{n}³: wrote {r['outputs']}, expected {sorted(want)}")
            mvox = n**3 / 1e6
            rows.append({"size": n, "mvoxels": mvox, **r, "s_per_mvoxel": r["seconds"] / mvox})
    load["after"] = os.getloadavg()
    model = args.checkpoint or "fresh dense model of the demo's width"
    print(f"# hypops segment ({model}), {torch.get_num_threads()} threads, clusters "
          f"{','.join(map(str, clusters))}\n\n{harness.format_machine(info)}\n"
          f"load average (1, 5, 15 min): before {load['before']}, after {load['after']}\n")
    print(harness.markdown_table(
        ["size", "Mvoxels", "seconds", "s / Mvoxel", "CPU s (all threads)", "peak RSS GiB", "base RSS GiB"],
        [[f"{r['size']}³", f"{r['mvoxels']:.3f}", f"{r['seconds']:.2f}", f"{r['s_per_mvoxel']:.2f}",
          f"{r['cpu_seconds']:.1f}",
          f"{r['peak_rss'] / GIB:.2f}" if r["peak_rss"] else "n/a", f"{r['base_rss'] / GIB:.2f}"] for r in rows]))
    notes = []
    by = {r["size"]: r for r in rows}
    if 50 in by:
        notes.append(f"50³: {by[50]['seconds']:.2f} s (target < {TARGETS['50']:.0f} s)")
    if 512 in by:
        notes.append(f"512³: {by[512]['seconds']:.0f} s (target < {TARGETS['512_seconds']:.0f} s), peak RSS "
                     f"{by[512]['peak_rss'] / GIB:.2f} GiB (target < {TARGETS['512_peak_gib']:.0f} GiB)")
    big = [r for r in rows if r["size"] >= 128]
    if len(big) >= 2:
        notes.append(f"linearity: s/Mvoxel at {big[-1]['size']}³ over {big[0]['size']}³ = "
                     f"{big[-1]['s_per_mvoxel'] / big[0]['s_per_mvoxel']:.2f} (1 = linear)")
    if notes:
        print("\n" + "\n".join(notes))
    out = Path(args.out_dir or harness.RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"segment{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps({"machine": info, "load": load, "clusters": clusters, "tile": args.tile,
                                "checkpoint": args.checkpoint or "fresh dense model, pipeline.DEMO_MODEL",
                                "rows": rows, "failures": failures}, default=str, indent=1))
    print(f"results: {path}")
    if failures:
        print("\nFAILURES:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
