#!/usr/bin/env bash
# Runs every test in ./.venv (set it up first: bash scripts/setup.sh). Extra arguments go to both pytest runs.
#  1. pytest: native (C++) and torch backends, every dtype, against the float64 reference, geoopt, mpmath.
#  2. pytest again with TRITON_INTERPRET=1: the Triton kernels on CPU tensors through Triton's interpreter
#     (TRITON_INTERPRET must be set before triton is imported, hence a second process).
#  3. GPU code that cannot run here is compiled: every Triton kernel for sm_90 (scripts/check_triton_gpu.py)
#     and every csrc/cuda/*.cu with nvcc for sm_80/sm_90 (scripts/check_cuda.sh; skipped, with a message,
#     where nvcc is missing).
# Pytest's exit code 5 ("no tests collected") counts as a failure: a run that tests nothing is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
fail=0

run_pytest() {
  "$PY" -m pytest -q "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; rc=1; fi
  [ $rc -eq 0 ] || fail=1
}

echo "== pytest: native and torch backends"
run_pytest tests "$@"
echo "== pytest: triton backend (interpreter)"
TRITON_INTERPRET=1 HYPOPS_TEST_BACKENDS=triton run_pytest tests -k triton "$@"
echo "== Triton kernels compile for sm_90"
"$PY" scripts/check_triton_gpu.py || fail=1
if command -v "${NVCC:-nvcc}" >/dev/null; then
  echo "== CUDA sources compile for sm_80/sm_90"
  bash scripts/check_cuda.sh || fail=1
else
  echo "== CUDA compile check skipped: nvcc not found"
fi
[ $fail -eq 0 ] && echo "test.sh: all passed" || echo "test.sh: FAILED" >&2
exit $fail
