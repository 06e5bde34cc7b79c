#!/usr/bin/env bash
# Set up everything qfnb needs on a fresh machine: a virtualenv in .venv with qfnb and
# all its extras installed (torch from the local CPU wheel), and Chromium for the
# browser tests. Idempotent: a second run only checks the stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.qfnb-installed"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q -U pip wheel
  # torch is pinned and named in the same command so pip takes the local CPU wheel.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".[all,dev]"
  echo "$want" > "$STAMP"
fi

if [ "${QFNB_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "bootstrap: could not install chromium; browser tests will be skipped" >&2
  fi
fi
