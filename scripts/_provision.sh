# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: provisions everything this project needs on a
# machine with nothing installed by hand, idempotently (a stamp file makes the second run fast).
#
# Inputs (environment):
#   BLENDER_EXECUTABLE  a real Blender (4.2+) to use; when unset, Blender comes from PyPI as the
#                       `bpy` module and a `blender`-compatible launcher is put in the venv.
#   BLENDER_VERSION     which bpy to install when no real Blender is given: 4.5 (default), 4.2, 5.0,
#                       5.2 (needs Python 3.13) or an exact version such as 4.5.15; or `real`: the
#                       real Blender 4.3.2 of scripts/real_blender.sh (Debian trixie, needs root).
# Outputs (exported): REPO, VENV, PY (venv python), BLENDER (the blender command to run),
#                     TRIPO_EXTENSION_ZIP (the built extension).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO

# `real`: provision the real Blender and use it as BLENDER_EXECUTABLE (exit 3: not possible here).
if [ "${BLENDER_VERSION:-}" = real ]; then
  BLENDER_EXECUTABLE="$("$REPO/scripts/real_blender.sh")"
  export BLENDER_EXECUTABLE
fi

case "${BLENDER_VERSION:-4.5}" in
  real) BPY_VERSION=none ;;
  4.2) BPY_VERSION=4.2.23 ;;
  4.5) BPY_VERSION=4.5.15 ;;
  5.0) BPY_VERSION=5.0.1 ;;
  5.2) BPY_VERSION=5.2.3 ;;
  *.*.*) BPY_VERSION="$BLENDER_VERSION" ;;
  *) echo "BLENDER_VERSION must be 4.2, 4.5, 5.0, 5.2, real or an exact bpy version, not '$BLENDER_VERSION'" >&2; exit 2 ;;
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

# bpy 4.2–5.0 is built for CPython 3.11 only, bpy 5.1+ for 3.13 (pyenv provides it here).
case "$BPY_VERSION" in 4.*|5.0.*|none) WANT_PYTHON=3.11 ;; *) WANT_PYTHON=3.13 ;; esac
pick_python() {
  local pyenv_python=""
  command -v pyenv >/dev/null 2>&1 &&
    pyenv_python="$(pyenv root)/versions/$(pyenv versions --bare 2>/dev/null | grep -E "^$WANT_PYTHON[.][0-9]+\$" | sort -V | tail -n1)/bin/python$WANT_PYTHON"
  for candidate in "python$WANT_PYTHON" "$pyenv_python" python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$WANT_PYTHON'.split('.'))))" 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Python $WANT_PYTHON is required (bpy $BPY_VERSION from PyPI is built for it)" >&2
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
  # and let it see that folder through PYTHONPATH (tests pass --python-use-system-env). pytest is
  # pure Python, so our own pip fetches it for Blender's Python version: Blender's Python may live
  # in another root filesystem (scripts/real_blender.sh) that has no registry configuration.
  site="$VENV/blender-site"
  site_wanted="$(grep -E '^(pytest|pytest-timeout)==' "$requirements")"
  if [ ! -f "$site/.provisioned" ] || [ "$(cat "$site/.provisioned")" != "$site_wanted" ]; then
    blender_py_version="$("$BLENDER" -b --factory-startup --python-expr 'import sys; print("PYVER=%d.%d" % sys.version_info[:2])' 2>/dev/null | sed -n 's/^PYVER=//p' | head -n1)"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade --target "$site" \
      --python-version "$blender_py_version" --only-binary=:all: $site_wanted
    printf '%s' "$site_wanted" > "$site/.provisioned"
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
