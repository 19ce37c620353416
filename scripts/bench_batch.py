"""Benchmark of the batch runner against the local emulator (prints figures; not a test).

    blender -b --python scripts/bench_batch.py -- [--jobs 100] [--task-seconds 2]
        [--concurrency 10] [--extension-zip ZIP] [--keep DIR] [--progress] [--stock-emulator]

Starts its own emulator (`scripts/tripo_emulator.py --port 0`, every task lasting exactly
--task-seconds once its asset exists), warms the emulator's asset cache with the same requests
(untimed: the emulator's Blender asset factory is not what is measured), then runs a batch of
--jobs text-to-model assets through the real runner with the concurrency cap, and reports:

- wall time until every asset is imported, against the ideal ceil(jobs / cap) x T, and against
  that ideal plus the main thread's total import time (target: at most 1.15 x);
- the whole run including the .blend save, contact sheet and report;
- HTTP requests per job, by kind, from the emulator's request log.

The emulator runs with TCP_NODELAY unless --stock-emulator (see NODELAY_NOTE).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import tripo_batch  # noqa: E402  (extension discovery, shared with the CLI)

API_KEY = "tsk_benchmark_0123456789"
MODEL = "v3.1-20260211"
FACE_LIMIT = 2000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blender -b --python scripts/bench_batch.py --")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--extension-zip", default=os.environ.get("TRIPO_EXTENSION_ZIP"))
    parser.add_argument("--keep", default=None, help="write the run's output here and keep it")
    parser.add_argument("--progress", action="store_true", help="show the runner's progress lines")
    parser.add_argument("--stock-emulator", action="store_true",
                        help="keep the emulator's ~40 ms per answer (see NODELAY_NOTE)")
    return parser.parse_args(argv)


def blender_command() -> str:
    """How the emulator's asset factory starts Blender (sys.argv[0] is this script here)."""
    import bpy

    for candidate in (os.environ.get("BLENDER_EXECUTABLE"), bpy.app.binary_path, shutil.which("blender")):
        if candidate and os.path.isfile(candidate):
            return candidate
    return sys.executable  # the Python that has the bpy module


NODELAY_NOTE = """\
The emulator writes an answer's headers and body separately on a keep-alive connection; with
Nagle's algorithm on, the body waits for the client's delayed ACK, so every answer takes ~40 ms
(a loopback artifact: 10 serial creates per wave cost 0.4 s of T). The benchmark measures the
client, so by default it starts the emulator with TCP_NODELAY on its sockets."""

# Runs scripts/tripo_emulator.py with TCP_NODELAY on the emulator's connections.
_NODELAY_LAUNCH = (
    "import runpy, sys; sys.path.insert(0, sys.argv[1]); import emulator.server as server; "
    "server._Handler.disable_nagle_algorithm = True; script = sys.argv[2]; "
    "sys.argv = [script] + sys.argv[3:]; runpy.run_path(script, run_name='__main__')"
)


class Emulator:
    def __init__(self, task_seconds: float, concurrency: int, nodelay: bool = True):
        blender = blender_command()
        script = str(REPO / "scripts" / "tripo_emulator.py")
        launch = [sys.executable, "-c", _NODELAY_LAUNCH, str(REPO / "scripts"), script] if nodelay \
            else [sys.executable, script]
        command = [*launch, "--host", "127.0.0.1",
                   "--port", "0", "--task-seconds", str(task_seconds), "--concurrency", str(concurrency),
                   "--cache-dir", str(REPO / ".cache" / "emulator-assets"), "--blender", shlex.quote(blender),
                   "--factory-workers", "4", "--log-level", "WARNING"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the emulator exited with {self.process.wait()}")
            if line.startswith("READY "):
                self.url = line.split()[1].strip()
                break
        if not self.url:
            self.process.kill()
            raise RuntimeError("the emulator did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.http = requests.Session()
        self.http.trust_env = False
        self.task_seconds, self.concurrency = task_seconds, concurrency

    def control(self, method: str, route: str, payload=None):
        response = self.http.request(method, f"{self.url}/_emulator/{route}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def api(self, method: str, route: str, payload=None):
        response = self.http.request(method, f"{self.url}{route}", json=payload, timeout=60,
                                     headers={"Authorization": f"Bearer {API_KEY}"})
        response.raise_for_status()
        return response.json()["data"]

    def warm(self, bodies: list[dict]) -> float:
        """Produces every asset once (cached on disk), untimed; then a clean emulator."""
        started = time.monotonic()
        self.control("POST", "config", {"task_seconds": 0, "concurrency_limit": 100000,
                                        "rate_limit_per_minute": 100000})
        ids = [self.api("POST", "/v3/generation/text-to-model", body)["task_id"] for body in bodies]
        while True:
            tasks = self.api("POST", "/v3/tasks/list", {"task_ids": ids})["tasks"]
            if all(t["status"] in ("success", "failed") for t in tasks.values()):
                break
            time.sleep(0.2)
        failed = [t for t in tasks.values() if t["status"] != "success"]
        if failed:
            raise RuntimeError(f"the emulator could not make the assets: {failed[0].get('error_message')}")
        self.control("POST", "reset")
        self.control("POST", "config", {"task_seconds": self.task_seconds,
                                        "concurrency_limit": self.concurrency})
        return time.monotonic() - started

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def batch_text(jobs: int) -> str:
    numbers = ", ".join(str(n) for n in range(jobs))
    return f"""# benchmark batch: {jobs} text-to-model assets
[batch]
project = "BENCH"
blend = "bench.blend"
naming = "{{project}}_{{name}}"

[qc]
max_non_manifold_edges = 100000

[[jobs]]
name = "prop_{{n}}"
prompt = "benchmark prop number {{n}}"
vars = {{ n = [{numbers}] }}
options = {{ model = "{MODEL}", face_limit = {FACE_LIMIT} }}
"""


def classify(entry: dict) -> str:
    path, method = entry["path"], entry["method"]
    if path.startswith("/files/"):
        return "download"
    if path == "/v3/tasks/list":
        return "poll (list)"
    if path.startswith("/v3/tasks/"):
        return "poll (single)"
    if path.startswith("/v3/files") or path.startswith("/uploads/"):
        return "upload"
    if path.startswith("/v3/account"):
        return "account"
    if method == "POST" and path.startswith("/v3/"):
        return "create"
    return "other"


def main() -> int:
    args = parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])
    import bpy

    bpy.context.preferences.system.use_online_access = True  # the benchmark talks to loopback only
    package = tripo_batch.find_extension(args.extension_zip)
    runner = __import__(f"{package}.blender.batch_runner", fromlist=["run"])
    runner.configure_logging(False)
    if not args.progress:
        runner.log.setLevel("WARNING")

    emulator = Emulator(args.task_seconds, args.concurrency, nodelay=not args.stock_emulator)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tripo-bench-"))
    try:
        bodies = [{"prompt": f"benchmark prop number {n}", "model": MODEL, "face_limit": FACE_LIMIT}
                  for n in range(args.jobs)]
        warm = emulator.warm(bodies)
        batch = work / "bench.toml"
        work.mkdir(parents=True, exist_ok=True)
        batch.write_text(batch_text(args.jobs))
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        os.environ["TRIPO_API_BASE"], os.environ["TRIPO_API_KEY"] = emulator.url, API_KEY

        started = time.monotonic()
        result = runner.run(runner.RunOptions(str(batch), out=str(out), concurrency=args.concurrency,
                                              creates_per_minute=1000))
        whole = time.monotonic() - started
        log = emulator.control("GET", "requests")["requests"]
    finally:
        emulator.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    report = result.report or {}
    if result.exit_code != 0:
        print(result.text)
        print(f"benchmark run failed (exit status {result.exit_code})")
        return 1
    counts = Counter(classify(e) for e in log if not e["path"].startswith("/_emulator/"))
    total_requests = sum(counts.values())
    ideal = math.ceil(args.jobs / args.concurrency) * args.task_seconds
    done = report["until_all_done_seconds"]
    imports = report["import_seconds"]
    per_job = {kind: count / args.jobs for kind, count in sorted(counts.items())}
    figures = {
        "jobs": args.jobs, "concurrency": args.concurrency, "task_seconds": args.task_seconds,
        "ideal_seconds": ideal, "import_seconds_total": imports,
        "until_all_imported_seconds": done, "ratio_to_ideal": done / ideal,
        "ratio_to_ideal_plus_import": done / (ideal + imports),
        "whole_run_seconds": round(whole, 3), "http_requests": total_requests,
        "http_requests_per_job": total_requests / args.jobs, "per_job_by_kind": per_job,
        "engine": report.get("engine"), "warm_up_seconds": round(warm, 1),
        "emulator_nodelay": not args.stock_emulator,
    }
    print(f"Batch benchmark: {args.jobs} jobs, concurrency cap {args.concurrency}, "
          f"task duration T = {args.task_seconds:g} s (emulator asset cache warmed in {warm:.1f} s, untimed; "
          f"{'stock emulator, ~40 ms per answer' if args.stock_emulator else 'emulator with TCP_NODELAY'})")
    print(f"  ideal ceil({args.jobs}/{args.concurrency}) x T       {ideal:7.2f} s")
    print(f"  import time (main thread, sum)  {imports:7.2f} s  ({imports / args.jobs * 1000:.0f} ms per asset)")
    print(f"  until every asset imported      {done:7.2f} s  = {done / ideal:.3f} x ideal, "
          f"{done / (ideal + imports):.3f} x (ideal + import)   target <= 1.15")
    print(f"  whole run (+ .blend, contact sheet, report) {whole:7.2f} s")
    print(f"  HTTP requests: {total_requests} = {total_requests / args.jobs:.2f} per job ("
          + ", ".join(f"{kind} {value:.2f}" for kind, value in per_job.items()) + ")")
    print("BENCH_JSON " + json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
