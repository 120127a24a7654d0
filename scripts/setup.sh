#!/usr/bin/env bash
# Sets up everything hypops needs in ./.venv: a virtual environment, torch (the CPU build where no torch
# is installed yet), the build tools, and hypops itself (editable, with its C++ extension) plus the
# test, io and viz extras. Safe to run again: what is there is kept, the extension is rebuilt if changed.
#
# Environment:
#   PYTHON              interpreter for the venv (default: python3)
#   HYPOPS_TORCH        torch requirement installed when the venv has none (default: torch==2.13.0)
#   HYPOPS_TORCH_INDEX  index URL for it, e.g. https://download.pytorch.org/whl/cpu for the CPU build
#                       where the default index would serve a CUDA one
#   HYPOPS_CUDA         AUTO (default) | ON | OFF: build the CUDA kernels (AUTO: when nvcc and a CUDA torch exist)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)

# torch first: anything that depends on torch (geoopt) would otherwise pull a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing ${HYPOPS_TORCH:-torch==2.13.0}"
  "${PIP[@]}" install -q "${HYPOPS_TORCH:-torch==2.13.0}" ${HYPOPS_TORCH_INDEX:+--index-url "$HYPOPS_TORCH_INDEX"}
fi
# Build tools (the extension is built against the installed torch: --no-build-isolation), and triton
# pinned to the version torch 2.13/2.14 expect (an unpinned one downloads a newer release).
"${PIP[@]}" install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja numpy "triton==3.8.0"
"${PIP[@]}" install -q --no-build-isolation -e ".[test,io,viz]"
"$VENV/bin/python" -c "import hypops, sys; sys.exit(0 if hypops._backend.native_error is None else 1)" \
  || { echo "setup: the hypops extension did not build or load" >&2; exit 1; }
echo "setup: done ($("$VENV/bin/python" -c 'import torch, hypops; print("torch", torch.__version__, "hypops", hypops.__version__)'))"
