"""The built extension: installs as a real extension, registers cleanly, keeps secrets out of files."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from pathlib import Path

import addon_utils
import bpy
import pytest

from conftest import INSTALLED_WHEEL_FILES, PACKAGE, _extension_zip, our_handlers, our_threads


def registered_tripo_classes() -> set[str]:
    names = set()
    for base in (bpy.types.Operator, bpy.types.Panel, bpy.types.PropertyGroup,
                 bpy.types.AddonPreferences, bpy.types.UIList, bpy.types.Menu):
        for cls in base.__subclasses__():
            if cls.__module__.startswith(PACKAGE) and getattr(cls, "is_registered", False):
                names.add(cls.__name__)
    return names


def test_imported_as_installed_extension(tripo):
    assert tripo.__name__ == "bl_ext.user_default.tripo_blender"
    installed = Path(tripo.__file__).parent
    assert (installed / "blender_manifest.toml").is_file()
    # The install lives in the temporary user directory, never in a real profile.
    assert str(installed).startswith(bpy.utils.user_resource("EXTENSIONS"))


def test_bundled_pydantic_wheels_were_installed():
    # Blender unpacked the manifest's wheels into the extensions' shared site-packages on install.
    assert INSTALLED_WHEEL_FILES, "installing the extension unpacked no pydantic_core"
    assert all("/extensions/.local/" in str(p) for p in INSTALLED_WHEEL_FILES)


def test_manifest_lists_pydantic_for_every_platform_and_abi():
    with zipfile.ZipFile(_extension_zip()) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        names = set(archive.namelist())
    assert manifest["id"] == "tripo_blender"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    wheels = manifest["wheels"]
    for wheel in wheels:
        assert wheel.removeprefix("./") in names
    core = [w for w in wheels if "pydantic_core" in w]
    for abi in ("cp311", "cp313"):
        for platform in ("manylinux", "macosx_10_12_x86_64", "macosx_11_0_arm64", "win_amd64"):
            assert any(abi in w and platform in w for w in core), (abi, platform)
    for pure in ("pydantic-", "annotated_types", "typing_extensions", "typing_inspection"):
        assert any(pure in w for w in wheels), pure
    assert not any("requests" in w for w in wheels), "Blender ships requests"


def assert_nothing_of_ours_remains(timer_function) -> None:
    assert registered_tripo_classes() == set()
    assert our_handlers() == []
    assert our_threads() == [], our_threads()
    assert not bpy.app.timers.is_registered(timer_function)


def test_register_unregister_reregister_leaves_no_classes_handlers_threads_or_timer(connected, tmod):
    before = registered_tripo_classes()
    assert "TRIPO_AddonPreferences" in before
    for _ in range(2):  # twice, to catch state left behind by the first cycle
        timer = tmod("ui.timer")
        timer.start_timer(force=True)  # as register() does in a real window (not under -b)
        tmod("blender.runtime").get_runtime().ensure_engine()
        assert our_handlers() and our_threads()
        addon_utils.disable(PACKAGE)
        assert_nothing_of_ours_remains(timer._timer)
        addon_utils.enable(PACKAGE, default_set=True)
        assert registered_tripo_classes() == before


def test_api_key_is_never_saved_into_a_blend(prefs, tmp_path):
    secret = "tsk_supersecret_do_not_leak_42"
    prefs.api_key = secret
    try:
        bpy.ops.mesh.primitive_cube_add()
        path = tmp_path / "scene.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
        data = path.read_bytes()
        assert secret.encode() not in data
        assert secret[4:].encode() not in data
    finally:
        prefs.api_key = ""


def test_environment_overrides_preferences(tmod, prefs, monkeypatch):
    settings = tmod("blender.settings")
    prefs.api_key = "tsk_from_prefs"
    prefs.api_base = "china"
    try:
        assert settings.connection_settings().base_url == "https://openapi.tripo3d.com"
        assert settings.connection_settings().api_key == "tsk_from_prefs"
        monkeypatch.setenv("TRIPO_API_KEY", "tsk_from_env")
        monkeypatch.setenv("TRIPO_API_BASE", "http://127.0.0.1:9")
        resolved = settings.connection_settings()
        assert resolved.api_key == "tsk_from_env"
        assert resolved.base_url == "http://127.0.0.1:9"
        assert "tsk_from_env" not in repr(resolved)
    finally:
        prefs.api_key = ""
        prefs.api_base = "global"


def test_network_actions_refuse_when_online_access_is_off(tmod):
    settings = tmod("blender.settings")
    bpy.context.preferences.system.use_online_access = False
    with pytest.raises(settings.OfflineError, match="--online-mode"):
        settings.require_online_access()
    bpy.context.preferences.system.use_online_access = True
    settings.require_online_access()


def test_launcher_passes_script_arguments_like_blender(tmp_path):
    import os
    import subprocess
    blender = os.environ.get("BLENDER_EXECUTABLE")
    if not blender:
        pytest.skip("no blender command")
    script = tmp_path / "args.py"
    script.write_text("import sys\nprint('ARGS=' + repr(sys.argv[sys.argv.index('--') + 1:]))\n"
                      "sys.exit(int(sys.argv[-1]))\n")
    result = subprocess.run([blender, "-b", "--factory-startup", "--python", str(script), "--",
                             "--out", "dir with space", "3"], capture_output=True, text=True)
    assert "ARGS=['--out', 'dir with space', '3']" in result.stdout
    assert result.returncode == 3
    failing = subprocess.run([blender, "-b", "--python-exit-code", "7", "--python-expr",
                              "raise RuntimeError('boom')"], capture_output=True, text=True)
    assert failing.returncode == 7
    assert "boom" in failing.stderr
    version = subprocess.run([blender, "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("Blender ")
    assert version.stdout.split()[1][0].isdigit()

