#!/usr/bin/env bash
# Idempotent setup: a virtualenv (unless one is active), CPU torch first, the package with its test, train and
# onnx extras in editable mode, then the default model. Safe to re-run; works with CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=.venv/bin/python
fi
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# torch first, pinned to the CPU wheel available on this machine kind: installed afterwards as a
# dependency, pip would resolve the newest CUDA build (gigabytes of wheels).
"$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || "${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[test,train,onnx]"
"$PY" -m splade_anserini.models splade-tiny >/dev/null
echo "setup done: $PY"
