"""Imported Tripo results as Blender assets (Asset Browser), main thread only.

What is marked (an artist drags ONE thing from the Asset Browser):
- an asset of one object (a plain model): that object;
- an asset of several objects (parts under an Empty, an armature with its skinned mesh): a
  collection named after the asset, holding all of them. Dragging an object brings only that
  object (children are not its dependencies), so a hierarchy is only whole as a collection.
  Its instance offset is the root's location, so an instance lands where it is dropped.

The asset's preview is Tripo's rendered image (the "<asset> preview" image the importer
packs), copied into the ID's preview; without one, Blender renders one (UI only: it needs a
GPU, which `blender -b` has not).

Metadata: description = the prompt, author = the provider, tags = task type, model version,
the batch's type/template variables/tags, part names (and QC state, set by the batch runner).

Catalogs: one per project and asset type, "Tripo/<project>/<type>". Its UUID is derived from
the path (uuid5), so an asset gets its catalog id at import even in an unsaved file; the
catalog definitions are written to `blender_assets.cats.txt` beside the .blend whenever the
file is saved (save_post handler, and by the batch runner after its save). Existing lines of
the file are kept: Blender and the user may have catalogs there too.

The preference "Mark as Assets" (on by default) turns all this off; the `obj["tripo"]`
metadata is written either way.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

import bpy

from . import metadata
from .settings import ADDON_ID

log = logging.getLogger(__name__)

CATS_FILE = "blender_assets.cats.txt"
CATALOG_ROOT = "Tripo"
DEFAULT_PROJECT = "Interactive"
# Custom property on a marked ID: the catalog path, so the cats file can be written at save time.
CATALOG_PROPERTY = "tripo_catalog"
# Custom property on an asset collection: the asset it holds (a re-mark reuses it).
COLLECTION_ASSET_PROPERTY = "tripo_asset_id"
PREVIEW_SIZE = 256  # Blender's own asset previews are 256 px at most
_NAMESPACE = uuid.UUID("6f0d3b8e-2a51-4c1e-9a77-5b1f4c9e0a11")  # fixed: catalog ids stay stable
_CATS_HEADER = (
    "# This is an Asset Catalog Definition file for Blender.\n"
    "#\n"
    "# Empty lines and lines starting with `#` will be ignored.\n"
    "# The first non-ignored line should be the version indicator.\n"
    '# Other lines are of the format "UUID:catalog/path/for/assets:simple catalog name"\n'
    "\n"
    "VERSION 1\n"
    "\n"
)


def enabled(context=None) -> bool:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    prefs = addon.preferences if addon else None
    return bool(getattr(prefs, "mark_as_assets", True))


# --- catalogs -----------------------------------------------------------------------------------

def _catalog_part(text: str) -> str:
    """A catalog path component: no '/' (it separates levels) and no ':' (it separates fields)."""
    return re.sub(r"[/:\\\n\r]+", "-", str(text)).strip() or "Untitled"


def catalog_path(project: str, asset_type: str) -> str:
    return f"{CATALOG_ROOT}/{_catalog_part(project)}/{_catalog_part(asset_type)}"


def catalog_id(path: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, path))


def project_of(job: dict, context=None) -> str:
    batch = (job.get("meta") or {}).get("batch") or {}
    if batch.get("project"):
        return str(batch["project"])
    scene = (context or bpy.context).scene
    settings = getattr(scene, "tripo", None)
    return getattr(settings, "asset_project", "") or DEFAULT_PROJECT


def asset_type_of(job: dict, armature, several_objects: bool) -> str:
    batch = (job.get("meta") or {}).get("batch") or {}
    if batch.get("type"):
        return str(batch["type"])
    if armature is not None:
        return "rigged"
    kind = (job.get("meta") or {}).get("kind")
    if kind in ("splat", "depth"):  # image analysis results: not models
        return kind
    return "parts" if several_objects else "model"


def read_catalogs(path: str) -> dict[str, str]:
    """{uuid: catalog path} of an existing cats file ({} when there is none)."""
    found = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or line.startswith("VERSION"):
                    continue
                fields = line.split(":")
                if len(fields) >= 2:
                    found[fields[0]] = fields[1]
    except FileNotFoundError:
        pass
    return found


def catalogs_in_file() -> dict[str, str]:
    """{uuid: path} of every Tripo catalog the open file's assets use."""
    used = {}
    for collection in (bpy.data.objects, bpy.data.collections):
        for data in collection:
            path = data.get(CATALOG_PROPERTY) if data.asset_data is not None else None
            if path:
                used[catalog_id(path)] = path
    return used


def write_catalogs(blend_path: str | None = None) -> str | None:
    """Adds the catalogs the file's Tripo assets use to the cats file beside the .blend (kept
    lines stay as they are). Returns the file's path, or None for an unsaved file or no assets."""
    blend_path = blend_path or bpy.data.filepath
    if not blend_path:
        return None  # written at the first save (save_post)
    used = catalogs_in_file()
    if not used:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(blend_path)), CATS_FILE)
    existing = read_catalogs(path)
    missing = {cid: cpath for cid, cpath in used.items() if cid not in existing}
    if not missing:
        return path
    # Parent catalogs ("Tripo", "Tripo/<project>") get lines of their own, as Blender writes them.
    for cpath in list(missing.values()):
        parts = cpath.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            pid = catalog_id(parent)
            if pid not in existing and parent not in existing.values():
                missing.setdefault(pid, parent)
    try:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else _CATS_HEADER
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{cid}:{cpath}:{cpath.replace('/', '-')}\n"
                        for cid, cpath in sorted(missing.items(), key=lambda item: item[1]))
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only folder must not fail the save
        log.warning("could not write the asset catalogs to %s: %s", path, exc)
        return None
    log.info("asset catalogs written to %s", path)
    return path


# --- marking ------------------------------------------------------------------------------------

def tags_for(job: dict, step_meta: dict, part_names: list[str]) -> list[str]:
    tags = ["Tripo"]
    if step_meta.get("task_type"):
        tags.append(step_meta["task_type"])
    if step_meta.get("model_version"):
        tags.append(step_meta["model_version"])
    batch = (job.get("meta") or {}).get("batch") or {}
    if batch.get("type"):
        tags.append(f"type:{batch['type']}")
    for key, value in sorted((batch.get("fields") or {}).items()):
        tags.append(f"{key}:{value}")
    extra = batch.get("tags")
    if isinstance(extra, dict):
        tags += [f"{key}:{value}" for key, value in sorted(extra.items())]
    elif isinstance(extra, (list, tuple)):
        tags += [str(t) for t in extra]
    tags += [f"part:{name}" for name in part_names if name]
    return list(dict.fromkeys(t[:63] for t in tags))  # Blender tags are at most 63 bytes


def set_tags(asset_data, tags: list[str]) -> None:
    present = {t.name for t in asset_data.tags}
    for tag in tags:
        if tag not in present:
            asset_data.tags.new(tag, skip_if_exists=True)


def set_preview_from_image(data_block, image) -> bool:
    """Copies an image into the ID's preview (scaled to fit PREVIEW_SIZE); False if it could not."""
    import numpy as np

    width, height = image.size[:]
    if not width or not height:
        return False
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, 4)
    step = max(1, -(-max(width, height) // PREVIEW_SIZE))  # ceil: fits within PREVIEW_SIZE
    pixels = np.ascontiguousarray(pixels[::step, ::step])
    preview = data_block.preview_ensure()
    preview.image_size = (pixels.shape[1], pixels.shape[0])
    preview.image_pixels_float.foreach_set(pixels.ravel())
    return True


def asset_target(context, name: str, asset_id: str, root, objects: list):
    """The ID to mark: the only object, or the asset's collection holding all its objects."""
    if len(objects) <= 1:
        return root
    collection = next((c for c in root.users_collection
                       if c.get(COLLECTION_ASSET_PROPERTY) == asset_id), None)
    if collection is None:
        parent = root.users_collection[0] if root.users_collection else context.scene.collection
        collection = bpy.data.collections.new(name)
        collection[COLLECTION_ASSET_PROPERTY] = asset_id
        parent.children.link(collection)
        for obj in objects:
            for old in list(obj.users_collection):
                old.objects.unlink(obj)
            collection.objects.link(obj)
    collection.instance_offset = root.matrix_world.translation
    return collection


def mark(context, job: dict, result, step_meta: dict, part_names: list[str]) -> object | None:
    """Marks an import's result as an asset (see the module docstring); returns the marked ID,
    or None when the preference is off or nothing was imported."""
    if result.root is None or not enabled(context):
        return None
    root = result.root
    objects = list(result.objects)
    target = asset_target(context, root.name, step_meta.get("asset_id") or job["job_id"], root, objects)
    if target.asset_data is None:
        target.asset_mark()
    asset_data = target.asset_data
    asset_data.description = step_meta.get("prompt") or ""
    asset_data.author = {"tripo": "Tripo", "3daistudio": "3D AI Studio"}.get(
        step_meta.get("provider") or "tripo", str(step_meta.get("provider") or "Tripo"))
    set_tags(asset_data, tags_for(job, step_meta, part_names))
    several = len(objects) > 1
    path = catalog_path(project_of(job, context), asset_type_of(job, result.armature, several))
    asset_data.catalog_id = catalog_id(path)
    target[CATALOG_PROPERTY] = path
    if result.preview is None or not _copy_preview(target, result.preview):
        if not bpy.app.background:  # renders with the GPU; nothing renders under `blender -b`
            target.asset_generate_preview()
    metadata.write(root, {"asset_browser": f"{'COLLECTION' if several else 'OBJECT'}:{target.name}"})
    if bpy.data.filepath:
        write_catalogs()
    return target


def _copy_preview(target, image) -> bool:
    try:
        return set_preview_from_image(target, image)
    except (RuntimeError, ValueError, AttributeError) as exc:  # a bad preview must not lose the model
        log.warning("the preview of %s could not be used: %s", target.name, exc)
        return False


def replace_tags(target, prefix: str, tags: list[str]) -> None:
    """For the batch runner: the asset's tags starting with `prefix` become `tags` (QC state)."""
    if target is None or target.asset_data is None:
        return
    for tag in [t for t in target.asset_data.tags if t.name.startswith(prefix)]:
        target.asset_data.tags.remove(tag)
    set_tags(target.asset_data, tags)


def marked_id_of(root):
    """The ID marked for the asset `root` belongs to (None when not marked)."""
    if root is None:
        return None
    if root.asset_data is not None:
        return root
    asset_id = (metadata.read(root) or {}).get("asset_id")
    return next((c for c in root.users_collection
                 if c.asset_data is not None and c.get(COLLECTION_ASSET_PROPERTY) == asset_id), None)


@bpy.app.handlers.persistent
def _on_save_post(*_args) -> None:
    try:
        write_catalogs()
    except Exception:  # noqa: BLE001 - a save must never fail because of the catalogs
        log.exception("could not write the asset catalogs")


def register() -> None:
    bpy.app.handlers.save_post.append(_on_save_post)


def unregister() -> None:
    while _on_save_post in bpy.app.handlers.save_post:
        bpy.app.handlers.save_post.remove(_on_save_post)
