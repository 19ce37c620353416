"""Benchmark: poll cost and detection lag, our job engine against SDK-style waiting.

    <venv python> scripts/bench_polling.py [--sizes 1,10,100] [--min-seconds 2] [--max-seconds 12]

N tasks of random duration run in the emulator. For each N it reports, for
  ours:  the job engine (one POST /v3/tasks/list per round for every task, adaptive interval),
  sdk:   one task at a time, GET /v3/tasks/{id} with the interval doubling from 1 s to 30 s
         (how the official SDK's wait_for_task waits, looped over the tasks),
the poll requests per second and the median / max lag between a task finishing on the server
and the client knowing it. Targets for ours: median lag <= 1 s, <= 1 poll request per second.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from _bench_common import Emulator

from tripo_blender.core.engine import jobs
from tripo_blender.core.protocol import request_models
from tripo_blender.core.engine.journal import Journal
from tripo_blender.core.providers.tripo_v3 import TripoV3Provider
from tripo_blender.core.providers.http import ProxyConfig

KEY = "tsk_benchmark_key"
PROMPT = "a wooden crate"  # one prompt: the emulator's asset cache makes every task's output instant


def create_tasks(provider, n: int) -> list[str]:
    request = request_models.build_request("text_to_model", prompt=PROMPT, model="v3.1-20260211")
    return [provider.create_task(request) for _ in range(n)]


def completion_times(emulator: Emulator) -> dict[str, float]:
    return {tid: rec["completed"] for tid, rec in emulator.control("GET", "tasks")["tasks"].items()
            if rec.get("completed")}


def poll_requests(emulator: Emulator, since_seq: int) -> tuple[int, int]:
    log = emulator.control("GET", "requests")["requests"]
    polls = [r for r in log if r["seq"] > since_seq and r["kind"] == "api"
             and (r["path"] == "/v3/tasks/list" or (r["method"] == "GET" and r["path"].startswith("/v3/tasks/")))]
    return len(polls), max((r["seq"] for r in log), default=since_seq)


def run_ours(emulator: Emulator, n: int, tmp: str) -> dict:
    provider = lambda: TripoV3Provider(KEY, emulator.url, proxy=ProxyConfig(mode="none"), create_attempts=1)
    engine = jobs.JobEngine(provider, Journal(f"{tmp}/journal-{n}"), f"{tmp}/dl-{n}",
                            base_url=emulator.url, max_concurrent=1000, creates_per_minute=10000)
    known: dict[str, float] = {}
    _, seq = poll_requests(emulator, 0)
    engine.start()
    ids = [engine.submit(jobs.Job.new(f"bench {i}", [jobs.Step("text_to_model", {
        "prompt": PROMPT, "model": "v3.1-20260211"}, downloads=())])) for i in range(n)]
    started = time.time()
    task_of: dict[str, str] = {}
    while len(known) < n:
        event = engine.events.get(timeout=120)
        step = event.job["steps"][0]
        if step.get("task_id"):
            task_of[event.job_id] = step["task_id"]
        if event.kind == "ready" and event.job_id not in known:
            known[event.job_id] = time.time()
    elapsed = time.time() - started
    engine.stop()
    finished = completion_times(emulator)
    lags = [known[j] - finished[task_of[j]] for j in ids]
    polls, _ = poll_requests(emulator, seq)
    return {"polls": polls, "seconds": elapsed, "lags": lags}


def run_sdk_style(emulator: Emulator, n: int) -> dict:
    provider = TripoV3Provider(KEY, emulator.url, proxy=ProxyConfig(mode="none"))
    _, seq = poll_requests(emulator, 0)
    ids = create_tasks(provider, n)
    started = time.time()
    known = {}
    for task_id in ids:  # wait_for_task, one task after the other
        interval = 1.0
        while True:
            task = provider.get_task(task_id)
            if task.is_finished:
                known[task_id] = time.time()
                break
            time.sleep(interval)
            interval = min(30.0, interval * 2)
    elapsed = time.time() - started
    finished = completion_times(emulator)
    polls, _ = poll_requests(emulator, seq)
    return {"polls": polls, "seconds": elapsed, "lags": [known[t] - finished[t] for t in ids]}


def row(name: str, n: int, result: dict) -> str:
    lags = result["lags"]
    rate = result["polls"] / result["seconds"]
    return (f"{name:<5} N={n:<4} poll requests/s {rate:5.2f}  requests {result['polls']:>5}  "
            f"lag median {statistics.median(lags):6.2f} s  max {max(lags):6.2f} s")


def main() -> None:
    import tempfile
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=12.0)
    parser.add_argument("--skip-sdk", action="store_true")
    args = parser.parse_args()
    emulator = Emulator("--concurrency", "1000", task_seconds=args.min_seconds)
    emulator.control("POST", "config", {"task_seconds_max": args.max_seconds, "rate_limit_per_minute": 100000,
                                        "balance": 10_000_000})
    # Warm the asset cache so no task waits for Blender.
    warm = TripoV3Provider(KEY, emulator.url, proxy=ProxyConfig(mode="none"))
    create_tasks(warm, 1)
    time.sleep(args.max_seconds + 2)
    lines = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(s) for s in args.sizes.split(",")]:
                lines.append(row("ours", n, run_ours(emulator, n, tmp)))
                print(lines[-1], flush=True)
                if not args.skip_sdk:
                    lines.append(row("sdk", n, run_sdk_style(emulator, n)))
                    print(lines[-1], flush=True)
    finally:
        emulator.close()


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
