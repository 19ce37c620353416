"""The key and connection settings outlive the extension's lifecycle (issue 16).

Blender frees an add-on's preferences on `addon_disable` (and an update disables the extension),
so the settings are kept in a file in the extension's user folder and restored on register.
The key stays private: the file is 0600, and neither a saved .blend nor a log line holds the key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

from conftest import PACKAGE, _extension_zip
from test_ui_draw import RecordingLayout, labels

SECRET = "tsk_persist_secret_7f3a9c51e2"
STUDIO_SECRET = "sk_studio_secret_b81d44"


def current_prefs():
    """The live preferences: the object from before a disable is freed by Blender.

    Tests that disable the extension take no `prefs` argument: pytest shows the arguments of a
    failing test, and showing a freed preferences object crashes Blender."""
    return bpy.context.preferences.addons[PACKAGE].preferences


def settings_path(tmod) -> Path:
    return Path(tmod("blender.settings").settings_file_path())


def disable_then_enable() -> None:
    assert bpy.ops.preferences.addon_disable(module=PACKAGE) == {"FINISHED"}
    assert PACKAGE not in bpy.context.preferences.addons  # the preferences really were freed
    assert bpy.ops.preferences.addon_enable(module=PACKAGE) == {"FINISHED"}


@pytest.fixture(autouse=True)
def fresh_settings_file(tripo_extension, tmod):
    """No settings file before or after a test; the preferences are back to their defaults after.

    Autouse, so it is set up before (and torn down after) `connected`, whose teardown writes the
    file through the update callbacks."""
    path = settings_path(tmod)
    path.unlink(missing_ok=True)
    yield path
    if PACKAGE not in bpy.context.preferences.addons:  # a test failed between disable and enable
        bpy.ops.preferences.addon_enable(module=PACKAGE)
    prefs = current_prefs()
    for name in tmod("core.providers.settings_store").PERSISTED_NAMES:
        setattr(prefs, name, prefs.bl_rna.properties[name].default)
    settings_path(tmod).unlink(missing_ok=True)


def set_everything(prefs, tmp_path) -> dict:
    values = {
        "provider": "3daistudio",
        "api_key": SECRET,
        "api_base": "custom",
        "custom_base_url": "http://127.0.0.1:9911",
        "aistudio_api_key": STUDIO_SECRET,
        "aistudio_base_url": "http://127.0.0.1:9922",
        "proxy_mode": "custom",
        "proxy_url": "http://proxy.internal:3128",
        "download_dir": str(tmp_path / "tripo downloads"),
        "mark_as_assets": False,
    }
    for name, value in values.items():
        setattr(prefs, name, value)
    return values


def persisted(prefs, tmod) -> dict:
    return {name: getattr(prefs, name) for name in tmod("core.providers.settings_store").PERSISTED_NAMES}


# --- the file on its own (core, no bpy) ------------------------------------------------------------

def test_store_writes_atomically_privately_and_reads_back(tmod, tmp_path, caplog):
    store = tmod("core.providers.settings_store")
    path = tmp_path / "user" / "settings.json"
    store.write_settings(path, {"api_key": SECRET, "provider": "tripo", "not_a_setting": "x"})
    assert store.read_settings(path) == {"api_key": SECRET, "provider": "tripo"}
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.write_settings(path, {"api_key": "", "provider": "3daistudio"})
    assert store.read_settings(path) == {"api_key": "", "provider": "3daistudio"}
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp file left behind

    caplog.set_level(logging.DEBUG)
    path.write_text('{"settings": {"api_key": "' + SECRET)  # truncated JSON around a key
    assert store.read_settings(path) == {}
    path.write_text(json.dumps({"settings": {"api_key": SECRET, "proxy_mode": 3, "mark_as_assets": "no"}}))
    assert store.read_settings(path) == {"api_key": SECRET}
    store.write_settings(path, {"mark_as_assets": False})
    assert store.read_settings(path) == {"mark_as_assets": False}
    assert store.read_settings(tmp_path / "missing.json") == {}
    assert "not valid JSON" in caplog.text and "proxy_mode" in caplog.text
    assert SECRET not in caplog.text


# --- disable / enable ----------------------------------------------------------------------------

def test_settings_survive_disable_and_enable(tmod, tmp_path):
    prefs = current_prefs()
    expected = set_everything(prefs, tmp_path)
    disable_then_enable()
    assert persisted(current_prefs(), tmod) == expected
    # The file the values came from lives in the user folder, outside the extension's own folder.
    path = settings_path(tmod)
    assert json.loads(path.read_text())["settings"] == expected
    assert not path.is_relative_to(Path(sys.modules[PACKAGE].__file__).parent)


def test_restoring_does_not_write_the_file(tmod, tmp_path):
    prefs = current_prefs()
    set_everything(prefs, tmp_path)
    before = settings_path(tmod).stat()
    disable_then_enable()
    after = settings_path(tmod).stat()
    # Every write replaces the file (a new inode): restoring must not write it back.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_blender_preferences_are_saved_to_a_missing_file_on_enable(tmod, fresh_settings_file):
    prefs = current_prefs()
    # An update from a version without the file: what Blender's preferences hold is kept.
    settings_module = tmod("ui.preferences")
    with settings_module._without_saving():
        prefs.api_key = SECRET
    assert not fresh_settings_file.exists()
    import addon_utils  # keeps the preferences (unlike addon_disable), like a Blender restart
    addon_utils.disable(PACKAGE)
    addon_utils.enable(PACKAGE, default_set=True)
    assert json.loads(fresh_settings_file.read_text())["settings"]["api_key"] == SECRET


def test_invalid_enum_values_in_the_file_are_ignored_with_a_warning(tmod, caplog):
    prefs = current_prefs()
    store = tmod("core.providers.settings_store")
    prefs.proxy_mode = "none"
    store.write_settings(settings_path(tmod), {"api_key": SECRET, "provider": SECRET,
                                               "api_base": "moon", "proxy_mode": "custom"})
    caplog.set_level(logging.DEBUG)
    disable_then_enable()
    restored = current_prefs()
    assert restored.api_key == SECRET and restored.proxy_mode == "custom"
    assert (restored.provider, restored.api_base) == ("tripo", "global")  # the defaults
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("provider" in w for w in warnings) and any("api_base" in w for w in warnings)
    assert SECRET not in caplog.text


def test_job_in_flight_during_the_disable_lands_once_after_enable(connected, tmod):
    connected.configure(task_seconds=2.0)
    job_id = tmod("api").generate("a stone well", wait_for_result=False)
    disable_then_enable()  # frees the preferences: the key must come back for the job to resume
    assert current_prefs().api_key == connected.api_key
    # In background mode nothing resumes on its own (issue 11): the script's wait resumes the job.
    assert tmod("api").wait([job_id], timeout=60)[0].job["state"] == "imported"
    assert len([o for o in bpy.data.objects if "tripo" in o]) == 1
    assert len(connected.creates()) == 1
    assert tmod("api").wait_all(timeout=5) == []  # nothing left to land a second time


# --- an update -----------------------------------------------------------------------------------

def bumped_zip(source: Path, target: Path) -> str:
    """A copy of the extension zip whose manifest has a higher patch version."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "blender_manifest.toml":
                version = tomllib.loads(data.decode())["version"]
                major, minor, patch = (int(part) for part in version.split("."))
                new_version = f"{major}.{minor}.{patch + 1}"
                data = re.sub(rb'(?m)^version = "[^"]*"', f'version = "{new_version}"'.encode(), data)
            copy.writestr(item, data)
    return new_version


def installed_version() -> str:
    manifest = Path(sys.modules[PACKAGE].__file__).parent / "blender_manifest.toml"
    return tomllib.loads(manifest.read_text())["version"]


def install(zip_path: Path) -> None:
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert PACKAGE in bpy.context.preferences.addons


def test_an_update_keeps_the_settings(tmod, tmp_path):
    prefs = current_prefs()
    expected = set_everything(prefs, tmp_path)
    original = _extension_zip()
    update = tmp_path / "tripo_blender-update.zip"
    new_version = bumped_zip(original, update)
    try:
        install(update)
        assert installed_version() == new_version
        assert persisted(current_prefs(), tmod) == expected
        assert json.loads(settings_path(tmod).read_text())["settings"] == expected
    finally:
        install(original)  # the rest of the suite runs against the zip under test
    assert installed_version() != new_version


# --- privacy ---------------------------------------------------------------------------------------

def test_key_file_is_private_and_the_key_stays_out_of_blends_and_logs(tmod, tmp_path, caplog):
    prefs = current_prefs()
    caplog.set_level(logging.DEBUG)
    set_everything(prefs, tmp_path)
    disable_then_enable()
    path = settings_path(tmod)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET in path.read_text()  # the file is where the key lives
    bpy.ops.mesh.primitive_cube_add()
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, compress=False)
    data = blend.read_bytes()
    for secret in (SECRET, STUDIO_SECRET):
        assert secret.encode() not in data
        assert secret[4:].encode() not in data
        assert secret not in caplog.text


def test_forget_key_clears_the_key_from_preferences_and_file(tmod, tmp_path):
    prefs = current_prefs()
    set_everything(prefs, tmp_path)
    assert bpy.ops.tripo.forget_key() == {"FINISHED"}
    assert (current_prefs().api_key, current_prefs().aistudio_api_key) == ("", "")
    text = settings_path(tmod).read_text()
    assert SECRET not in text and STUDIO_SECRET not in text
    assert json.loads(text)["settings"]["custom_base_url"] == "http://127.0.0.1:9911"  # the rest stays
    disable_then_enable()
    assert current_prefs().api_key == ""


def test_preferences_show_where_the_key_is_kept_and_offer_forget(prefs, tmod, monkeypatch):
    log = []

    class Drawn:  # the preferences with a recording layout (background mode draws nothing)
        layout = RecordingLayout(log)

        def __getattr__(self, name):
            return getattr(prefs, name)

    type(prefs).draw(Drawn(), bpy.context)
    assert str(settings_path(tmod)) in labels(log)
    assert ("operator", "tripo.forget_key", True) in log
    assert any(entry[:2] == ("prop", "api_key") for entry in log)
    assert prefs.bl_rna.properties["api_key"].subtype == "PASSWORD"
    assert prefs.bl_rna.properties["aistudio_api_key"].subtype == "PASSWORD"
    monkeypatch.setenv("TRIPO_API_KEY", "tsk_from_env")
    log.clear()
    type(prefs).draw(Drawn(), bpy.context)
    assert any("TRIPO_API_KEY" in text and "overrides" in text for text in labels(log))
