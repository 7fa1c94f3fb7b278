"""Entry point: `tfsparse <command> [flags]`.

Example:

    tfsparse list
    tfsparse demo --quick

Errors are one line naming the flag to fix; `--verbose` (any command) adds
the traceback. Ctrl-C (SIGINT) and SIGTERM stop a command cleanly:
unfinished outputs and temporary files are removed.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from absl import flags, logging

from tfsparse.errors import for_command_line
from tfsparse.interrupts import Terminated, sigterm_unwinds

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


def _split_verbose(args):
    """Removes the global `--verbose` flag (tracebacks for errors) from `args`."""
    verbose, rest = False, []
    for arg in args:
        if arg in ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1"):
            verbose = True
        elif arg in ("--noverbose", "--verbose=false", "--verbose=False", "--verbose=0"):
            verbose = False
        else:
            rest.append(arg)
    return verbose, rest


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
    verbose, args = _split_verbose(argv[2:])
    if "--help" in args or "-h" in args:
        print(f"tfsparse {command}: {COMMANDS[command][1]}\n\n{module.FLAGS.get_help()}\n\n"
              "Global flag:\n  --verbose: show the traceback of an error.")
        return 0
    try:
        module.FLAGS.unparse_flags()  # back to defaults: main() may run many times in one process
        rest = module.FLAGS([f"tfsparse {command}", *args])
        missing = [name for name in getattr(module, "REQUIRED", ()) if module.FLAGS[name].value is None]
        if missing:
            raise flags.Error(f"missing required flag(s): {', '.join('--' + m for m in missing)}")
    except flags.Error as error:
        print(f"tfsparse {command}: {error}\n(see tfsparse {command} --help)", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        with sigterm_unwinds():
            return module.main(rest)
    except (KeyboardInterrupt, Terminated) as interrupt:
        name = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        print(f"\ntfsparse {command}: interrupted ({name}); unfinished and temporary files were removed, "
              "finished ones kept.", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130
    except Exception as error:  # one line per error; the traceback only with --verbose
        if verbose:
            traceback.print_exc()
        print(f"tfsparse {command}: error: {_describe(error, module, verbose)}", file=sys.stderr)
        return 1


def _describe(error, module, verbose) -> str:
    """The error's message with the command's flag names; unexpected types are named."""
    message = for_command_line(str(error), flags=list(module.FLAGS), aliases=getattr(module, "ARGUMENT_FLAGS", None))
    if isinstance(error, (ValueError, ImportError, OSError)):
        return message
    hint = "" if verbose else " (unexpected; run again with --verbose for the traceback)"
    return f"{type(error).__name__}: {message}{hint}"


def entry_point():
    """Console script `tfsparse`."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    entry_point()
