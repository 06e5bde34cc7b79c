#!/usr/bin/env bash
# The main job: run the tour notebooks end to end on the embedded local platform and
# write HTML reports to artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
# a first run does not wait for the llama-server build: a prebuilt one serves while it builds in the
# background (scripts/prebuilt_llama_server.sh)
QFNB_BUILD_IN_BACKGROUND=1 bash scripts/bootstrap.sh
# The run starts hundreds of Python processes (workers, daemons, kernels). Where
# PYTHONDONTWRITEBYTECODE is set (as in CI's image), each would compile torch, pandas and qfnb
# from source again (importing that stack: 11.9 s, from bytecode 4.5 s): let the first write it.
unset PYTHONDONTWRITEBYTECODE
mkdir -p artifacts
# The kernels talk to nbconvert over Unix sockets (IPC), not TCP: nothing to eavesdrop on, and no
# "Kernel is running over TCP without encryption" warning in the run's log. The sockets' path is
# absolute, in a private folder: a kernel runs in its notebook's folder, nbconvert here, and a
# relative path (jupyter_client's default) names two different sockets ("Kernel didn't respond").
ipc_dir=$(mktemp -d)
trap 'rm -rf "$ipc_dir"' EXIT
for nb in notebooks/*.ipynb; do
  bash scripts/prebuilt_llama_server.sh --progress .venv
  echo "running $nb"
  .venv/bin/python -m jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=1800 \
    --KernelManager.transport=ipc --KernelManager.ip="$ipc_dir/kernel" --output-dir artifacts "$nb"
done
bash scripts/prebuilt_llama_server.sh --progress .venv
echo "reports written to artifacts/"
