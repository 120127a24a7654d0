"""Every benchmark script runs at toy size (its --quick mode checks each candidate against the float64
reference before timing it), so the benchmarks never rot. Timing numbers are not asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script",
    ["bench_pointwise.py", "bench_gyroplane_bank.py", "bench_gyroplane_conv3d.py", "bench_wrapped_normal.py",
     "bench_kmeans.py", "bench_train_step.py", "bench_segment.py"],
)
def test_benchmark_script_quick_run(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert any(h in proc.stdout for h in ("| op |", "| D |", "| case |", "| N |", "| size |"))  # it printed its table


def test_gpu_benchmark_says_why_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bench_gpu.py measures instead")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1 and "no CUDA device" in proc.stderr
