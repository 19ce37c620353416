"""The emulator's asset factory worker: requests and the `--serve` loop (see asset_factory.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import bpy

from .common import FactoryError, PROTOCOL_PREFIX
from .scene import ensure_addons, reset_scene
from .models import op_model
from .preview import op_render
from .mesh_edits import op_complete, op_decimate, op_segment, op_texture
from .rigging import op_rig
from .animation import op_retarget
from .conversion import op_convert, op_import

log = logging.getLogger("asset_factory")


OPS = {"model": op_model, "segment": op_segment, "texture": op_texture, "complete": op_complete,
       "decimate": op_decimate, "rig": op_rig, "retarget": op_retarget, "render": op_render,
       "convert": op_convert, "import": op_import}


class Request:
    def __init__(self, raw: dict, work_dir: Path):
        self.id = raw.get("id")
        self.op = raw.get("op")
        self.params = raw.get("params") or {}
        self.inputs = raw.get("inputs") or {}
        if not raw.get("out_dir"):
            raise FactoryError("request has no out_dir")
        self.out_dir = Path(raw["out_dir"]).resolve()
        self.work_dir = work_dir

    def input(self, name: str) -> Path:
        if name not in self.inputs:
            raise FactoryError(f"op {self.op} needs input {name!r}")
        return Path(self.inputs[name])


def handle(raw: dict) -> dict:
    started = time.monotonic()
    answer = {"id": raw.get("id"), "op": raw.get("op")}
    work_dir = Path(tempfile.mkdtemp(prefix="asset_factory_"))
    try:
        if raw.get("op") not in OPS:
            raise FactoryError(f"unknown op {raw.get('op')!r}; one of {sorted(OPS)}")
        req = Request(raw, work_dir)
        req.out_dir.mkdir(parents=True, exist_ok=True)
        reset_scene()
        files, info = OPS[req.op](req)
        answer.update(ok=True, files={k: str(v) for k, v in files.items() if v is not None},
                      info=info)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an answer, never a crash
        log.error("%s failed: %s", raw.get("op"), exc)
        answer.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    answer["seconds"] = round(time.monotonic() - started, 3)
    log.info("%s %s in %.2f s", answer.get("op"), "ok" if answer.get("ok") else "FAILED",
             answer["seconds"])
    return answer


def _flush_native_stdout() -> None:
    """Flushes C stdio (Blender and Cycles print through it) so that their buffered text is
    written before, never in the middle of, an answer line."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - not available on every platform; answers start on a new line anyway
        pass


def emit(payload: dict) -> None:
    sys.stdout.flush()
    _flush_native_stdout()
    sys.stdout.write("\n" + PROTOCOL_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve() -> None:
    ensure_addons()
    emit({"ready": True, "blender": bpy.app.version_string, "pid": os.getpid(), "ops": sorted(OPS)})
    while True:
        line = sys.stdin.readline()
        if not line:
            break  # EOF: the client closed our stdin
        line = line.strip()
        if not line:
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            emit({"id": None, "ok": False, "error": f"bad JSON request: {exc}"})
            continue
        if raw.get("op") == "ping":
            emit({"id": raw.get("id"), "ok": True, "op": "ping", "files": {}, "info": {}})
            continue
        if raw.get("op") == "shutdown":
            emit({"id": raw.get("id"), "ok": True, "op": "shutdown", "files": {}, "info": {}})
            break
        emit(handle(raw))


def script_args(argv: list[str]) -> list[str]:
    """Blender passes the script's own arguments after `--`; a plain Python has no `--`."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="asset_factory.py", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", action="store_true", help="answer JSON requests from stdin")
    mode.add_argument("--request", help="serve one JSON request (or @file) and exit")
    parser.add_argument("--log-level", default=os.environ.get("TRIPO_FACTORY_LOG", "INFO"))
    args = parser.parse_args(script_args(argv))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="asset_factory %(levelname)s: %(message)s")
    if args.serve:
        serve()
        return 0
    text = Path(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    ensure_addons()
    answer = handle(json.loads(text))
    emit(answer)
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
