"""Benchmark inside Blender: the main-thread cost of a monitor tick, and our import step.

    blender -b --python scripts/bench_blender.py -- [--extension-zip ZIP] [--jobs 0,20,100]

1. Tick cost: N jobs in flight on the emulator (long tasks, nothing finishing); the main-thread
   work of one modal tick (Runtime.tick: drain the worker's queue, update job snapshots, plus
   the active-job query the monitor does) timed over many ticks; median and max.
2. Import: our import (glTF import + naming, metadata, preview) against a bare
   bpy.ops.import_scene.gltf of the same file; median of several rounds. Target: <= 1.2x.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import REPO, Emulator, install_extension, rerun_with_temporary_user_dir  # noqa: E402

KEY = "tsk_benchmark_key"


def bench_ticks(package: str, emulator: Emulator, counts: list[int]) -> None:
    runtime_module = importlib.import_module(f"{package}.blender.runtime")
    recipes = importlib.import_module(f"{package}.core.engine.recipes")
    ui_timer = importlib.import_module(f"{package}.ui.timer")
    prefs = bpy.context.preferences.addons[package].preferences
    prefs.api_base, prefs.custom_base_url, prefs.api_key, prefs.proxy_mode = "custom", emulator.url, KEY, "none"
    runtime_module.ENGINE_OPTIONS["max_concurrent"] = 1000
    for count in counts:
        runtime = runtime_module.get_runtime()
        for i in range(count):
            runtime.submit(recipes.generation_job(prompt=f"bench prop {i}", options={"model": "v3.1-20260211"}))
        # Let every job reach "running" first, then time ticks while polls keep arriving.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runtime.tick()
            if all(j["steps"][0].get("task_id") for j in runtime.active_jobs()):
                break
            time.sleep(0.05)
        samples = []
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            start = time.perf_counter()
            ui_timer.tick(bpy.context)  # what the UI's timer runs each round
            samples.append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)  # the UI timer fires every 0.2 s; sample more often than that
        print(f"tick  jobs in flight {count:>4}: median {statistics.median(samples) * 1000:7.1f} µs  "
              f"max {max(samples) * 1000:8.1f} µs  ({len(samples)} ticks, "
              f"{sum(1 for _ in runtime.active_jobs())} active)", flush=True)
        runtime.shutdown()
        runtime_module._runtime = None
        emulator.control("POST", "reset")
        emulator.control("POST", "config", {"task_seconds": 600, "concurrency_limit": 1000,
                                            "rate_limit_per_minute": 100000})


def bench_import(package: str, rounds: int = 7) -> None:
    importer = importlib.import_module(f"{package}.blender.importer")
    cache = REPO / ".cache" / "emulator-assets"
    glbs = sorted(cache.glob("*/*.glb"), key=lambda p: p.stat().st_size)
    if not glbs:
        print("import: no GLB in the emulator cache yet (run the tests or the demo first)")
        return
    glb = glbs[len(glbs) // 2]
    job = {"job_id": "bench", "label": "bench asset", "provider": "tripo", "meta": {"name": "bench asset"},
           "steps": [{"task_type": "text_to_model", "task_id": "t-bench", "params": {"prompt": "bench"},
                      "files": {"model_url": str(glb)}, "task": {"credits_consumed": 40.0}}]}
    ours, bare = [], []
    for _ in range(rounds):
        bpy.ops.wm.read_homefile(use_empty=True)
        start = time.perf_counter()
        bpy.ops.import_scene.gltf(filepath=str(glb))
        bare.append(time.perf_counter() - start)
        bpy.ops.wm.read_homefile(use_empty=True)
        start = time.perf_counter()
        importer.import_job(bpy.context, job)
        ours.append(time.perf_counter() - start)
    b, o = statistics.median(bare) * 1000, statistics.median(ours) * 1000
    print(f"import {glb.stat().st_size / 1024:.0f} KB GLB: bare glTF import {b:.1f} ms, ours {o:.1f} ms "
          f"-> {o / b:.2f}x (median of {rounds})")


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser()
    parser.add_argument("--extension-zip", default=os.environ.get("TRIPO_EXTENSION_ZIP"))
    parser.add_argument("--jobs", default="0,20,100")
    args = parser.parse_args(argv)
    rerun_with_temporary_user_dir(__file__, argv)
    import logging
    logging.getLogger().setLevel(logging.WARNING)
    package = install_extension(args.extension_zip)
    emulator = Emulator("--concurrency", "1000", task_seconds=600)
    emulator.control("POST", "config", {"rate_limit_per_minute": 100000})
    try:
        bench_ticks(package, emulator, [int(n) for n in args.jobs.split(",")])
    finally:
        emulator.close()
    bench_import(package)


main()
