"""The task history (journal + sidecars), its search, re-import from it, and import by task id of
a task made elsewhere with the same key (created here straight on the emulator, as the web
console would)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import bpy
import pytest
import requests

from conftest import write_png
from test_image_results import assert_depth_plane, assert_splat


def made_elsewhere(emulator, prompt: str, **params) -> str:
    """A task created with the same key but not through Blender (the web console, a script)."""
    response = requests.post(
        f"{emulator.base_url}/v3/generation/text-to-model",
        json={"prompt": prompt, "model": "v3.1-20260211", **params},
        headers={"Authorization": f"Bearer {emulator.api_key}"}, timeout=30,
        proxies={"http": None, "https": None})
    response.raise_for_status()
    return response.json()["data"]["task_id"]


def image_task_made_elsewhere(emulator, route: str, image: Path, **params) -> tuple[str, str]:
    """An image task (splat, depth) created with the same key but not through Blender: the image
    uploaded, then the task created on it. Returns (task id, the image's file token)."""
    auth = {"Authorization": f"Bearer {emulator.api_key}"}
    no_proxy = {"http": None, "https": None}
    with open(image, "rb") as handle:
        upload = requests.post(f"{emulator.base_url}/v3/files", headers=auth, proxies=no_proxy, timeout=30,
                               files={"file": (image.name, handle, "image/png")})
    upload.raise_for_status()
    token = upload.json()["data"]["file_token"]
    response = requests.post(f"{emulator.base_url}{route}", json={"input": token, **params},
                             headers=auth, proxies=no_proxy, timeout=30)
    response.raise_for_status()
    return response.json()["data"]["task_id"], token


def tripo_roots():
    return [o for o in bpy.data.objects if "tripo" in o and o.parent is None]


def test_history_lists_tasks_from_journal_and_sidecars_and_searches_them(connected, tmod):
    api = tmod("api")
    chest = api.generate("a wooden treasure chest")
    lantern = api.generate("a brass lantern", texture=False, pbr=False)
    chest_task, lantern_task = chest.task_ids[0], lantern.task_ids[0]

    entries = {e.task_id: e for e in api.history()}
    assert {chest_task, lantern_task} <= set(entries)
    entry = entries[chest_task]
    assert entry.prompt == "a wooden treasure chest" and entry.task_type == "text_to_model"
    assert entry.credits > 0 and entry.source == "journal"
    assert os.path.isfile(entry.preview) and entry.importable
    # Sidecars were written beside the downloads at import.
    sidecar = Path(entry.model).parent / "01_text_to_model.task.json"
    assert json.loads(sidecar.read_text())["task_id"] == chest_task

    def found(query):
        return {e.task_id for e in api.history(query, refresh=False)} & {chest_task, lantern_task}

    assert found("lantern") == {lantern_task}
    assert found("BRASS Lantern") == {lantern_task}
    assert found(chest_task[:8]) == {chest_task}
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert found(today) == {chest_task, lantern_task}
    assert found("text_to_model chest") == {chest_task}
    assert found("image_to_model") == set()

    # "Remove from List" deletes the journal entry: the sidecar keeps the task in the history.
    journal = Path(tmod("blender.runtime").get_runtime().journal_dir())
    (journal / f"{chest.job['job_id']}.json").unlink()
    entry = {e.task_id: e for e in api.history()}[chest_task]
    assert entry.source.endswith(".task.json") and entry.importable
    assert entry.prompt == "a wooden treasure chest" and entry.credits > 0


def test_a_task_is_reimported_from_the_history(connected, tmod):
    api = tmod("api")
    task_id = api.generate("a stone well").task_ids[0]
    bpy.ops.wm.read_homefile(use_empty=True)  # a new file: the model is not in it
    assert tripo_roots() == []
    tmod("ui.history").refresh()
    bpy.context.scene.cursor.location = (3.0, 0.0, 0.0)
    assert bpy.ops.tripo.history_reimport(task_id=task_id) == {"FINISHED"}
    (root,) = tripo_roots()
    assert root["tripo"]["task_id"] == task_id and root["tripo"]["prompt"] == "a stone well"
    assert tuple(root.location) == pytest.approx((3.0, 0.0, 0.0))
    assert root.asset_data is not None
    creates = len(connected.creates())
    assert creates == 1  # nothing sent again

    # From a sidecar only (the journal forgot it), too.
    journal = Path(tmod("blender.runtime").get_runtime().journal_dir())
    for path in journal.glob("*.json"):
        path.unlink()
    tmod("ui.history").refresh()
    assert bpy.ops.tripo.history_reimport(task_id=task_id) == {"FINISHED"}
    assert len(tripo_roots()) == 2


def test_import_by_task_id_fetches_downloads_and_imports_a_task_made_elsewhere(connected, tmod):
    task_id = made_elsewhere(connected, "a copper kettle", face_limit=3000)
    before = len(connected.creates())
    assert bpy.ops.tripo.import_task(task_id=task_id) == {"FINISHED"}
    (root,) = tripo_roots()
    meta = root["tripo"].to_dict()
    assert meta["task_id"] == task_id and meta["task_type"] == "text_to_model"
    assert meta["prompt"] == "a copper kettle" and root.name == "a copper kettle"
    assert json.loads(meta["params_json"])["face_limit"] == 3000
    assert meta["model_version"] == "v3.1-20260211" and meta["credits"] > 0
    assert root.asset_data is not None and root.asset_data.description == "a copper kettle"
    assert len(connected.creates()) == before, "importing a task creates none"
    gets = [r for r in connected.api_requests() if r["method"] == "GET" and r["path"] == f"/v3/tasks/{task_id}"]
    assert gets, "the task was read with GET /v3/tasks/{id}"
    assert task_id in {e.task_id for e in tmod("api").history()}


def test_import_by_task_id_of_a_running_task_waits_for_it(connected, tmod):
    connected.configure(task_seconds=1.5)
    task_id = made_elsewhere(connected, "a clay pot")
    result = tmod("api").import_task(task_id, timeout=60)
    assert result.root["tripo"]["task_id"] == task_id


def test_import_by_unknown_task_id_is_reported_and_never_creates(connected):
    with pytest.raises(RuntimeError, match="(?i)not found|does not know|unknown"):
        bpy.ops.tripo.import_task(task_id="00000000-0000-4000-8000-00000000dead")
    assert tripo_roots() == []
    assert connected.creates() == []


def test_results_are_downloaded_as_soon_as_they_finish_not_when_imported(connected, tmod):
    runtime = tmod("blender.runtime").get_runtime()
    recipes = tmod("core.engine.recipes")
    job_id = runtime.submit(recipes.generation_job(prompt="a tin robot", options={"model": "v3.1-20260211"}))
    deadline = time.monotonic() + 60
    while runtime.jobs[job_id].get("state") != "ready":
        assert time.monotonic() < deadline
        runtime.tick()  # drains events; lands nothing (that is the UI timer's land_ready)
        time.sleep(0.05)
    files = runtime.jobs[job_id]["steps"][0]["files"]
    assert os.path.isfile(files["model_url"]) and os.path.isfile(files["rendered_image_url"])
    assert tripo_roots() == []


def test_history_panel_draws_from_memory_and_the_timer_scans(connected, tmod):
    from test_ui_draw import draw_all, labels

    task_id = tmod("api").generate("a rusty anchor").task_ids[0]
    history = tmod("blender.history").get_history()
    history.loaded, history.entries = False, []  # as after a start: nothing read yet
    log = draw_all(bpy.context)
    assert "Reading the task history…" in labels(log) and history.wanted  # draw did not scan
    assert tmod("ui.timer").tick(bpy.context) > 0  # the timer scans
    assert history.loaded and not history.wanted
    bpy.context.window_manager.tripo_history_search = "anchor"
    try:
        log = draw_all(bpy.context)
    finally:
        bpy.context.window_manager.tripo_history_search = ""
    assert "a rusty anchor" in labels(log)
    assert ("set", "tripo.history_reimport.task_id", task_id) in log
    assert ("operator", "tripo.import_task", True) in log


def test_import_by_task_id_of_a_splat_made_elsewhere_lands_as_a_point_cloud(connected, tmod, tmp_path):
    task_id, token = image_task_made_elsewhere(connected, "/v3/generation/image-to-splat",
                                               write_png(tmp_path / "bust.png"), model_seed=3)
    before = len(connected.creates())
    assert bpy.ops.tripo.import_task(task_id=task_id) == {"FINISHED"}
    (root,) = tripo_roots()
    assert_splat(root, connected, token)  # exactly as a splat made from the panel
    assert root.name == f"Tripo task {task_id[:8]} splat"
    assert json.loads(root["tripo"]["params_json"])["model_seed"] == 3
    assert len(connected.creates()) == before, "importing a task creates none"
    downloads = [r["path"] for r in connected.requests() if r.get("kind") == "download"]
    assert len(downloads) == 1, downloads  # the PLY only: a splat has no preview to fetch

    # It is in the history as a splat: re-imported as one, with no network.
    entry = next(e for e in tmod("api").history() if e.task_id == task_id)
    assert entry.task_type == "image_to_splat" and tmod("blender.history").can_reimport(entry)
    again = tmod("api").reimport(task_id)
    assert again.root["tripo"]["role"] == "splat" and again.root is not root


def test_import_by_task_id_of_a_depth_map_made_elsewhere_lands_as_a_displaced_plane(connected, tmod, tmp_path):
    task_id, _token = image_task_made_elsewhere(connected, "/v3/generation/image-to-depth",
                                                write_png(tmp_path / "hall.png"), kind="color",
                                                process_res=256)
    result = tmod("api").import_task(task_id, timeout=60)
    root = result.root
    assert_depth_plane(root, connected, "color")  # exactly as a depth map made from the panel
    assert root.name == f"Tripo task {task_id[:8]} depth"
    files = result.files
    assert list(files) == ["1:depth_image_url"] and files["1:depth_image_url"].endswith(".png")
    assert root.modifiers["Depth"].texture.image.size[0] == 256
    assert len(connected.creates()) == 1  # the one made "elsewhere"; importing created none
