"""Headless batch generation with Tripo, run by Blender:

    blender -b --online-mode --python scripts/tripo_batch.py -- batch.toml --out DIR
        [--dry-run] [--concurrency N] [--creates-per-minute N] [--retries N]
        [--extension-zip ZIP] [--fail-on-qc] [--resubmit-unknown] [--timeout SECONDS] [--verbose]

The batch file (TOML, JSON, or YAML when PyYAML is importable) lists the jobs; see
examples/batch_reference.toml. The API key and base come from TRIPO_API_KEY / TRIPO_API_BASE or
the extension's preferences. Everything lands in DIR: one folder per asset (files named by step,
a `<stem>.task.json` sidecar per task), `report.json`, `report.txt`, `contact_sheet.png` and a
.blend with every asset. DIR/.journal makes the run resumable: rerun the same command after an
interruption and nothing is paid twice.

`--dry-run` validates the whole file and prints the estimated credits; it sends nothing.
Exit status: 0 done, 1 a job failed (or a QC check, with --fail-on-qc), 2 the batch file or the
setup is wrong (nothing was sent), 130 interrupted.

The extension must be installed (it runs as `bl_ext.<repo>.tripo_blender`). If it is not enabled
and --extension-zip is given, that zip is installed into the user_default repository first. Give
Blender `--online-mode` (or allow online access in the preferences) for real runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

EXTENSION_ID = "tripo_blender"


def script_args(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1:] if "--" in argv else []


def blender_args(argv: list[str]) -> list[str]:
    return argv[: argv.index("--")] if "--" in argv else list(argv)


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="blender -b --python scripts/tripo_batch.py --",
        description="Generate many assets with Tripo from a batch file (TOML, JSON or YAML).")
    parser.add_argument("batch", help="the batch file")
    parser.add_argument("--out", help="output folder (assets, sidecars, report, .blend, journal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and print the estimated credits; send nothing")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="tasks running at once (default 8, below the account's 10)")
    parser.add_argument("--creates-per-minute", type=int, default=None,
                        help="task creations per minute (default 100)")
    parser.add_argument("--retries", type=int, default=None,
                        help="resubmissions of a failed task where that is safe (default 1)")
    parser.add_argument("--extension-zip", default=None,
                        help="install this extension zip when the extension is not enabled")
    parser.add_argument("--fail-on-qc", action="store_true", help="exit 1 when a QC check fails")
    parser.add_argument("--resubmit-unknown", action="store_true",
                        help="resubmit creates whose outcome stayed unknown (may bill twice)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop after this many seconds (rerun to resume)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request and import")
    options = parser.parse_args(args)
    for name in ("concurrency", "creates_per_minute"):
        value = getattr(options, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if options.retries is not None and options.retries < 0:
        parser.error("--retries must be 0 or more")
    if not options.dry_run and not options.out:
        parser.error("--out is required (unless --dry-run)")
    return options


def find_extension(extension_zip: str | None = None) -> str:
    """The package name of the enabled extension (`bl_ext.<repo>.tripo_blender`), enabling an
    installed one or installing `extension_zip` when needed. Raises RuntimeError."""
    import addon_utils
    import bpy

    def enabled() -> str | None:
        for name in bpy.context.preferences.addons.keys():
            if name.startswith("bl_ext.") and name.endswith("." + EXTENSION_ID):
                return name
        return None

    name = enabled()
    if name:
        return name
    if extension_zip:
        result = bpy.ops.extensions.package_install_files(
            filepath=extension_zip, repo="user_default", enable_on_install=True)
        name = enabled()
        if result != {"FINISHED"} or not name:
            raise RuntimeError(f"could not install the extension from {extension_zip}")
        return name
    for repo in bpy.context.preferences.extensions.repos:
        if not repo.enabled:
            continue
        directory = getattr(repo, "directory", "") or ""
        if directory and os.path.isdir(os.path.join(directory, EXTENSION_ID)):
            module = f"bl_ext.{repo.module}.{EXTENSION_ID}"
            addon_utils.enable(module, default_set=True, handle_error=None)
            if enabled():
                return module
    raise RuntimeError(
        "The Tripo extension is not installed. Install it (Edit > Preferences > Get Extensions > "
        "Install from Disk) or pass --extension-zip path/to/tripo_blender.zip.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    options = parse_args(script_args(argv))
    import bpy

    if "--online-mode" in blender_args(argv):
        # Blender's own --online-mode; the bpy module launcher sets it too. Never turned on here
        # otherwise: online access is the user's decision.
        bpy.context.preferences.system.use_online_access = True
    try:
        package = find_extension(options.extension_zip)
    except RuntimeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    runner = importlib.import_module(f"{package}.blender.batch_runner")
    runner.configure_logging(options.verbose)
    result = runner.run(runner.RunOptions(
        batch_file=options.batch, out=options.out, dry_run=options.dry_run,
        concurrency=options.concurrency, creates_per_minute=options.creates_per_minute,
        retries=options.retries, fail_on_qc=options.fail_on_qc,
        resubmit_unknown=options.resubmit_unknown, timeout=options.timeout))
    stream = sys.stderr if result.exit_code == runner.EXIT_INVALID else sys.stdout
    stream.write(result.text if result.text.endswith("\n") else result.text + "\n")
    stream.flush()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
