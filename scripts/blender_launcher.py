"""A small `blender`-compatible command line over the `bpy` module from PyPI.

Why it exists: this machine kind has no Blender binary, only Blender as a Python module
(`pip install bpy`). pytest-blender, the demo and batch users all call a `blender` executable,
so `scripts/_provision.sh` installs this launcher as `<venv>/bin/blender`. It implements the part
of Blender's command line they use, with Blender's semantics:

    blender --version
    blender -b [--factory-startup] [--online-mode] [--python-exit-code N]
            [--python FILE | --python-expr EXPR]... [-- script arguments...]

Arguments are processed in order, like Blender does; `sys.argv` inside a script is the whole
command line (so `sys.argv[sys.argv.index("--") + 1:]` gives the script's own arguments), a
script's `sys.exit(n)` ends the process with status n, and an exception in a script is printed
and ends the process with `--python-exit-code` (0 when not given, as in Blender). With a real
Blender (`BLENDER_EXECUTABLE`), none of this is used.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import runpy
import sys
import traceback

# Flags accepted for compatibility that change nothing here: the module always runs in
# background mode, and it never loads a user's startup file or add-ons on its own.
NO_OP_FLAGS = {
    "-b", "--background", "--factory-startup", "--python-use-system-env", "-noaudio",
    "--disable-autoexec", "-Y", "--enable-autoexec", "--quiet", "-q",
}


def bpy_version() -> str:
    return importlib.metadata.version("bpy")


def print_version() -> None:
    version = bpy_version()
    lts = " LTS" if version.startswith(("4.2.", "4.5.")) else ""
    sys.stdout.write(f"Blender {version}{lts}\n\tbuild: bpy module from PyPI (scripts/blender_launcher.py)\n")


def run(argv: list[str]) -> int:
    # Blender's own arguments end at "--"; what follows belongs to the scripts.
    args = argv[: argv.index("--")] if "--" in argv else argv
    if "--version" in args or "-v" in args:
        print_version()
        return 0
    # What a script sees as sys.argv in real Blender: the executable and every argument.
    sys.argv = [os.environ.get("BLENDER_EXECUTABLE") or "blender", *argv]

    import bpy  # noqa: F401  (imported once, before any script runs, as Blender would)

    exit_code_on_error = 0
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in NO_OP_FLAGS:
            i += 1
        elif arg == "--online-mode":
            bpy.context.preferences.system.use_online_access = True
            i += 1
        elif arg == "--offline-mode":
            bpy.context.preferences.system.use_online_access = False
            i += 1
        elif arg == "--python-exit-code":
            exit_code_on_error = int(args[i + 1])
            i += 2
        elif arg in ("--python", "-P", "--python-expr"):
            if i + 1 >= len(args):
                sys.stderr.write(f"Error: {arg} needs an argument\n")
                return 1
            status = run_python(arg, args[i + 1], exit_code_on_error)
            if status is not None:
                return status
            i += 2
        elif arg.endswith(".blend") and os.path.isfile(arg):
            bpy.ops.wm.open_mainfile(filepath=arg)
            i += 1
        else:
            sys.stderr.write(f"Error: argument not supported by the bpy launcher: {arg}\n")
            return 1
    return 0


def run_python(kind: str, value: str, exit_code_on_error: int) -> int | None:
    """Runs one script or expression; returns an exit status when the process must end."""
    try:
        if kind == "--python-expr":
            exec(compile(value, "<string>", "exec"), {"__name__": "__main__"})
        else:
            runpy.run_path(value, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return 1
    except BaseException:  # noqa: BLE001 - Blender prints any script error the same way
        traceback.print_exc()
        if exit_code_on_error:
            return exit_code_on_error
    return None


def main() -> None:
    status = run(sys.argv[1:])
    # End the process the way Blender does, without the bpy module's interpreter teardown: that
    # teardown can hang forever (seen with bpy 4.5 after an operator reported an error). Flush
    # what Python would have flushed first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
