# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: provisions everything this project needs on a
# machine with nothing installed by hand, idempotently (a stamp file makes the second run fast).
#
# Inputs (environment):
#   BLENDER_EXECUTABLE  a real Blender (4.2+) to use; when unset, Blender comes from PyPI as the
#                       `bpy` module and a `blender`-compatible launcher is put in the venv.
#   BLENDER_VERSION     which bpy to install when no real Blender is given: 4.5 (default), 4.2, 5.0
#                       or an exact version such as 4.5.15.
# Outputs (exported): REPO, VENV, PY (venv python), BLENDER (the blender command to run),
#                     TRIPO_EXTENSION_ZIP (the built extension).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO

case "${BLENDER_VERSION:-4.5}" in
  4.2) BPY_VERSION=4.2.23 ;;
  4.5) BPY_VERSION=4.5.15 ;;
  5.0) BPY_VERSION=5.0.1 ;;
  *.*.*) BPY_VERSION="$BLENDER_VERSION" ;;
  *) echo "BLENDER_VERSION must be 4.2, 4.5, 5.0 or an exact bpy version, not '$BLENDER_VERSION'" >&2; exit 2 ;;
esac

# Our own launcher (exported by an earlier provisioning in this shell) is not a real Blender.
case "${BLENDER_EXECUTABLE:-}" in "$REPO/.venv/"*) unset BLENDER_EXECUTABLE ;; esac

if [ -n "${BLENDER_EXECUTABLE:-}" ]; then
  VENV="$REPO/.venv/real-blender"
else
  VENV="$REPO/.venv/bpy-$BPY_VERSION"
fi
export VENV
PY="$VENV/bin/python"
export PY

# bpy 4.2–5.0 is built for CPython 3.11 only.
pick_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Python 3.11 is required (bpy from PyPI is built for it)" >&2
  return 1
}

requirements="$REPO/scripts/requirements-dev.txt"
stamp_wanted="$(cat "$requirements"; echo "bpy=${BLENDER_EXECUTABLE:-$BPY_VERSION}")"
stamp_file="$VENV/.provisioned"
if [ ! -f "$stamp_file" ] || [ "$(cat "$stamp_file")" != "$stamp_wanted" ]; then
  echo "[provision] creating $VENV" >&2
  [ -x "$PY" ] || "$(pick_python)" -m venv "$VENV"
  pip_log="$VENV/pip.log"
  bpy_requirement=()
  [ -z "${BLENDER_EXECUTABLE:-}" ] && bpy_requirement=("bpy==$BPY_VERSION")
  if ! "$PY" -m pip install -r "$requirements" "${bpy_requirement[@]}" >"$pip_log" 2>&1; then
    cat "$pip_log" >&2
    exit 1
  fi
  printf '%s' "$stamp_wanted" > "$stamp_file"
fi

if [ -n "${BLENDER_EXECUTABLE:-}" ]; then
  BLENDER="$BLENDER_EXECUTABLE"
  # A real Blender runs its own Python: give it pytest (into a folder of ours, not its install)
  # and let it see that folder through PYTHONPATH (tests pass --python-use-system-env).
  site="$VENV/blender-site"
  if [ ! -f "$site/.provisioned" ]; then
    blender_py="$("$BLENDER" -b --factory-startup --python-expr 'import sys; print("PYEXE=" + sys.executable)' 2>/dev/null | sed -n 's/^PYEXE=//p' | head -n1)"
    "$blender_py" -m ensurepip >/dev/null 2>&1 || true
    "$blender_py" -m pip install --quiet --target "$site" pytest
    touch "$site/.provisioned"
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
  # A `blender`-compatible launcher over the bpy module (see scripts/blender_launcher.py).
  BLENDER="$VENV/bin/blender"
  launcher_body="#!/bin/sh
exec \"$PY\" \"$REPO/scripts/blender_launcher.py\" \"\$@\""
  if [ ! -x "$BLENDER" ] || [ "$(cat "$BLENDER")" != "$launcher_body" ]; then
    printf '%s\n' "$launcher_body" > "$BLENDER"
    chmod +x "$BLENDER"
  fi
fi
export BLENDER
export BLENDER_EXECUTABLE="$BLENDER"
export PATH="$VENV/bin:$PATH"

# Build the installable extension zip (skipped when nothing changed since the last build).
TRIPO_EXTENSION_ZIP="$("$PY" "$REPO/scripts/build_extension.py" --blender "$BLENDER" --quiet)"
export TRIPO_EXTENSION_ZIP
