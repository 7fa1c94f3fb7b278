"""`tfsparse emulator setup|status`: the emulated aarch64 runtime.

`setup` builds it once (an arm64 Debian root file system with tflite-runtime,
~250 MB; needs root, `qemu-user` and `debootstrap`); `status` says whether it
is ready. Benchmark on it with `tfsparse bench FILE --target=arm-emu`.

Example:

    tfsparse emulator setup
    tfsparse emulator status --cache_dir=/tmp/arm64
"""

from __future__ import annotations

import json

from absl import flags

FLAGS = flags.FlagValues()
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "The emulator cache (default $TFSPARSE_CACHE_DIR, else ~/.cache/tfsparse/arm64).",
    flag_values=FLAGS)
_FORCE = flags.DEFINE_bool("force", False, "setup: rebuild even if a complete build exists.", flag_values=FLAGS)
_JSON = flags.DEFINE_bool("json", False, "status: print JSON.", flag_values=FLAGS)

#: Sub-commands.
ACTIONS = ("setup", "status")


def run(action, *, cache_dir=None, force=False):
    """Runs `setup` or `status`; returns the `EmulatorStatus`.

    Raises:
        ValueError: for an unknown action.
        EmulatorError: if the setup fails.
    """
    from tfsparse import emulator

    if action == "setup":
        return emulator.setup(cache_dir, force=force, progress=print)
    if action == "status":
        return emulator.status(cache_dir)
    raise ValueError(f"Invalid value received for argument `action`. Expected one of {', '.join(ACTIONS)} "
                     f"(tfsparse emulator setup|status). Received: action={action!r}")


def main(argv):
    if len(argv) != 2:
        raise ValueError("Invalid value received for argument `action`. Expected exactly one of "
                         f"{', '.join(ACTIONS)}: tfsparse emulator setup|status. Received: {argv[1:]}")
    state = run(argv[1], cache_dir=_CACHE_DIR.value, force=_FORCE.value)
    print(json.dumps(state.to_dict(), indent=2) if _JSON.value else state)
    return 0 if state.ready or argv[1] == "status" else 1
