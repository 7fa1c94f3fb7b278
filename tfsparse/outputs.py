"""Writing output files safely: checked paths, atomic replace, no leftovers.

Every file tfsparse writes goes through `atomic_output`: the content is
written to a temporary file in the same directory and moved into place with
`os.replace` only when complete, so a crash or an error never leaves a
half-written file, and an existing file is replaced only when asked.

Example:

>>> import os, tempfile
>>> from tfsparse.outputs import atomic_output, write_text
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> with atomic_output(path) as tmp:
...     with open(tmp, "w") as handle:
...         _ = handle.write("done")
>>> write_text(path + ".md", "# ok")
>>> sorted(os.listdir(os.path.dirname(path)))
['a.txt', 'a.txt.md']
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def check_output_path(path, *, overwrite=False, argument="output") -> str:
    """Validates an output file path before any work is done.

    Args:
        path: Where the file will be written.
        overwrite: Whether an existing file may be replaced. Defaults to
            `False`.
        argument: The argument name used in error messages. Defaults to
            `"output"`.

    Returns:
        The path as a string.

    Raises:
        ValueError: if the directory does not exist, the path is a
            directory, or the file exists and `overwrite` is `False`.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. The directory "
            f"{directory} does not exist; create it first or choose another "
            f"path. Received: {argument}={path}"
        )
    if os.path.isdir(path):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected a file "
            f"path, but it is a directory. Received: {argument}={path}"
        )
    if os.path.exists(path) and not overwrite:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. The file already "
            f"exists and is left untouched; pass overwrite=True (--overwrite) to "
            f"replace it, or choose another path. Received: {argument}={path}"
        )
    return path


def check_output_dir(path, *, files=(), overwrite=False, argument="output") -> str:
    """Validates an output directory; creates it if only it is missing.

    Args:
        path: The directory.
        files: File names that will be written into it; existing ones are
            refused unless `overwrite`. Defaults to `()`.
        overwrite: Whether existing files may be replaced. Defaults to
            `False`.
        argument: The argument name used in error messages.

    Returns:
        The directory as a string.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Its parent "
            f"directory {parent} does not exist; create it first. "
            f"Received: {argument}={path}"
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected a "
            f"directory, but it is a file. Received: {argument}={path}"
        )
    existing = [name for name in files if os.path.exists(os.path.join(path, name))]
    if existing and not overwrite:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. It already holds "
            f"{', '.join(existing)}, which are left untouched; pass --overwrite to "
            f"replace them, or choose another directory. Received: {argument}={path}"
        )
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_output(path, *, overwrite=True, suffix=None):
    """Yields a temporary path that replaces `path` when the block succeeds.

    Args:
        path: The final file path.
        overwrite: Whether an existing file may be replaced (checked again at
            the end, in case it appeared meanwhile). Defaults to `True`.
        suffix: Suffix of the temporary file (some writers need the right
            extension, e.g. `.keras`). Defaults to the final path's.

    Raises:
        ValueError: (at the end) if the file exists and `overwrite` is False.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1] if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=".tfsparse-", suffix=suffix, dir=directory)
    os.close(fd)
    os.remove(tmp)  # writers that refuse existing files get a free name
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise RuntimeError(f"Nothing was written for {path}.")
        if not overwrite and os.path.exists(path):
            check_output_path(path, overwrite=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, content, *, overwrite=True) -> None:
    """Writes `content` to `path` atomically (flushed to disk first)."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())


def write_text(path, text, *, overwrite=True) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
