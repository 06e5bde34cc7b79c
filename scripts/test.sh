#!/usr/bin/env bash
# Run the whole test suite (installs what it needs first): lint and type checks, then pytest with
# the real-model and browser tests included. Extra args go to one pytest run (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The run starts hundreds of Python processes (workers, daemons, kernels). Where
# PYTHONDONTWRITEBYTECODE is set (as in CI's image), each would compile torch, pandas and qfnb
# from source again (importing that stack: 11.9 s, from bytecode 4.5 s): let the first write it.
unset PYTHONDONTWRITEBYTECODE
# every run gets its own temporary QFNB_DATA_DIR (tests/conftest.py): ~/.qfnb is never touched
# The notebook tests run the fine-tune notebook with a 4-step training (what they check does not
# depend on the step count); the full 30-step demo, and that it teaches the fact, is checked by
# tests/lifecycle.
export QFNB_TOUR_STEPS=${QFNB_TOUR_STEPS:-4}
.venv/bin/ruff check qfnb tests bench tools
.venv/bin/python tools/generate.py --check  # the generated call surface matches its source (docs/client.md)
.venv/bin/lint-imports  # the layer contracts in pyproject.toml ([tool.importlinter])
if command -v npm >/dev/null; then bash scripts/check_labextension.sh; else echo "labextension: no node/npm here, its tsc and eslint check skipped"; fi
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ $# -gt 0 ]; then
  .venv/bin/mypy
  # tests marked slow are left out unless the args choose them: bash scripts/test.sh -m slow
  exec "${PYTEST[@]}" -m "not slow" "$@"
fi
# The suite keeps to ~15 minutes: tiny models and in-process transports for most tests, a few
# real-model and browser tests for the real path. The real-path variants beyond that budget are
# marked slow; run them with: bash scripts/test.sh -m slow   (everything: bash scripts/test.sh -m "")
# mypy (half a minute on a clean clone) checks while the in-process tests and the browser tests on
# engine doubles (no latency measured) run on three workers: on two they left a quarter of the 2 cores
# idle (waiting on kernels, browsers, subprocesses); a sample of their files took 125 s on two and
# 111 s on three. The real-model and latency (serial) tests then run one at a time, on an otherwise
# idle machine (two real-model tests side by side starve each other's engine threads: a sample of
# their files took 107 s alone and over 200 s on two workers, one test 17 s alone and 183 s beside
# another). Both phases share what is costly to start (one default-model daemon for the client tests,
# one JupyterLab a worker for the browser tests: tests/README.md).
mypy_log=$(mktemp)
.venv/bin/mypy > "$mypy_log" 2>&1 &
mypy_pid=$!
status=0
"${PYTEST[@]}" -n 3 --dist loadfile --durations=15 -m "not slow and not real_model and not serial" || status=$?
wait "$mypy_pid" || status=$?
cat "$mypy_log" && rm -f "$mypy_log"
"${PYTEST[@]}" --durations=15 -m "not slow and (real_model or serial)" || status=$?
exit "$status"
