#!/usr/bin/env bash
# Main-loop stall benchmark in a real Blender with a window (scripts/bench_gui.py), ours beside
# a baseline doing HTTP on the main thread. Needs the real Blender (scripts/real_blender.sh).
set -euo pipefail
export BLENDER_VERSION=real
source "$(dirname "$0")/_provision.sh"
cd "$REPO"
unset PYTHONPATH
"$PY" scripts/bench_gui.py "$@"
