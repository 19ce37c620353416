"""The GUI tier, part two: the Asset Browser, batch asset libraries, the History panel, import by
task id, and the extension's own update repository, in a real Blender 4.3.2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib

from harness import REPO, real_blender
from test_gui_scenarios import ROOTS, submit_generate

# The largest area becomes an Asset Browser (its space exists from the next redraw on).
OPEN_ASSET_BROWSER = """
win = bpy.context.window_manager.windows[0]
max(win.screen.areas, key=lambda a: a.width * a.height).ui_type = 'ASSETS'
result = True
"""

SHOW_ASSET_BROWSER = """
import importlib
assets = importlib.import_module(PACKAGE + '.blender.assets')
root = bpy.data.objects[ROOT]
asset = assets.marked_id_of(root)
win = bpy.context.window_manager.windows[0]
area = next(a for a in win.screen.areas if a.ui_type == 'ASSETS')
space = area.spaces.active
space.params.asset_library_reference = LIBRARY
space.params.display_type = 'THUMBNAIL'
space.show_region_tool_props = True
if asset is not None:
    space.params.catalog_id = asset.asset_data.catalog_id
    with bpy.context.temp_override(window=win, area=area):
        space.activate_asset_by_id(asset, deferred=True)
data = asset.asset_data if asset is not None else None
result = None if data is None else {'name': asset.name, 'description': data.description, 'author': data.author,
          'tags': [t.name for t in data.tags], 'catalog_id': data.catalog_id,
          'catalog': data.catalog_simple_name, 'preview': asset.preview is not None and asset.preview.image_size[0] > 0}
"""


def test_k_generated_asset_in_the_asset_browser(user, launch, emulator):
    blender = launch(user)
    blend = user.root / "library" / "props.blend"
    blend.parent.mkdir()
    blender.run(f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})\nresult = True")
    submit_generate(blender, "a wooden treasure chest")
    root = blender.wait_for(ROOTS, 90, "the asset landing")[0]["name"]
    blender.run("bpy.ops.wm.save_mainfile()\nresult = True")  # the catalog file is written on save
    blender.run(OPEN_ASSET_BROWSER)
    time.sleep(1)
    shown = blender.run(SHOW_ASSET_BROWSER.replace("ROOT", repr(root)).replace("LIBRARY", "'LOCAL'"))
    time.sleep(2)
    blender.screenshot("asset-browser")
    assert shown is not None, "the asset is marked"
    assert shown["description"] == "a wooden treasure chest"
    assert "Tripo" in shown["author"]
    assert "Tripo" in shown["tags"] and "text_to_model" in shown["tags"]
    assert shown["preview"], "Tripo's preview is the asset's thumbnail"
    catalogs = (blend.parent / "blender_assets.cats.txt").read_text()
    assert shown["catalog_id"] in catalogs and "Tripo/" in catalogs


BATCH = """
[batch]
project = "GUI"
blend = "library.blend"

[[jobs]]
name = "crate_{style}"
prompt = "a {style} wooden crate"
vars = { style = ["rustic", "painted"] }
"""


def test_l_batch_blend_opens_as_an_asset_library(user, launch, emulator, extension_zip):
    batch_file, out = user.root / "batch.toml", user.root / "batch-out"
    batch_file.write_text(BATCH)
    run = subprocess.run(
        [str(real_blender()), "-b", "--factory-startup", "--online-mode", "--python-exit-code", "1",
         "--python", str(REPO / "scripts" / "tripo_batch.py"), "--", str(batch_file), "--out", str(out),
         "--extension-zip", str(extension_zip)],
        env=user.environment(**emulator.connection_env()), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    library = out / "library.blend"
    assert library.is_file() and (out / "blender_assets.cats.txt").is_file()

    blender = launch(user)
    listed = blender.run(f"""
bpy.ops.preferences.asset_library_add(directory={str(out)!r})
lib = bpy.context.preferences.filepaths.asset_libraries[-1]
lib.name = 'Batch GUI'
with bpy.data.libraries.load({str(library)!r}, assets_only=True) as (source, _):
    names = list(source.objects) + list(source.collections)
with bpy.data.libraries.load({str(library)!r}, link=True, assets_only=True) as (source, target):
    target.objects, target.collections = list(source.objects), list(source.collections)
linked = [i for i in list(target.objects) + list(target.collections) if i is not None]
result = {{'names': sorted(names), 'catalogs': sorted({{i.asset_data.catalog_id for i in linked}}),
          'previews': all(i.preview is not None and i.preview.image_size[0] > 0 for i in linked)}}
""")
    blender.run(OPEN_ASSET_BROWSER)
    time.sleep(1)
    blender.run(SHOW_ASSET_BROWSER.replace("bpy.data.objects[ROOT]", "None").replace("LIBRARY", "'Batch GUI'")
                .replace("asset = assets.marked_id_of(root)", "asset = None"))
    time.sleep(3)
    blender.screenshot("batch-library")
    assert len(listed["names"]) == 2, listed
    catalogs = (out / "blender_assets.cats.txt").read_text()
    assert listed["catalogs"] and all(c in catalogs for c in listed["catalogs"]), "every asset in a catalog"
    assert listed["previews"]


def test_m_history_reimport_and_import_by_task_id(user, launch, emulator):
    blender = launch(user)
    submit_generate(blender, "a brass telescope")
    blender.wait_for(ROOTS, 90, "the asset landing")
    entries = blender.run("assert invoke('tripo.history_refresh') == ['FINISHED']\n"
                          "import importlib\nh = importlib.import_module(PACKAGE + '.blender.history').get_history()\n"
                          "result = [[e.task_id, e.prompt] for e in h.entries]")
    assert [prompt for _, prompt in entries] == ["a brass telescope"]
    time.sleep(1)
    blender.screenshot("history")
    blender.run(f"assert invoke('tripo.history_reimport', task_id={entries[0][0]!r}) == ['FINISHED']\nresult = True")
    assert len(blender.run(f"result = {ROOTS}")) == 2, "re-imported from the local files"

    # A task made elsewhere with the same key (the web console, another machine).
    import requests

    http = requests.Session()
    http.trust_env = False
    answer = http.post(f"{emulator.base_url}/v3/generation/text-to-model", json={"prompt": "a task from the web console", "model": "v3.1-20260211"},
                       headers={"Authorization": f"Bearer {emulator.api_key}"}, timeout=30).json()
    assert answer.get("code") == 0, answer
    task_id = answer["data"]["task_id"]
    creates = len(emulator.creates())
    # The dialog's OK runs the operator's execute with the typed id.
    blender.run(f"result = sorted(bpy.ops.tripo.import_task('EXEC_DEFAULT', task_id={task_id!r}))")
    roots = blender.wait_for(f"[o for o in {ROOTS} if o['task_type']] if len({ROOTS}) == 3 else None", 90,
                             "the imported task")
    blender.screenshot("imported-by-task-id")
    assert len(roots) == 3
    assert len(emulator.creates()) == creates, "importing by id creates nothing"


def test_n_update_repository_install_and_update(tmp_path):
    """A real Blender added to our extension repository (file://) installs from it, and offers
    the update once the version rises."""
    repo_dir, user_dir = tmp_path / "repo", tmp_path / "fresh-user"
    user_dir.mkdir()
    build = [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--blender", str(real_blender()),
             "--out", str(repo_dir), "--quiet"]
    subprocess.run([*build, "--version", "0.0.1"], check=True, capture_output=True, text=True, timeout=600)
    assert (repo_dir / "index.json").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPO_", "BLENDER_USER"))}
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    installed = user_dir / "extensions" / "tripo_updates" / "tripo_blender" / "blender_manifest.toml"

    def extension(*args: str) -> str:
        run = subprocess.run([str(real_blender()), "--online-mode", "--command", "extension", *args],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def installed_version() -> str:
        return tomllib.loads(installed.read_text())["version"]

    extension("repo-add", "--name", "Tripo", "--url", (repo_dir / "index.json").as_uri(), "tripo_updates")
    extension("sync")
    extension("install", "tripo_blender")
    assert installed_version() == "0.0.1"
    assert "tripo_blender [installed]" in extension("list")
    subprocess.run([*build, "--version", "0.0.2"], check=True, capture_output=True, text=True, timeout=600)
    extension("sync")
    assert "tripo_blender [outdated: 0.0.1 -> 0.0.2]" in extension("list"), "the update is offered"
    extension("update")
    assert installed_version() == "0.0.2"
