"""The emulator's asset factory: real 3D files made by Blender, one request at a time.

Run BY BLENDER (or by a Python that has the `bpy` module):

    blender -b --factory-startup --python scripts/emulator/asset_factory.py -- --serve
    python scripts/emulator/asset_factory.py --serve                  # bpy module from PyPI
    blender -b --python scripts/emulator/asset_factory.py -- --request '<json>'   # one shot

Protocol (`--serve`): one JSON request per line on stdin,

    {"id": "r1", "op": "model", "params": {...}, "inputs": {"model": "/in.glb"}, "out_dir": "/abs"}

and one answer line per request on stdout, prefixed with `@@ASSET ` (Blender, its importers and
Cycles print other text on stdout; only prefixed lines are answers):

    @@ASSET {"id": "r1", "ok": true, "op": "model", "files": {"model": "/abs/model.glb",
             "rendered_image": "/abs/preview.webp"}, "info": {...}, "seconds": 1.2}
    @@ASSET {"id": "r1", "ok": false, "op": "model", "error": "RuntimeError: ...", "traceback": "..."}

Right after start-up the worker prints `@@ASSET {"ready": true, "blender": "4.5.15", ...}`.
`{"op": "ping"}` answers at once; `{"op": "shutdown"}` (or EOF on stdin) ends the worker.
The scene is reset to an empty factory scene before every request.

This script is only the entry point; the factory lives in the `factory/` package next to it, one
module per kind of output: `models` (procedural props and the realistic profile), `mesh_edits`
(segment, texture, complete, decimate), `rigging`, `animation`, `conversion` (convert, import),
`preview` (rendered images), on top of `scene` and `common`; `worker` is the request loop.

Conventions of every model made or written here: Blender +Z up (glTF +Y up once exported), the
front faces -Y (glTF +Z), models stand on the ground (min z = 0), centred on the origin in XY.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Blender runs this file as a script, with neither its folder nor scripts/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.factory.worker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv))
