#!/usr/bin/env bash
# Set up (if needed) and run the main job: the xfuxi demo on the embedded Held–Suarez world.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/xfuxi demo --output demo_output --overwrite "$@"
