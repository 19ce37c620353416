"""Main-loop stall in a real Blender with a window: ours vs HTTP on the main thread.

    .venv/real-blender/bin/python scripts/bench_gui.py [--jobs 1 20]   (or ./scripts/bench_gui.sh)

A 10 ms `bpy.app.timers` probe records when Blender's loop gets to run it, during a whole
generate flow (submit, polling, download, import) of N jobs against the emulator:
- **ours**: the panel's Generate operator; the worker thread does the network, our UI timer lands
  results;
- **baseline**: what most peer add-ons do: a timer on the main thread that sends the create,
  polls each task and downloads the model with blocking `requests` calls, then imports it.
Under Xvfb every redraw costs ~300 ms of software GL, so wall-clock gaps measure the renderer as
much as the code. The figures that measure our code are the time spent inside our own timer
callback (tick) and inside the baseline's, beside the gaps of the same Blender left idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "gui"))

from harness import BlenderUser, Emulator, GuiBlender, XServer, real_blender  # noqa: E402

PROBE = """
import time, bpy
probe = {'stamps': [], 'busy': [], 'imports': [], 'running': True, 'sidebar_draws': 0, 'viewport_draws': 0}
bpy.app.driver_namespace['stall_probe'] = probe
def _count(key):
    probe[key] += 1
probe['handlers'] = [
    bpy.types.SpaceView3D.draw_handler_add(_count, ('sidebar_draws',), 'UI', 'POST_PIXEL'),
    bpy.types.SpaceView3D.draw_handler_add(_count, ('viewport_draws',), 'WINDOW', 'POST_PIXEL')]
def _probe():
    probe['stamps'].append(time.perf_counter())
    return 0.01 if probe['running'] else None
bpy.app.timers.register(_probe, first_interval=0.01)
result = True
"""

# Times every call of our UI timer's tick and of the import entry point (module attributes are
# looked up at call time, so wrapping them is enough).
INSTRUMENT_OURS = """
import importlib, time
timer = importlib.import_module(PACKAGE + '.ui.timer')
importer = importlib.import_module(PACKAGE + '.blender.importer')
probe = bpy.app.driver_namespace['stall_probe']
def timed(fn, into):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append((start, time.perf_counter()))
    return wrapper
timer.tick = timed(timer.tick, probe['busy'])
importer.import_job = timed(importer.import_job, probe['imports'])
result = True
"""

# The baseline: the same flow with blocking HTTP on the main thread, driven by a timer.
BASELINE = """
import os, time, tempfile, requests
probe = bpy.app.driver_namespace['stall_probe']
base, key = os.environ['TRIPO_API_BASE'], os.environ['TRIPO_API_KEY']
http = requests.Session(); http.trust_env = False
headers = {'Authorization': 'Bearer ' + key}
pending = {}
state = {'to_submit': list(PROMPTS), 'done': 0}
def step():
    try:
        return _step()
    except Exception as exc:  # the run reports it instead of waiting forever
        probe['error'] = repr(exc)
        return None
def _step():
    start = time.perf_counter()
    if state['to_submit']:
        prompt = state['to_submit'].pop(0)
        answer = http.post(base + '/v3/generation/text-to-model', json={'prompt': prompt, 'model': 'v3.1-20260211'},
                           headers=headers, timeout=60)
        pending[answer.json()['data']['task_id']] = prompt
    for task_id in list(pending):
        task = http.get(base + '/v3/tasks/' + task_id, headers=headers, timeout=60).json()['data']
        if task['status'] == 'success':
            url = task['output']['model_url']
            path = os.path.join(tempfile.gettempdir(), task_id + '.glb')
            with open(path, 'wb') as out:
                out.write(http.get(url, timeout=60).content)
            probe['busy'].append((start, time.perf_counter()))
            import_start = time.perf_counter()
            with bpy.context.temp_override(**view3d_main()):
                bpy.ops.import_scene.gltf(filepath=path)
            probe['imports'].append((import_start, time.perf_counter()))
            start = time.perf_counter()
            del pending[task_id]
            state['done'] += 1
    probe['busy'].append((start, time.perf_counter()))
    return None if state['done'] == len(PROMPTS) else 0.5
bpy.app.timers.register(step, first_interval=0.01)
result = True
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def collect(blender: GuiBlender) -> dict:
    data = blender.run("p = bpy.app.driver_namespace['stall_probe']\np['running'] = False\n"
                       "result = {k: p[k] for k in ('stamps', 'busy', 'imports', 'sidebar_draws', 'viewport_draws')}")
    seconds = (data["stamps"][-1] - data["stamps"][0]) if len(data["stamps"]) > 1 else 1.0
    stamps, imports = data["stamps"], data["imports"]
    gaps = []
    for before, after in zip(stamps, stamps[1:]):
        if any(start <= after and end >= before for start, end in imports):
            continue  # the import itself is reported on its own
        gaps.append((after - before) * 1000.0)
    # Our code's own time: each timer call minus the imports it ran (reported on their own).
    busy = [((end - start) - sum(max(0.0, min(end, e) - max(start, s)) for s, e in imports)) * 1000.0
            for start, end in data["busy"]]
    return {
        "gap_max": max(gaps, default=0.0), "gap_p99": percentile(gaps, 0.99),
        "busy_max": max(busy, default=0.0), "busy_p99": percentile(busy, 0.99), "busy_calls": len(busy),
        "import_ms": statistics.median([(e - s) * 1000.0 for s, e in imports]) if imports else 0.0,
        "imports": len(imports),
        "sidebar_per_s": data["sidebar_draws"] / seconds, "viewport_per_s": data["viewport_draws"] / seconds,
    }


def run_flow(xserver, emulator, jobs: int, mode: str, workdir: Path, zip_path: Path) -> dict:
    emulator.reset(task_seconds=4.0)
    user = BlenderUser(workdir / f"{mode}-{jobs}", zip_path)
    blender = GuiBlender(xserver, user, workdir / "shots", env=emulator.connection_env(), name=mode)
    try:
        blender.run(PROBE)
        time.sleep(1.0)
        prompts = [f"bench prop {i}" for i in range(jobs)]
        if mode == "idle":
            time.sleep(6.0)
        elif mode == "ours":
            blender.run(INSTRUMENT_OURS)
            blender.run("for p in PROMPTS:\n"
                        "    bpy.context.scene.tripo.prompt = p\n"
                        "    assert invoke('tripo.generate') == ['FINISHED']\nresult = True"
                        .replace("PROMPTS", repr(prompts)))
            blender.wait_for(f"len([o for o in tripo_objects() if not o['parent']]) >= {jobs}", 300)
        else:
            blender.run(BASELINE.replace("PROMPTS", repr(prompts)))
            blender.wait_for(f"len(bpy.app.driver_namespace['stall_probe']['imports']) >= {jobs} or "
                             "bpy.app.driver_namespace['stall_probe'].get('error')", 300)
            error = blender.run("result = bpy.app.driver_namespace['stall_probe'].get('error')")
            if error:
                raise RuntimeError(f"the baseline failed: {error}")
        return collect(blender)
    finally:
        blender.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    if real_blender() is None:
        sys.exit("no real Blender: run ./scripts/real_blender.sh first")
    zip_path = Path(os.environ["TRIPO_EXTENSION_ZIP"])
    xserver = XServer()
    emulator = Emulator(sys.executable)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            idle = run_flow(xserver, emulator, 0, "idle", workdir, zip_path)
            print(f"idle Blender: gap max {idle['gap_max']:.0f} ms, p99 {idle['gap_p99']:.0f} ms, "
                  f"redraws/s: sidebar {idle['sidebar_per_s']:.1f}, viewport {idle['viewport_per_s']:.1f}")
            print("| jobs | flow | our code per call: max / p99 | wall-clock gap outside import: max / p99 "
                  "| import (median) | redraws/s: sidebar, viewport |")
            print("|---|---|---|---|---|---|")
            for jobs in args.jobs:
                for mode in ("ours", "baseline"):
                    r = run_flow(xserver, emulator, jobs, mode, workdir, zip_path)
                    label = "ours (worker thread + UI timer)" if mode == "ours" else "baseline (HTTP on the main thread)"
                    print(f"| {jobs} | {label} | {r['busy_max']:.1f} / {r['busy_p99']:.1f} ms "
                          f"({r['busy_calls']} calls) | {r['gap_max']:.0f} / {r['gap_p99']:.0f} ms "
                          f"| {r['import_ms']:.0f} ms ({r['imports']}) "
                          f"| {r['sidebar_per_s']:.1f}, {r['viewport_per_s']:.1f} |", flush=True)
    finally:
        emulator.stop()
        xserver.stop()


if __name__ == "__main__":
    main()
