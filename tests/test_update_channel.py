"""The update channel: the build writes an extension repository (`index.json` beside the zip, by
Blender's own `server-generate`); Blender adds it by URL, syncs, installs from it, and sees the
update once a higher version is built there.

In the bpy module this runs Blender's own operators and its own "updates available" count
(`bl_pkg.repo_stats_calc_outdated_for_repo_directory`: `repo_stats_calc` itself returns early in
background mode). The copy installed from the repository is not enabled: the session's enabled
copy (user_default) would clash with it. Enabling it and the status-bar update notice need a
real Blender with a window (the GUI tier)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import bpy
import pytest

from conftest import REPO

REPO_MODULE = "tripo_updates"


def build(repo_dir: Path, version: str) -> Path:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(repo_dir),
                          "--version", version, "--quiet"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def installed_version(directory: str) -> str:
    manifest = Path(directory) / "tripo_blender" / "blender_manifest.toml"
    return tomllib.loads(manifest.read_text())["version"]


@pytest.fixture
def update_repo(tmp_path):
    prefs = bpy.context.preferences
    prefs.system.use_online_access = True
    repos = prefs.extensions.repos
    others = [(r, r.enabled) for r in repos if r.use_remote_url]
    for repo, _ in others:
        repo.enabled = False  # nothing of extensions.blender.org in a test (no network)
    repo_dir = tmp_path / "repository"
    repo_dir.mkdir()
    yield repo_dir
    for repo, enabled in others:
        repo.enabled = enabled
    repo = repos.get(REPO_MODULE) if hasattr(repos, "get") else next(
        (r for r in repos if r.module == REPO_MODULE), None)
    if repo is not None:
        repos.remove(repo)


def test_the_build_writes_a_repository_index_blender_installs_from_and_updates(update_repo):
    zip_path = build(update_repo, "0.1.0")
    index = json.loads((update_repo / "index.json").read_text())
    (entry,) = index["data"]
    assert entry["id"] == "tripo_blender" and entry["version"] == "0.1.0"
    assert entry["archive_url"].endswith(zip_path.name)

    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="Tripo", module=REPO_MODULE, remote_url=(update_repo / "index.json").as_uri())
    repo_index = [r for r in repos if r.enabled].index(repo)  # Blender counts enabled ones only
    assert bpy.ops.extensions.repo_sync(repo_directory=repo.directory, repo_index=repo_index) == {"FINISHED"}
    assert bpy.ops.extensions.package_install(repo_directory=repo.directory, repo_index=repo_index,
                                              pkg_id="tripo_blender", enable_on_install=False) == {"FINISHED"}
    assert installed_version(repo.directory) == "0.1.0"

    import bl_pkg
    store = bl_pkg.repo_cache_store_ensure()
    assert bl_pkg.repo_stats_calc_outdated_for_repo_directory(store, repo.directory) == 0

    build(update_repo, "0.2.0")
    # Blender reads one entry per extension id: the repository holds the newest build only.
    assert [e["version"] for e in json.loads((update_repo / "index.json").read_text())["data"]] == ["0.2.0"]
    assert not zip_path.exists()
    assert bpy.ops.extensions.repo_sync(repo_directory=repo.directory, repo_index=repo_index) == {"FINISHED"}
    assert bl_pkg.repo_stats_calc_outdated_for_repo_directory(store, repo.directory) == 1, "update offered"

    assert bpy.ops.extensions.package_upgrade_all() == {"FINISHED"}
    assert installed_version(repo.directory) == "0.2.0"
    assert bl_pkg.repo_stats_calc_outdated_for_repo_directory(store, repo.directory) == 0
