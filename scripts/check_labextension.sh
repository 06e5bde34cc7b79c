#!/usr/bin/env bash
# Type-check (tsc --noEmit, strict) and lint (eslint, typescript-eslint's type-aware rules) the
# JupyterLab extension's TypeScript in labextension/src, against the @jupyterlab/* types its
# package.json names. Needs node and npm (and the npm registry the first time: the packages are
# installed in labextension/node_modules, ignored by git, and reused while package.json is unchanged).
set -euo pipefail
cd "$(dirname "$0")/../labextension"
if [ ! -f node_modules/.qfnb-installed ] || [ package.json -nt node_modules/.qfnb-installed ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error
  touch node_modules/.qfnb-installed
fi
./node_modules/.bin/tsc --noEmit -p .
./node_modules/.bin/eslint src
echo "labextension: tsc --noEmit and eslint clean"
