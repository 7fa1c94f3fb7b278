"""`run_python(...)`: run the arm64 Python of the cache under `qemu-aarch64`.

The command is `qemu-aarch64 DIR/usr/bin/python3.11 ARGS...` with
`QEMU_LD_PREFIX=DIR` (qemu looks up the dynamic loader and libraries inside
the arm64 root file system first) and `PYTHONPATH=DIR/site` (the aarch64
wheels). Files outside `DIR` (models, scripts) are read from this machine's
file system as usual.

Example:

>>> from tfsparse.emulator.qemu import python_command
>>> command, env = python_command("/cache", ["-c", "print(1)"], qemu="/usr/bin/qemu-aarch64", base_env={})
>>> command
['/usr/bin/qemu-aarch64', '/cache/usr/bin/python3.11', '-c', 'print(1)']
>>> env["QEMU_LD_PREFIX"], env["PYTHONPATH"]
('/cache', '/cache/site')
"""

from __future__ import annotations

import os
import subprocess

from tfsparse.emulator import paths
from tfsparse.emulator.errors import EmulatorError, not_ready

#: Characters of qemu's stderr quoted in errors.
STDERR_TAIL = 2000
#: Variables of this machine's Python that must not leak into the arm64 one.
_DROPPED = ("PYTHONHOME", "PYTHONSTARTUP", "PYENV_VERSION", "VIRTUAL_ENV")


def python_command(cache_dir, args, *, qemu="qemu-aarch64", base_env=None) -> tuple:
    """The command line and environment that run the arm64 Python.

    Args:
        cache_dir: The (absolute) cache directory.
        args: Arguments of the arm64 Python (a script and its arguments).
        qemu: The `qemu-aarch64` executable. Defaults to `"qemu-aarch64"`.
        base_env: The environment to extend. Defaults to `None` (`os.environ`).

    Returns:
        `(command, env)` for `subprocess.run`.
    """
    env = dict(os.environ if base_env is None else base_env)
    for name in _DROPPED:
        env.pop(name, None)
    env.update(QEMU_LD_PREFIX=cache_dir, PYTHONPATH=paths.site_path(cache_dir), PYTHONNOUSERSITE="1",
               PYTHONDONTWRITEBYTECODE="1")
    return [qemu, paths.python_path(cache_dir), *[os.fspath(a) for a in args]], env


def run_python(*args, cache_dir=None, timeout=None) -> str:
    """Runs the arm64 Python with `args` under qemu; returns its stdout.

    Args:
        *args: Arguments of the arm64 Python, e.g. `"-c", "print(1)"`.
        cache_dir: The cache directory. Defaults to `None`
            (`$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`).
        timeout: Seconds before the process is killed. Defaults to `None`.

    Returns:
        What the process wrote to stdout.

    Raises:
        EmulatorError: if the emulator is not set up (naming
            `tfsparse emulator setup`), or the process fails or times out
            (with the tail of its stderr).
    """
    from tfsparse.emulator.status import status

    state = status(cache_dir)
    if not state.ready:
        raise not_ready(state.reason)
    command, env = python_command(state.cache_dir, args, qemu=state.qemu)
    try:
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode("utf-8", "replace") if isinstance(error.stderr, bytes) else (error.stderr or "")
        raise EmulatorError(
            f"The emulated aarch64 Python did not finish within {timeout} s: {' '.join(command[1:])}. "
            f"Use fewer runs or smaller inputs.{_tail(stderr)}"
        ) from error
    if completed.returncode != 0:
        signal = f" (killed by signal {-completed.returncode})" if completed.returncode < 0 else ""
        raise EmulatorError(
            f"The emulated aarch64 Python failed with exit status {completed.returncode}{signal}: "
            f"{' '.join(command[1:])}. If the runtime is broken, rebuild it with `tfsparse emulator setup "
            f"--force`.{_tail(completed.stderr)}"
        )
    return completed.stdout


def _tail(stderr) -> str:
    stderr = (stderr or "").strip()
    return f"\nqemu stderr (last {STDERR_TAIL} characters):\n{stderr[-STDERR_TAIL:]}" if stderr else ""
