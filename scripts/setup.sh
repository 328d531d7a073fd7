#!/usr/bin/env bash
# Idempotent setup: a virtualenv (unless one is active), torch, the package with its test, train and
# onnx extras in editable mode, then the default model. Safe to re-run; works with CI=true.
#
#   bash scripts/setup.sh                 # python3 (3.11: pyserini 1.6, Anserini 1.7, Lucene 9)
#   PYTHON=python3.12 bash scripts/setup.sh   # pyserini 2.x (Anserini 2.3, Lucene 10), in .venv312
#   PYTHON=python3.12 bash scripts/setup.sh --print-venv   # only print the virtualenv's path
#
# The Python chooses the Pyserini generation (pyproject.toml's environment markers): one virtualenv
# per Python, `.venv` for 3.11 and `.venvXY` for any other (`.venv312`, `.venv313`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
MINOR="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
case "$MINOR" in
  3.11) VENV=.venv ;;
  3.12|3.13) VENV=".venv${MINOR/./}" ;;
  *) echo "error: $PYTHON is Python $MINOR; splade-anserini needs 3.11 (pyserini 1.6) or 3.12/3.13 (pyserini 2.x)" >&2
     exit 2 ;;
esac
if [ "${1:-}" = "--print-venv" ]; then
  echo "$VENV"
  exit 0
fi

if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PY="$VENV/bin/python"
fi
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# Python 3.11: torch first, pinned to the CPU wheel available on this machine kind: installed afterwards
# as a dependency, pip would resolve the newest CUDA build (gigabytes of wheels). Python >= 3.12 takes
# the registry's standard torch build as a dependency of the package (pyserini 2.x needs torch >= 2.9).
if [ "$MINOR" = 3.11 ]; then
  "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
    || "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -e ".[test,train,onnx,milvus,server]"
# ciff-toolkit (reads CIFF back in the tests) pins protobuf < 5, pymilvus needs >= 5; its generated code runs
# on the newer protobuf, so it is installed without its pins.
"${PIP[@]}" --no-deps "ciff-toolkit==0.2.2"
# The page's browser test drives Debian's chromium (never a browser Playwright downloads): installed when
# missing and this runs as root or in CI with sudo; elsewhere that test skips and says why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif [ "${CI:-}" = true ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=-; fi
  if [ "$SUDO" != - ]; then
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
  fi
fi
"$PY" -m splade_anserini.models splade-tiny >/dev/null
"$PY" -m splade_anserini.java --version
echo "setup done: $PY"
