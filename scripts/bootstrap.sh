#!/usr/bin/env bash
# Set up everything qfnb needs on a fresh machine: a virtualenv in .venv with qfnb and
# all its extras installed (torch from the local CPU wheel), and Chromium for the
# browser tests. Idempotent: a second run only checks the stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.qfnb-installed"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# llama.cpp is compiled once per machine into our own wheel folder, keyed by its build
# flags, and installed from there so pip's generic wheel cache never hands back another
# build. Flags: AVX-512 (VNNI/BF16) for speed, and no AMX: the AMX kernels of a
# -march=native build segfault on these CPUs.
LLAMA_VERSION=0.3.36
LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if ! grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
WHEELS=${QFNB_WHEEL_DIR:-$HOME/.cache/qfnb-wheels}/llama-$(echo "$LLAMA_VERSION $LLAMA_CMAKE" | sha256sum | cut -c1-12)
want=$(cat pyproject.toml scripts/bootstrap.sh <(echo "$LLAMA_CMAKE") | sha256sum | cut -c1-16)

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q -U pip wheel
  if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl >/dev/null 2>&1; then
    echo "bootstrap: compiling llama-cpp-python $LLAMA_VERSION once (about 6 minutes)" >&2
    CMAKE_ARGS="$LLAMA_CMAKE" "$VENV/bin/python" -m pip wheel -q --no-cache-dir --no-deps \
      -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl
  # torch is pinned and named in the same command so pip takes the local CPU wheel.
  "$VENV/bin/python" -m pip install -q --find-links "$WHEELS" "torch==2.13.0" -e ".[all,dev]"
  echo "$want" > "$STAMP"
fi

if [ "${QFNB_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "bootstrap: could not install chromium; browser tests will be skipped" >&2
  fi
fi
