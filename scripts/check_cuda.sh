#!/usr/bin/env bash
# Compile-checks every csrc/cuda/*.cu with nvcc: compile only (-c), device code for sm_80 and sm_90
# (one nvcc call per file, two -gencode flags, so ptxas runs for both), against the headers of the torch
# installed in ./.venv. Prints one line per file; exits non-zero if any file fails.
#
# Why this route: our machines have nvcc but no GPU and a CPU build of torch, and CMake builds the CUDA
# sources only against a CUDA torch (HYPOPS_CUDA=AUTO skips them here). This compiles the real sources
# against the real torch headers (the CPU wheel ships ATen/cuda and c10/cuda headers too), with the
# flags the CMake build uses (-O3 -DNDEBUG -std=c++17, and --expt-relaxed-constexpr /
# --expt-extended-lambda, which torch's CMake config adds to every CUDA target), so syntax, templates,
# host/device annotations, the torch API and register pressure (ptxas) are all checked. What it cannot
# do: link (no libtorch_cuda, no libcuda) or run anything — correctness on a GPU is left to
# tests/test_cuda.py on a machine that has one.
#
# The CPU wheel lacks one generated header, c10/cuda/impl/cuda_cmake_macros.h; a shim directory
# provides it (C10_CUDA_BUILD_SHARED_LIBS, as in the CUDA wheels).
#
# Usage: bash scripts/check_cuda.sh [file.cu ...]   (default: every csrc/cuda/*.cu; 2 in parallel)
set -uo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
NVCC=${NVCC:-nvcc}
command -v "$NVCC" >/dev/null || { echo "check_cuda.sh: nvcc not found" >&2; exit 1; }
[ -x "$PY" ] || { echo "check_cuda.sh: $PY not found (run scripts/setup.sh first)" >&2; exit 1; }

TORCH_INC=$("$PY" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'include'))") || exit 1
PY_INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])") || exit 1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/shim/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$WORK/shim/c10/cuda/impl/cuda_cmake_macros.h"

# Torch and Python headers go in with -isystem: that silences their warnings (host compiler and
# cudafe alike), while our own sources keep every warning.
FLAGS=(-c -std=c++17 -O3 -DNDEBUG -DHYPOPS_WITH_CUDA=1 -Xcompiler=-fPIC
  --expt-relaxed-constexpr --expt-extended-lambda
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
  -I csrc -isystem "$WORK/shim" -isystem "$TORCH_INC" -isystem "$TORCH_INC/torch/csrc/api/include"
  -isystem "$PY_INC")

if [ $# -gt 0 ]; then FILES=("$@"); else FILES=(csrc/cuda/*.cu); fi
[ ${#FILES[@]} -gt 0 ] && [ -e "${FILES[0]}" ] || { echo "check_cuda.sh: no .cu files" >&2; exit 1; }

export NVCC WORK
export FLAGS_STR
FLAGS_STR=$(printf '%q ' "${FLAGS[@]}")
check_one() {
  local f=$1 name log t0 t1
  name=$(basename "$f" .cu)
  log="$WORK/$name.log"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  if eval "\"$NVCC\" $FLAGS_STR -o \"$WORK/$name.o\" \"$f\"" >"$log" 2>&1; then
    t1=$(date +%s)
    if grep -q "warning" "$log"; then
      echo "ok    $f ($((t1 - t0)) s, with warnings:)"
      sed 's/^/      /' "$log"
    else
      echo "ok    $f ($((t1 - t0)) s)"
    fi
  else
    t1=$(date +%s)
    echo "FAIL  $f ($((t1 - t0)) s)"
    sed 's/^/      /' "$log"
    return 1
  fi
}
export -f check_one

start=$(date +%s)
printf '%s\n' "${FILES[@]}" | xargs -P "${JOBS:-2}" -I{} bash -c 'check_one "$@"' _ {}
rc=$?
echo "check_cuda.sh: ${#FILES[@]} file(s) in $(($(date +%s) - start)) s: $([ $rc -eq 0 ] && echo all compiled || echo FAILURES)"
[ $rc -eq 0 ] || exit 1
