"""Builds the installable extension zip: blender_manifest.toml + tripo_blender/ + pydantic wheels.

    python scripts/build_extension.py [--blender BLENDER] [--out dist] [--force] [--quiet]
                                      [--version X.Y.Z]

1. Downloads the wheels of pydantic and what it needs (pydantic_core is compiled: one wheel per
   platform Blender ships and per Python ABI in use) into .cache/wheels, once.
2. Writes their list into the `wheels = [...]` of blender_manifest.toml (the committed manifest
   stays the truth of what ships).
3. Stages the package (manifest beside __init__.py, wheels under ./wheels) and runs Blender's own
   extension builder and validator on it: the `blender_ext.py` CLI inside the bpy module, or
   `blender --command extension ...` when only a real Blender is available.
4. Writes the extension repository's `index.json` beside the zip with Blender's own
   `server-generate` (older zips of ours leave the folder: Blender takes one entry per id): the
   folder is an extension repository
   Blender installs from and checks for updates (Preferences > Get Extensions > Repositories,
   URL `file:///<folder>/index.json` or the folder served over HTTP).
`--version` builds another version than the manifest's (the committed manifest is unchanged):
the update channel's tests use it.
Prints the path of the built zip on stdout. Rebuilds only when an input changed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO / "tripo_blender"
MANIFEST = REPO / "blender_manifest.toml"
WHEEL_CACHE = REPO / ".cache" / "wheels"

# Pinned to what scripts/requirements-dev.txt installs, so tests run the versions users get.
PURE_WHEELS = {
    "pydantic": "2.14.3",
    "annotated_types": "0.8.0",
    "typing_extensions": "4.16.0",
    "typing_inspection": "0.4.5",
}
COMPILED_WHEELS = {"pydantic_core": "2.50.4"}
# Blender's platforms and the wheel platform tags pydantic_core publishes for them.
PLATFORM_TAGS = {
    "linux-x64": "manylinux_2_17_x86_64",
    "macos-x64": "macosx_10_12_x86_64",
    "macos-arm64": "macosx_11_0_arm64",
    "windows-x64": "win_amd64",
}
PYTHON_ABIS = ("311", "313")  # Blender 4.2-5.0 run Python 3.11, Blender 5.1+ runs 3.13


def log(quiet: bool, message: str) -> None:
    if not quiet:
        sys.stderr.write(f"[build] {message}\n")


def pip_download(args: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(WHEEL_CACHE), *args],
        check=True, stdout=subprocess.DEVNULL,
    )


def find_wheel(name: str, version: str, tag_fragment: str = "") -> Path | None:
    for path in sorted(WHEEL_CACHE.glob(f"{name}-{version}-*.whl")):
        if tag_fragment in path.name:
            return path
    return None


def fetch_wheels(quiet: bool) -> list[Path]:
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    wheels = []
    for name, version in PURE_WHEELS.items():
        if find_wheel(name, version) is None:
            log(quiet, f"downloading {name} {version}")
            pip_download([f"{name}=={version}"])
        wheels.append(find_wheel(name, version))
    for name, version in COMPILED_WHEELS.items():
        for abi in PYTHON_ABIS:
            for platform_tag in PLATFORM_TAGS.values():
                fragment = f"cp{abi}-cp{abi}-"
                wheel = next((w for w in WHEEL_CACHE.glob(f"{name}-{version}-{fragment}*.whl")
                              if platform_tag in w.name), None)
                if wheel is None:
                    log(quiet, f"downloading {name} {version} cp{abi} {platform_tag}")
                    pip_download(["--python-version", f"3.{abi[1:]}", "--implementation", "cp",
                                  "--abi", f"cp{abi}", "--platform", platform_tag,
                                  f"{name}=={version}"])
                    wheel = next(w for w in WHEEL_CACHE.glob(f"{name}-{version}-{fragment}*.whl")
                                 if platform_tag in w.name)
                wheels.append(wheel)
    if any(w is None for w in wheels):
        raise SystemExit("a wheel could not be downloaded")
    return wheels


def write_manifest_wheels(wheels: list[Path]) -> str:
    """Puts the wheel list into the committed manifest; returns the manifest text."""
    text = MANIFEST.read_text(encoding="utf-8")
    listing = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]"
    new_text, count = re.subn(r"^wheels = \[[^\]]*\]", listing, text, count=1, flags=re.M)
    if count != 1:
        raise SystemExit("blender_manifest.toml has no `wheels = [...]` list to fill")
    if new_text != text:
        MANIFEST.write_text(new_text, encoding="utf-8")
    return new_text


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def inputs_digest(manifest_text: str, wheels: list[Path]) -> str:
    digest = hashlib.sha256(manifest_text.encode())
    for path in package_files():
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    for wheel in wheels:
        digest.update(wheel.name.encode())
    return digest.hexdigest()


def extension_cli(blender: str | None) -> list[str]:
    """The command that runs Blender's extension builder/validator."""
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        bpy_dir = spec.submodule_search_locations[0]
        found = glob.glob(os.path.join(bpy_dir, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                       "blender_ext.py"))
        if found:
            return [sys.executable, found[0]]
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    raise SystemExit("neither the bpy module nor a Blender executable is available to build with")


def write_repository_index(cli: list[str], out_dir: Path, quiet: bool, keep: Path | None = None) -> Path:
    """index.json of the extension repository `out_dir` (Blender's `server-generate`). Blender
    reads one entry per extension id, so older zips of ours leave the folder first (`keep`)."""
    if keep is not None:
        for old in out_dir.glob("tripo_blender-*.zip"):
            if old.resolve() != keep.resolve():
                log(quiet, f"removing {old.name} from the repository (older build)")
                old.unlink()
    subprocess.run([*cli, "server-generate", "--repo-dir", str(out_dir)], check=True,
                   stdout=subprocess.DEVNULL if quiet else None)
    log(quiet, f"repository index: {out_dir / 'index.json'}")
    return out_dir / "index.json"


def build(blender: str | None, out_dir: Path, force: bool, quiet: bool, version: str | None = None) -> Path:
    wheels = fetch_wheels(quiet)
    manifest_text = write_manifest_wheels(wheels)
    if version:
        if not re.fullmatch(r"\d+\.\d+\.\d+", version):
            raise SystemExit(f"--version must be X.Y.Z (semver), not {version!r}")
        manifest_text = re.sub(r'^version = "[^"]+"', f'version = "{version}"', manifest_text,
                               count=1, flags=re.M)
    version = re.search(r'^version = "([^"]+)"', manifest_text, re.M).group(1)
    zip_path = out_dir / f"tripo_blender-{version}.zip"
    stamp = out_dir / ".build-stamp"
    digest = inputs_digest(manifest_text, wheels)
    if not force and zip_path.exists() and stamp.exists() and stamp.read_text() == digest:
        log(quiet, f"up to date: {zip_path}")
        if not (out_dir / "index.json").is_file():
            write_repository_index(extension_cli(blender), out_dir, quiet, keep=zip_path)
        return zip_path

    stage = out_dir / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(PACKAGE_DIR, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (stage / "blender_manifest.toml").write_text(manifest_text, encoding="utf-8")
    (stage / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage / "wheels" / wheel.name)

    cli = extension_cli(blender)
    zip_path.unlink(missing_ok=True)
    log(quiet, f"building {zip_path.name}")
    subprocess.run([*cli, "build", "--source-dir", str(stage), "--output-filepath", str(zip_path)],
                   check=True, stdout=subprocess.DEVNULL if quiet else None)
    result = subprocess.run([*cli, "validate", str(zip_path)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"Blender's validator rejected {zip_path}")
    log(quiet, "validated by Blender's extension validator")
    shutil.rmtree(stage)
    write_repository_index(cli, out_dir, quiet, keep=zip_path)
    stamp.write_text(digest)
    return zip_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blender", default=os.environ.get("BLENDER_EXECUTABLE"))
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--version", help="build this version instead of the manifest's (X.Y.Z)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(build(args.blender, args.out.resolve(), args.force, args.quiet, args.version))


if __name__ == "__main__":
    main()
