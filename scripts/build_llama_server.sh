#!/usr/bin/env bash
# Build llama.cpp's tools once per machine into DEST (argument 1): the targets named by the
# further arguments (default: llama-server and llama-export-lora, which merges a LoRA GGUF into
# its base for `qfnb models export --merge`).
#
# The source is the llama.cpp that llama-cpp-python $LLAMA_SRC_VERSION vendors (its sdist on PyPI,
# pinned), with four patches applied in this order: scripts/llama_server_lora_load.patch
# (llama-server loads LoRA adapters at runtime), scripts/llama_server_seed_invariant.patch (a seeded
# request is computed with batch-invariant CPU kernels, so it repeats beside other requests),
# scripts/llama_server_grammar_draft.patch (JSON under a schema written compact, and a request under a
# grammar drafting the text its grammar forces next) and scripts/llama_server_stream_pace.patch (a
# stream that asks for it gets its tokens a few to a chunk: the platform's pace, kept by the engine),
# compiled with the CPU flags in $LLAMA_CMAKE (set by bootstrap.sh). Static build, no web UI, no
# network at build or run time.
set -euo pipefail
DEST=$1
shift
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=(llama-server llama-export-lora); fi
: "${LLAMA_SRC_VERSION:?}" "${LLAMA_CMAKE:?}"
PY=${PYTHON:-python3}
work=$(mktemp -d)
# cmake and ninja from the system, else their PyPI wheels in the venv
if ! command -v cmake >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; then
  "$PY" -m pip install -q cmake ninja
  PATH="$(dirname "$PY"):$PATH"
fi
trap 'rm -rf "$work"' EXIT
echo "bootstrap: building ${TARGETS[*]} from llama.cpp (llama-cpp-python $LLAMA_SRC_VERSION source) once per machine (5 to 11 minutes on 2 cores)" >&2
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$LLAMA_SRC_VERSION" 2>/dev/null
tar xzf "$work"/llama_cpp_python-"$LLAMA_SRC_VERSION".tar.gz -C "$work"
src="$work/llama_cpp_python-$LLAMA_SRC_VERSION/vendor/llama.cpp"
for p in llama_server_lora_load llama_server_seed_invariant llama_server_grammar_draft llama_server_stream_pace; do
  patch -p1 --forward --batch --quiet -d "$src" < "$(dirname "$0")/$p.patch"
done
# shellcheck disable=SC2086  # LLAMA_CMAKE is a list of flags
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF $LLAMA_CMAKE >"$work/cmake.log"
# BUILD_LOG: where the compile steps are logged (ninja's "[step/steps]" lines show the progress)
build_log=${BUILD_LOG:-$work/build.log}
cmake --build "$work/build" --target "${TARGETS[@]}" -j "$(nproc)" >>"$build_log" \
  || { tail -40 "$build_log" >&2; exit 1; }
mkdir -p "$DEST"
for t in "${TARGETS[@]}"; do
  install -m 0755 "$work/build/bin/$t" "$DEST/$t.tmp"
  mv "$DEST/$t.tmp" "$DEST/$t"
done
cp "$src/LICENSE" "$DEST/LICENSE"
"$DEST/${TARGETS[0]}" --version >&2 || true
