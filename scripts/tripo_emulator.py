#!/usr/bin/env python3
"""Runs the local Tripo apiv3 emulator until SIGINT/SIGTERM.

    python scripts/tripo_emulator.py --host 127.0.0.1 --port 0 [--api-key KEY] [--task-seconds T]
        [--faults SPEC] [--blender CMD] [--cache-dir DIR] [--concurrency N] [--balance N] ...
        [--aistudio-api-key KEY] [--aistudio-rate-limit N] [--asset-profile light|realistic]

Serves both wire formats: Tripo apiv3 under /v3/ and 3D AI Studio's under /v1/ (see
emulator/aistudio.py).

Prints `READY http://127.0.0.1:<port>` on stdout once it listens (port 0: a free port); logs go
to stderr. Standard library only: runs under any Python 3.11+, Blender's bundled one included.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emulator.server import DEFAULT_CACHE_DIR, EmulatorServer  # noqa: E402
from emulator.faults import KINDS, TARGETS  # noqa: E402
from emulator.state import ASSET_PROFILES  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None,
                        help="the one key accepted (default: any key starting with tsk_)")
    parser.add_argument("--task-seconds", type=float, default=3.0,
                        help="how long a task takes at least (default 3)")
    parser.add_argument("--faults", default="",
                        help=f"KIND:TARGET[:COUNT],... KIND: {', '.join(KINDS)}; "
                             f"TARGET: {', '.join(TARGETS)}")
    parser.add_argument("--blender", default=None,
                        help="command that starts Blender for the asset factory (shell-split; "
                             "default $TRIPO_BLENDER_COMMAND, $BLENDER_EXECUTABLE, this Python)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--concurrency", type=int, default=10,
                        help="queued+running tasks allowed per key (default 10)")
    parser.add_argument("--rate-limit", type=int, default=200,
                        help="task creations allowed per key and minute (default 200)")
    parser.add_argument("--balance", type=int, default=10000, help="credits of each key (default 10000)")
    parser.add_argument("--blocked-word", default="forbidden",
                        help="prompts containing it are refused with 2008")
    parser.add_argument("--url-ttl", type=float, default=300.0,
                        help="lifetime of signed download URLs in seconds (default 300)")
    parser.add_argument("--slow-seconds", type=float, default=2.0,
                        help="delay of the `slow` fault (default 2)")
    parser.add_argument("--factory-workers", type=int, default=2,
                        help="tasks whose assets are produced at the same time (default 2)")
    parser.add_argument("--aistudio-api-key", default=None,
                        help="the one key the 3D AI Studio routes accept (default: any key)")
    parser.add_argument("--aistudio-rate-limit", type=int, default=3,
                        help="3D AI Studio API requests allowed per key and minute (default 3)")
    parser.add_argument("--asset-profile", choices=ASSET_PROFILES, default="light",
                        help="what generation tasks produce: light props (default) or realistic, "
                             "Tripo-sized models (~200k triangles, 2048² PBR textures, 15-25 MB)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = EmulatorServer(
            args.host, args.port, api_key=args.api_key, task_seconds=args.task_seconds,
            faults=args.faults, blender_command=args.blender, cache_dir=args.cache_dir,
            concurrency_limit=args.concurrency, rate_limit_per_minute=args.rate_limit,
            balance=args.balance, blocked_word=args.blocked_word, url_ttl_seconds=args.url_ttl,
            slow_seconds=args.slow_seconds, factory_workers=args.factory_workers,
            aistudio_api_key=args.aistudio_api_key, aistudio_rate_limit=args.aistudio_rate_limit,
            asset_profile=args.asset_profile)
    except ValueError as exc:  # a bad --faults spec
        logging.getLogger("tripo_emulator").error("%s", exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    sys.stdout.write(f"READY {server.url}\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
