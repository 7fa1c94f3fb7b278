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


def _invalid(argument, problem, path) -> ValueError:
    return ValueError(f"Invalid value received for argument `{argument}`. {problem} Received: {argument}={path}")


def _check_name_lengths(paths, argument, received) -> None:
    """Refuses file names or paths the file system cannot hold (before any work, not after training)."""
    for path in paths:
        absolute = os.path.abspath(path)
        existing = os.path.dirname(absolute)
        while not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        name_max = _pathconf(existing, "PC_NAME_MAX", 255)
        path_max = _pathconf(existing, "PC_PATH_MAX", 4096)
        for part in absolute.split(os.sep):
            if len(os.fsencode(part)) > name_max:
                raise _invalid(argument, f"The name {part[:40]}... is {len(os.fsencode(part))} bytes long; this file "
                                         f"system allows at most {name_max}. Choose a shorter name.", received)
        if len(os.fsencode(absolute)) >= path_max:
            raise _invalid(argument, f"The path is {len(os.fsencode(absolute))} bytes long; this file system allows "
                                     f"at most {path_max - 1}. Choose a shorter path.", received)


def _pathconf(directory, name, default) -> int:
    try:
        return os.pathconf(directory, name)
    except (OSError, ValueError):
        return default


def _check_writable(directory, argument, received) -> None:
    """Creates and removes a probe file: permissions, read-only mounts and full disks show up now."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfsparse-probe-", dir=directory)
    except OSError as error:
        raise _invalid(argument, f"The directory {directory} is not writable ({error.strerror}); choose another "
                                 "path or fix its permissions.", received) from None
    os.close(fd)
    os.remove(probe)


def _check_parent(path, argument, what) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise _invalid(argument, f"{directory} is a file, not a directory.", path)
    if not os.path.isdir(directory):
        raise _invalid(argument, f"{what} {directory} does not exist; create it first or choose another path.", path)
    return directory


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
        ValueError: if the directory does not exist or is not writable, the
            path is a directory, the name is too long for the file system,
            or the file exists and `overwrite` is `False`.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise _invalid(argument, "Expected a file path.", repr(path))
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith(os.sep):
        raise _invalid(argument, "Expected a file path, but it is a directory.", path)
    _check_name_lengths([path], argument, path)
    directory = _check_parent(path, argument, "The directory")
    if os.path.exists(path) and not overwrite:
        raise _invalid(argument, "The file already exists and is left untouched; pass overwrite=True (--overwrite) "
                                 "to replace it, or choose another path.", path)
    _check_writable(directory, argument, path)
    return path


def check_output_dir(path, *, files=(), overwrite=False, argument="output") -> str:
    """Validates an output directory; creates it if only it is missing.

    Args:
        path: The directory.
        files: File names that will be written into it; existing ones are
            refused unless `overwrite`, and a directory in the way of one is
            refused always. Defaults to `()`.
        overwrite: Whether existing files may be replaced. Defaults to
            `False`.
        argument: The argument name used in error messages.

    Returns:
        The directory as a string.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise _invalid(argument, "Expected a directory path.", repr(path))
    path = os.fspath(path)
    _check_parent(path.rstrip(os.sep) or path, argument, "Its parent directory")
    if os.path.exists(path) and not os.path.isdir(path):
        raise _invalid(argument, "Expected a directory, but it is a file.", path)
    _check_name_lengths([os.path.join(path, name) for name in files] or [path], argument, path)
    folders = [name for name in files if os.path.isdir(os.path.join(path, name))]
    if folders:
        raise _invalid(argument, f"It holds a directory named {', '.join(folders)} where tfsparse writes a file; "
                                 "move it away or choose another directory.", path)
    existing = [name for name in files if os.path.exists(os.path.join(path, name))]
    if existing and not overwrite:
        raise _invalid(argument, f"It already holds {', '.join(existing)}, which are left untouched; pass "
                                 "--overwrite to replace them, or choose another directory.", path)
    _check_writable(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)), argument, path)
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def output_directory(path, *, files=(), overwrite=False, argument="output"):
    """`check_output_dir`, and removes the directory again if it made it and the block fails before writing.

    Example:

    >>> import os, tempfile
    >>> from tfsparse.outputs import output_directory
    >>> path = os.path.join(tempfile.mkdtemp(), "run")
    >>> try:
    ...     with output_directory(path, files=["a.txt"]):
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> os.path.exists(path)
    False
    """
    created = not os.path.exists(path)
    path = check_output_dir(path, files=files, overwrite=overwrite, argument=argument)
    try:
        yield path
    except BaseException:
        if created and os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        raise


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
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tfsparse-", suffix=suffix, dir=directory)
    except OSError as error:
        raise _could_not_write(path, error) from error
    os.close(fd)
    os.remove(tmp)  # writers that refuse existing files get a free name
    try:
        try:
            yield tmp
        except OSError as error:  # named by the final path, not the hidden temporary one
            raise _could_not_write(path, error) from error
        if not os.path.exists(tmp):
            raise RuntimeError(f"Nothing was written for {path}.")
        if not overwrite and os.path.exists(path):
            check_output_path(path, overwrite=False)
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise _could_not_write(path, error) from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _could_not_write(path, error) -> OSError:
    reason = error.strerror or str(error)
    return type(error)(error.errno, f"Could not write {path}: {reason}; nothing was written there")


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
