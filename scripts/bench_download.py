"""Benchmark: downloading a large result, our streamed download against a plain requests GET.

    <venv python> scripts/bench_download.py [--size-mb 200] [--rounds 3]

Each variant runs in a fresh subprocess so its peak memory is its own. Reports throughput
(MB/s, best of the rounds) and peak RSS growth during the download. Targets: ours >= 0.9x the
plain GET's throughput, peak RSS growth < 32 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench_common import REPO, Emulator

CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
import requests

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # MB

variant, url, dest = sys.argv[1:4]
session = requests.Session()
session.trust_env = False
if variant == "ours":
    from tripo_blender.core.providers.download import download_file
    download_file  # imported before measuring
rss_before = status("VmRSS")
start = time.perf_counter()
if variant == "ours":
    download_file(session, url, dest, max_bytes=None)
else:
    with session.get(url, stream=True, timeout=(10, 60)) as response, open(dest, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            out.write(chunk)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_growth_mb": status("VmHWM") - rss_before}}))
"""


def run(variant: str, url: str, dest: Path) -> dict:
    script = CHILD.format(repo=str(REPO))
    out = subprocess.run([sys.executable, "-c", script, variant, url, str(dest)],
                         capture_output=True, text=True, check=True).stdout
    dest.unlink(missing_ok=True)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    emulator = Emulator()
    try:
        emulator.control("POST", "config", {"url_ttl_seconds": 3600})
        url = emulator.control("POST", "big-file", {"size_mb": args.size_mb})["url"]
        with tempfile.TemporaryDirectory() as tmp:
            results = {"plain": [], "ours": []}
            for _ in range(args.rounds):
                for variant in ("plain", "ours"):  # interleaved: both see the same machine load
                    results[variant].append(run(variant, url, Path(tmp) / f"{variant}.bin"))
        best = {v: min(r["seconds"] for r in rs) for v, rs in results.items()}
        peak = {v: max(r["peak_growth_mb"] for r in rs) for v, rs in results.items()}
        for variant in ("plain", "ours"):
            print(f"{variant:<5} {args.size_mb / best[variant]:7.0f} MB/s (best of {args.rounds})  "
                  f"peak RSS growth {peak[variant]:5.1f} MB")
        print(f"ours / plain throughput: {best['plain'] / best['ours']:.2f}x")
    finally:
        emulator.close()


if __name__ == "__main__":
    time.perf_counter()
    main()
