#!/usr/bin/env bash
# Runs the test suite in ./.venv (set it up first: bash scripts/setup.sh). Extra arguments go to pytest.
# Pytest's exit code 5 ("no tests collected") counts as a failure: a suite that runs nothing is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest)

"${PYTEST[@]}" -q "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; exit 1; fi
exit $rc
