"""Where the emulated aarch64 runtime lives, and what it is made of.

The cache directory is the root of an arm64 Debian bookworm file system
(`DIR/usr/bin/python3.11`, its libraries), plus `DIR/site` (the unpacked
aarch64 wheels, put on `PYTHONPATH`) and `DIR/tfsparse-emulator.json` (the
manifest written last, when the build is complete). It defaults to
`~/.cache/tfsparse/arm64`; the environment variable `TFSPARSE_CACHE_DIR` or
an explicit argument overrides it.

Example:

>>> from tfsparse.emulator.paths import resolve_cache_dir
>>> resolve_cache_dir("/tmp/arm64")
'/tmp/arm64'
"""

from __future__ import annotations

import os

#: Environment variable that overrides the default cache directory.
CACHE_ENV = "TFSPARSE_CACHE_DIR"
#: The default cache directory.
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tfsparse", "arm64")
#: The manifest file, written when a build completes.
MANIFEST_NAME = "tfsparse-emulator.json"
#: Bumped whenever the layout or the recipe changes (older caches are rebuilt).
MANIFEST_VERSION = 1
#: Debian release of the root file system.
SUITE = "bookworm"
#: Python inside the root file system.
PYTHON = "usr/bin/python3.11"
#: Debian packages debootstrap fetches besides the minimal base.
DEBIAN_PACKAGES = ("python3.11", "libpython3.11-stdlib")
#: aarch64 wheels unpacked into `DIR/site`: tflite-runtime runs under qemu 7.2
#: (ai-edge-litert's aarch64 build crashes there) and needs numpy < 2.
WHEELS = ("tflite-runtime==2.14.0", "numpy==1.26.4")
#: pip platform tags of the wheels.
PLATFORMS = ("manylinux_2_34_aarch64", "manylinux2014_aarch64")


def resolve_cache_dir(cache_dir=None) -> str:
    """The absolute cache directory: the argument, else `$TFSPARSE_CACHE_DIR`, else the default.

    Args:
        cache_dir: A directory, or `None`. Defaults to `None`.

    Returns:
        The absolute path (`~` expanded).

    Raises:
        ValueError: if `cache_dir` is neither `None` nor a path.

    Example:

    >>> from tfsparse.emulator.paths import resolve_cache_dir
    >>> resolve_cache_dir(3)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value received for argument `cache_dir`. Expected a directory path or None (then $TFSPARSE_CACHE_DIR, else ~/.cache/tfsparse/arm64). Received: cache_dir=3
    """
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    if not isinstance(cache_dir, (str, os.PathLike)) or not os.fspath(cache_dir):
        raise ValueError(
            "Invalid value received for argument `cache_dir`. Expected a directory path or None (then "
            f"${CACHE_ENV}, else ~/.cache/tfsparse/arm64). Received: cache_dir={cache_dir!r}"
        )
    return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))


def python_path(cache_dir: str) -> str:
    """The arm64 Python executable inside `cache_dir`."""
    return os.path.join(cache_dir, PYTHON)


def site_path(cache_dir: str) -> str:
    """The folder of unpacked aarch64 wheels inside `cache_dir`."""
    return os.path.join(cache_dir, "site")


def manifest_path(cache_dir: str) -> str:
    """The manifest file inside `cache_dir`."""
    return os.path.join(cache_dir, MANIFEST_NAME)
