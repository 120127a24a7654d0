"""pytest-benchmark entry point for the benchmark scripts (``pytest benchmarks/ --benchmark-only``).

The project runs pytest with ``--import-mode=importlib``, which does not put this folder on sys.path;
the test_bench_*.py files import the scripts (bench_pointwise, bench_gyroplane_bank) and the harness.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
