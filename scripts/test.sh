#!/usr/bin/env bash
# Provisions everything (venv, Blender as the bpy module unless BLENDER_EXECUTABLE is given,
# pytest + pytest-blender, the built extension), runs the fast tier (tests/fast: plain CPython, no
# Blender), then the rest of the suite inside Blender.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k emulator -x (Blender tier only), or
# ./scripts/test.sh tests/fast -x (fast tier only).
# BLENDER_VERSION picks the Blender: 4.5 (default), 4.2, 5.0, 5.2 (bpy from PyPI) or `real` (the
# real Blender 4.3.2 of scripts/real_blender.sh). Where the real one cannot be provisioned (not
# root, no Debian registry) that run is skipped with the reason, unless TRIPO_REQUIRE_REAL_BLENDER=1.
if [ "${BLENDER_VERSION:-}" = real ]; then
  set +e
  "$(dirname "$0")/real_blender.sh" >/dev/null
  status=$?
  set -e
  if [ $status -eq 3 ] && [ "${TRIPO_REQUIRE_REAL_BLENDER:-0}" != 1 ]; then
    echo "[test] SKIPPED: the real Blender could not be provisioned here (reason above)" >&2
    exit 0
  fi
  [ $status -eq 0 ] || exit $status
fi
source "$(dirname "$0")/_provision.sh"
cd "$REPO"

# Blender's user folders point at a throw-away directory: tests never touch a real profile.
BLENDER_USER_RESOURCES="$(mktemp -d "${TMPDIR:-/tmp}/tripo-blender-user.XXXXXX")"
export BLENDER_USER_RESOURCES
trap 'rm -rf "$BLENDER_USER_RESOURCES"' EXIT

# The fast tier first: the protocol core under plain CPython, without Blender (tests/fast). It runs
# alone when the arguments name it, and before the Blender run when there are no arguments.
fast_tier() {
  # PYTHONPATH may hold the pytest of a real Blender's own Python: not for ours.
  env -u PYTHONPATH "$PY" -m pytest -p no:pytest-blender --confcutdir tests/fast "$@"
}
case "${1:-}" in
  tests/fast*) fast_tier "$@"; exit $? ;;
esac
if [ $# -eq 0 ]; then
  fast_tier tests/fast || exit $?
fi

blender_args=()
[ -n "${PYTHONPATH:-}" ] && blender_args=(-- --python-use-system-env)
set +e
"$PY" -m pytest --blender-executable "$BLENDER" "$@" "${blender_args[@]}"
status=$?
exit $status
