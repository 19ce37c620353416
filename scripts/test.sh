#!/usr/bin/env bash
# Provisions everything (venv, Blender as the bpy module unless BLENDER_EXECUTABLE is given,
# pytest + pytest-blender, the built extension) and runs the whole test suite inside Blender.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k emulator -x
source "$(dirname "$0")/_provision.sh"
cd "$REPO"

# Blender's user folders point at a throw-away directory: tests never touch a real profile.
BLENDER_USER_RESOURCES="$(mktemp -d "${TMPDIR:-/tmp}/tripo-blender-user.XXXXXX")"
export BLENDER_USER_RESOURCES
trap 'rm -rf "$BLENDER_USER_RESOURCES"' EXIT

blender_args=()
[ -n "${PYTHONPATH:-}" ] && blender_args=(-- --python-use-system-env)
set +e
"$PY" -m pytest --blender-executable "$BLENDER" "$@" "${blender_args[@]}"
status=$?
exit $status
