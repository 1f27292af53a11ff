#!/usr/bin/env bash
# Set up xfuxi from nothing: a virtual environment in .venv with every extra installed.
# torch 2.13.0 (CPU) goes in first so that nothing pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "xfuxi needs Python >= 3.11; $PY is $("$PY" --version 2>&1): set PYTHON=python3.11 (or newer)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[world,viz,accel,dask,test,grib,regrid,docs,notebook]"
# onnx2torch would replace torch if its dependencies were resolved: install it alone.
python -m pip install -q onnx >/dev/null 2>&1 && python -m pip install -q --no-deps onnx2torch >/dev/null 2>&1 || true
