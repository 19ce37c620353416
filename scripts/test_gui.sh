#!/usr/bin/env bash
# The GUI tier: a real Blender 4.3.2 with a window on Xvfb, driven as a person would (see
# tests/gui/). Provisions the real Blender (scripts/real_blender.sh, needs root) and the extension
# zip, then runs the scenarios from the host's Python. Screenshots: out/gui-screenshots/<test>/.
# Where the real Blender cannot be provisioned it says why and exits 0 without running (skipped).
# Extra arguments go to pytest, e.g. ./scripts/test_gui.sh -k autosave
set -uo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
"$REPO/scripts/real_blender.sh" >/dev/null
status=$?
if [ $status -eq 3 ] && [ "${TRIPO_REQUIRE_REAL_BLENDER:-0}" != 1 ]; then
  echo "[gui] SKIPPED: the real Blender could not be provisioned here (reason above)" >&2
  exit 0
fi
[ $status -eq 0 ] || exit $status
set -e
export BLENDER_VERSION=real
source "$REPO/scripts/_provision.sh"
cd "$REPO"
export TRIPO_REAL_BLENDER="$BLENDER_EXECUTABLE"
unset PYTHONPATH  # that folder holds pytest for Blender's Python, not for ours
"$PY" -m pytest -p no:pytest-blender tests/gui "$@"
