"""`setup()`: build the emulated aarch64 runtime once (idempotent).

The recipe (see `shared/design/xnnpack-sparse.md`, "Emulated aarch64
runtime"):

1. `debootstrap --arch=arm64 --foreign --variant=minbase
   --include=python3.11,libpython3.11-stdlib bookworm DIR MIRROR` with the
   mirror apt already uses here (`tfsparse.emulator.mirror`);
2. `dpkg -x` every `.deb` under `DIR/var/cache/apt/archives` into `DIR`
   (`--foreign` downloads but does not install them);
3. `pip download --only-binary=:all: --python-version 3.11 --implementation cp
   --platform manylinux_2_34_aarch64 --platform manylinux2014_aarch64
   tflite-runtime==2.14.0 numpy==1.26.4`, unzipped into `DIR/site`;
4. a smoke test (the arm64 Python imports both under qemu), then the
   manifest `DIR/tfsparse-emulator.json`.

Everything is built in a temporary sibling folder renamed to the cache
directory at the end, so the cache is either complete or absent. With a
complete cache `setup()` returns at once.

Example:

>>> import os, tempfile
>>> from tfsparse.emulator.build import setup
>>> def fake_builder(directory, progress):
...     os.makedirs(os.path.join(directory, "usr", "bin"))
...     open(os.path.join(directory, "usr", "bin", "python3.11"), "w").close()
...     os.makedirs(os.path.join(directory, "site"))
...     return {"suite": "bookworm"}
>>> cache = os.path.join(tempfile.mkdtemp(), "arm64")
>>> setup(cache, builder=fake_builder, progress=None).versions["suite"]
'bookworm'
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

from tfsparse.emulator import paths
from tfsparse.emulator.errors import EmulatorError
from tfsparse.emulator.status import read_manifest, status

_INSTALL_HINT = "Install them with `apt-get install -y qemu-user debootstrap` (or run `bash tools/setup.sh`)."


def _say(progress, message) -> None:
    if progress is not None:
        progress(f"emulator setup: {message}")


def check_tools() -> None:
    """Checks that qemu-aarch64, debootstrap and dpkg are installed and we can run debootstrap.

    Raises:
        EmulatorError: naming the missing tools and how to install them.
    """
    missing = [tool for tool in ("qemu-aarch64", "debootstrap", "dpkg")
               if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise EmulatorError(f"The emulator setup needs {', '.join(missing)}, which {verb} not installed. "
                            f"{_INSTALL_HINT}")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise EmulatorError("The emulator setup runs debootstrap, which needs root. Run `sudo tfsparse emulator "
                            "setup` (with TFSPARSE_CACHE_DIR set to where it should live), or `bash tools/setup.sh`.")


def _run(command, what, **kwargs) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    except OSError as error:
        raise EmulatorError(f"Cannot run {command[0]} ({what}): {error}. {_INSTALL_HINT}") from error
    if completed.returncode != 0:
        tail = (completed.stderr.strip() or completed.stdout.strip())[-2000:]
        raise EmulatorError(f"{what} failed (exit status {completed.returncode}): {' '.join(command)}\n{tail}")
    return completed.stdout


def build_rootfs(directory, progress=print, *, mirror=None) -> dict:
    """Builds the arm64 root file system and wheels into `directory`; returns its versions.

    Args:
        directory: An empty folder to build in.
        progress: Called with progress messages, or `None`. Defaults to `print`.
        mirror: The Debian mirror. Defaults to `None` (the one apt uses here).

    Returns:
        What the manifest records: suite, mirror, Python package, wheels.

    Raises:
        EmulatorError: if a step fails (with its output).
    """
    from tfsparse.emulator.mirror import configured_mirror

    mirror = mirror or configured_mirror(paths.SUITE)
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    _say(progress, f"debootstrap arm64 {paths.SUITE} from {mirror} (downloads ~40 MB)")
    _run([debootstrap, "--arch=arm64", "--foreign", "--variant=minbase",
          f"--include={','.join(paths.DEBIAN_PACKAGES)}", paths.SUITE, directory, mirror], "debootstrap")
    debs = sorted(glob.glob(os.path.join(directory, "var", "cache", "apt", "archives", "*.deb")))
    if not debs:
        raise EmulatorError(f"debootstrap downloaded no packages into {directory}/var/cache/apt/archives.")
    _say(progress, f"unpacking {len(debs)} Debian packages")
    for deb in debs:
        _run(["dpkg", "-x", deb, directory], f"dpkg -x {os.path.basename(deb)}")
    python_deb = [os.path.basename(d) for d in debs if os.path.basename(d).startswith("python3.11_")]
    wheels = os.path.join(directory, "wheels")
    _say(progress, f"pip download {' '.join(paths.WHEELS)} (aarch64)")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp"]
    for platform in paths.PLATFORMS:
        command += ["--platform", platform]
    _run([*command, *paths.WHEELS, "-d", wheels], "pip download")
    site = paths.site_path(directory)
    os.makedirs(site, exist_ok=True)
    names = sorted(os.listdir(wheels))
    for name in names:
        with zipfile.ZipFile(os.path.join(wheels, name)) as archive:
            archive.extractall(site)
    shutil.rmtree(wheels)
    for deb in debs:  # the packages are unpacked; their archives only take space
        os.remove(deb)
    _say(progress, "smoke test: importing tflite_runtime in the emulated Python")
    from tfsparse.emulator.qemu import python_command

    command, env = python_command(directory, ["-c", "import numpy, platform, tflite_runtime; "
                                              "print(platform.machine(), tflite_runtime.__version__)"],
                                  qemu=shutil.which("qemu-aarch64") or "qemu-aarch64")
    machine = _run(command, "smoke test of the emulated Python", env=env).strip()
    return {"suite": paths.SUITE, "mirror": mirror, "python_package": python_deb[0] if python_deb else "python3.11",
            "wheels": " ".join(names), "smoke_test": machine}


def setup(cache_dir=None, *, progress=print, force=False, builder=None):
    """Builds the emulated aarch64 runtime into `cache_dir` unless it is already there.

    Args:
        cache_dir: The cache directory. Defaults to `None`
            (`$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`).
        progress: Called with progress messages, or `None`. Defaults to `print`.
        force: Rebuild even if a complete build exists. Defaults to `False`.
        builder: `builder(directory, progress) -> versions` that fills an
            empty folder. Defaults to `None` (`build_rootfs`, which needs
            root, qemu-user, debootstrap and network access to the mirror and
            to pip's index).

    Returns:
        The `EmulatorStatus` after the build.

    Raises:
        EmulatorError: if a tool is missing, a step fails, or `cache_dir`
            holds something that is not a build of this function.
    """
    cache_dir = paths.resolve_cache_dir(cache_dir)
    current = status(cache_dir)
    if current.built and not force:
        _say(progress, f"already set up in {cache_dir}")
        return current
    if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise EmulatorError(f"The cache directory {cache_dir} is a file. Remove it or set TFSPARSE_CACHE_DIR.")
    if os.path.isdir(cache_dir) and os.listdir(cache_dir) and read_manifest(cache_dir) is None:
        raise EmulatorError(
            f"Invalid value received for argument `cache_dir`. Expected an empty folder or a previous emulator "
            f"build (with {paths.MANIFEST_NAME}). Received: cache_dir={cache_dir}, which holds other files; "
            "remove it or pass another --cache_dir."
        )
    if builder is None:
        check_tools()
        builder = build_rootfs
    parent = os.path.dirname(cache_dir)
    os.makedirs(parent, exist_ok=True)
    started = time.time()
    directory = tempfile.mkdtemp(prefix=f".{os.path.basename(cache_dir)}-build-", dir=parent)
    try:
        versions = builder(directory, progress)
        manifest = {"manifest_version": paths.MANIFEST_VERSION, "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "seconds": round(time.time() - started, 1), "versions": dict(versions)}
        with open(paths.manifest_path(directory), "w", encoding="utf-8") as file:
            json.dump(manifest, file, indent=2)
        if os.path.isdir(cache_dir):  # empty, or a previous build being replaced
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(cache_dir)}-old-", dir=parent)
            os.rename(cache_dir, os.path.join(old, "build"))
            os.rename(directory, cache_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(directory, cache_dir)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _say(progress, f"done in {time.time() - started:.0f} s: {cache_dir}")
    return status(cache_dir)
