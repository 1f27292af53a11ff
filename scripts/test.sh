#!/usr/bin/env bash
# Set up (if needed) and run the test suite (slow tests excluded; pass -m "" to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
