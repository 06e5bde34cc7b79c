#!/usr/bin/env bash
# Rebuild the prebuilt JupyterLab 4 / Notebook 7 extension (qfnb/notebook/labextension/, committed)
# from its TypeScript source in labextension/src. Needs node and npm; installing qfnb, its tests and CI
# do not: they use the committed build. The packages of labextension/package.json are installed in a
# temporary folder (typescript, @jupyterlab/builder and the @jupyterlab/* types, at the versions it
# pins); tsc compiles src/ to lib/, and the builder bundles lib/. The @jupyterlab/* packages are
# JupyterLab's own, shared at run time and never bundled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CORE=$("$PY" -c "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))")
# one fixed folder: webpack's module ids follow the paths it bundles from, so the same source builds
# the same files (a random temporary folder gave each build other ids, and other file hashes)
work=/tmp/qfnb-labextension-build
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
mkdir "$work/labextension"
cp -r labextension/package.json labextension/tsconfig.json labextension/src "$work/labextension/"
(cd "$work/labextension" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error)
(cd "$work/labextension" && ./node_modules/.bin/tsc -p . \
  && node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$CORE" .)
rm -rf qfnb/notebook/labextension
cp -r "$work/qfnb/notebook/labextension" qfnb/notebook/labextension
echo "built: $(ls qfnb/notebook/labextension/static)"
