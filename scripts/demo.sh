#!/usr/bin/env bash
# The offline demo: provisions like scripts/test.sh, starts the local Tripo emulator (no API key,
# no internet), and runs the batch runner on examples/demo_batch.toml with the same `blender -b`
# command a pipeline would use. Result: demo-output/ with the assets, sidecars, a report and
# demo-output/demo.blend.
source "$(dirname "$0")/_provision.sh"
cd "$REPO"
out="${1:-$REPO/demo-output}"

"$PY" scripts/tripo_emulator.py --host 127.0.0.1 --port 0 --task-seconds 2 \
  --cache-dir "$REPO/.cache/emulator-assets" --blender "$BLENDER" > "$VENV/emulator.out" &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null' EXIT
for _ in $(seq 1 300); do
  grep -q '^READY ' "$VENV/emulator.out" 2>/dev/null && break
  sleep 0.2
done
url="$(sed -n 's/^READY //p' "$VENV/emulator.out")"
[ -n "$url" ] || { echo "the emulator did not start" >&2; exit 1; }
echo "emulator listening at $url"

export TRIPO_API_BASE="$url" TRIPO_API_KEY="tsk_demo_offline_key"
# The demo installs the extension into its own Blender user folder, never into your profile.
export BLENDER_USER_RESOURCES="$REPO/.cache/demo-blender-user"
"$BLENDER" -b --factory-startup --online-mode --python-exit-code 1 \
  --python scripts/tripo_batch.py -- examples/demo_batch.toml --out "$out" \
  --extension-zip "$TRIPO_EXTENSION_ZIP"
