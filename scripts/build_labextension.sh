#!/usr/bin/env bash
# Rebuild the prebuilt JupyterLab 4 / Notebook 7 extension (qfnb/notebook/labextension/, committed)
# from its source in labextension/. Needs node and npm; installing qfnb, its tests and CI do not:
# they use the committed build. Only @jupyterlab/builder is installed (in a temporary folder):
# @jupyterlab/notebook is JupyterLab's own, shared at run time and never bundled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CORE=$("$PY" -c "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))")
BUILDER=$(node -p "require('./labextension/package.json').devDependencies['@jupyterlab/builder']")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r labextension "$work/labextension"
rm -rf "$work/labextension/node_modules"
(cd "$work" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
  "@jupyterlab/builder@$BUILDER")
(cd "$work/labextension" && node ../node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$CORE" .)
rm -rf qfnb/notebook/labextension
cp -r "$work/qfnb/notebook/labextension" qfnb/notebook/labextension
echo "built: $(ls qfnb/notebook/labextension/static)"
