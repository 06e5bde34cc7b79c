#!/usr/bin/env bash
# Run the whole test suite (installs what it needs first). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export QFNB_DATA_DIR=${QFNB_DATA_DIR:-$PWD/.qfnb/test-data}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
