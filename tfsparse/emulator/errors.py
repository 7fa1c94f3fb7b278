"""The error raised when the emulated aarch64 runtime is missing or fails.

`EmulatorError` subclasses `OSError`: it is about this machine's state (a
missing tool, an unbuilt cache, a crashed qemu process), and the `tfsparse`
command line prints such errors without a traceback.

Example:

>>> from tfsparse.emulator.errors import EmulatorError
>>> isinstance(EmulatorError("x"), OSError)
True
"""

from __future__ import annotations

#: The command that builds the emulator, named in every "not set up" error.
SETUP_COMMAND = "tfsparse emulator setup"


class EmulatorError(OSError):
    """The emulated aarch64 runtime is not set up, or running it failed."""


def not_ready(reason: str) -> EmulatorError:
    """The error for an emulator that is not set up.

    Args:
        reason: Why it is not ready (from `EmulatorStatus.reason`).

    Returns:
        An `EmulatorError` naming the setup command.

    Example:

    >>> from tfsparse.emulator.errors import not_ready
    >>> "tfsparse emulator setup" in str(not_ready("no cache"))
    True
    """
    fix = "" if SETUP_COMMAND in reason else f" Build it once with `{SETUP_COMMAND}` (or `bash tools/setup.sh`)."
    return EmulatorError(
        f"The emulated aarch64 runtime is not set up: {reason}.{fix} The setup needs "
        "`apt-get install -y qemu-user debootstrap` and root."
    )
