"""`status()`: whether the emulated aarch64 runtime is built, and where.

Reads only the manifest and checks that the files it promises exist, so it
is instant and starts no emulator.

Example:

>>> import tempfile
>>> from tfsparse.emulator.status import status
>>> result = status(tempfile.mkdtemp())
>>> result.ready, "tfsparse emulator setup" in result.reason
(False, True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

from tfsparse.emulator import paths
from tfsparse.emulator.errors import SETUP_COMMAND


@dataclasses.dataclass(frozen=True)
class EmulatorStatus:
    """The state of the emulated aarch64 runtime.

    Attributes:
        ready: Whether `run_python` can run.
        built: Whether a complete build of this tfsparse version is in
            `cache_dir` (it may still not be ready, e.g. without qemu).
        reason: Why it is not ready (naming the fix), or `"ready"`.
        cache_dir: The cache directory (the arm64 root file system).
        python: The arm64 Python executable.
        site: The folder of unpacked aarch64 wheels (on `PYTHONPATH`).
        qemu: The `qemu-aarch64` executable, or `None` if not installed.
        versions: What the manifest records (Debian suite, mirror, wheels).
    """

    ready: bool
    built: bool
    reason: str
    cache_dir: str
    python: str
    site: str
    qemu: str | None
    versions: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """The status as a JSON-compatible dict."""
        return dataclasses.asdict(self)

    def __str__(self):
        lines = [f"emulator: {'ready' if self.ready else 'not ready'}"]
        if not self.ready:
            lines.append(f"  reason:    {self.reason}")
        lines += [f"  cache_dir: {self.cache_dir}", f"  python:    {self.python}", f"  site:      {self.site}",
                  f"  qemu:      {self.qemu or 'not installed'}"]
        lines += [f"  {key + ':':<10} {value}" for key, value in self.versions.items()]
        return "\n".join(lines)


def read_manifest(cache_dir: str):
    """The manifest of a complete build in `cache_dir`, or `None`."""
    try:
        with open(paths.manifest_path(cache_dir), encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def status(cache_dir=None) -> EmulatorStatus:
    """Whether the emulated aarch64 runtime is built in `cache_dir`.

    Args:
        cache_dir: The cache directory. Defaults to `None`
            (`$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`).

    Returns:
        An `EmulatorStatus`.
    """
    cache_dir = paths.resolve_cache_dir(cache_dir)
    python, site = paths.python_path(cache_dir), paths.site_path(cache_dir)
    qemu = shutil.which("qemu-aarch64")
    manifest = read_manifest(cache_dir)
    versions = dict((manifest or {}).get("versions", {}))
    reason = "ready"
    if manifest is None:
        reason = f"no complete build in {cache_dir}; run `{SETUP_COMMAND}`"
    elif manifest.get("manifest_version") != paths.MANIFEST_VERSION:
        reason = (f"the build in {cache_dir} is from another tfsparse version; run `{SETUP_COMMAND}` "
                  "to rebuild it")
    elif not os.path.isfile(python) or not os.path.isdir(site):
        reason = f"the build in {cache_dir} is incomplete ({python} or {site} missing); run `{SETUP_COMMAND}`"
    elif qemu is None:
        reason = "qemu-aarch64 is not installed; run `apt-get install -y qemu-user` (or `bash tools/setup.sh`)"
    built = reason == "ready" or reason.startswith("qemu-aarch64")
    return EmulatorStatus(ready=reason == "ready", built=built, reason=reason, cache_dir=cache_dir, python=python,
                          site=site, qemu=qemu, versions=versions)
