#!/usr/bin/env bash
# Runs every benchmark against the local emulator and prints their figures (see README).
source "$(dirname "$0")/_provision.sh"
cd "$REPO"
echo "== poll cost and detection lag (ours vs SDK-style waiting)"
"$PY" scripts/bench_polling.py "$@"
echo "== download of a 200 MB result (ours vs plain requests)"
"$PY" scripts/bench_download.py
echo "== main-thread tick cost and import time (inside Blender)"
"$BLENDER" -b --python-exit-code 1 --python scripts/bench_blender.py
echo "== import of a Tripo-sized model (ours vs bare glTF import, inside Blender)"
"$BLENDER" -b --python-exit-code 1 --python scripts/bench_import.py
if [ -f scripts/bench_batch.py ]; then
  echo "== batch of 100 jobs, concurrency 10"
  "$BLENDER" -b --python-exit-code 1 --python scripts/bench_batch.py
fi
