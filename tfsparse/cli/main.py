"""Entry point: `tfsparse <command> [flags]`.

Example:

    tfsparse list
    tfsparse demo --quick
"""

from __future__ import annotations

import importlib
import os
import sys

from absl import flags, logging

COMMANDS = {
    "list": ("tfsparse.cli.list_command", "List registered strategies."),
    "prune": ("tfsparse.cli.prune", "Train a model with a pruning strategy."),
    "export": ("tfsparse.cli.export_command", "Export a model to .tflite."),
    "compatible": ("tfsparse.cli.compatible_command", "Rewrite a model so XNNPACK's sparse path can run it."),
    "inspect": ("tfsparse.cli.inspect_command", "Show sparsity of a .keras or the contents of a .tflite."),
    "bench": ("tfsparse.cli.bench_command", "Benchmark one .tflite or compare two."),
    "demo": ("tfsparse.cli.demo_command", "Prune a MobileNet on Fashion-MNIST end to end."),
    "emulator": ("tfsparse.cli.emulator_command", "Set up or check the emulated aarch64 runtime."),
}


def usage() -> str:
    lines = ["usage: tfsparse <command> [--flags]   (tfsparse <command> --help for flags)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv) -> int:
    """Runs `argv[1]` with the remaining flags; returns the exit status."""
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 2
    command = argv[1]
    if command not in COMMANDS:
        print(f"tfsparse: unknown command {command!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if "--help" in argv[2:] or "-h" in argv[2:]:
        print(f"tfsparse {command}: {COMMANDS[command][1]}\n\n{module.FLAGS.get_help()}")
        return 0
    try:
        module.FLAGS.unparse_flags()  # back to defaults: main() may run many times in one process
        rest = module.FLAGS([f"tfsparse {command}", *argv[2:]])
        missing = [name for name in getattr(module, "REQUIRED", ()) if module.FLAGS[name].value is None]
        if missing:
            raise flags.Error(f"missing required flag(s): {', '.join('--' + m for m in missing)}")
    except flags.Error as error:
        print(f"tfsparse {command}: {error}\n(see tfsparse {command} --help)", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        return module.main(rest)
    except (ValueError, ImportError, OSError) as error:
        if os.environ.get("TFSPARSE_TRACEBACK"):
            raise
        print(f"tfsparse {command}: error: {error}", file=sys.stderr)
        return 1


def entry_point():
    """Console script `tfsparse`."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    entry_point()
