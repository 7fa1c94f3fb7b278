"""The `tfsparse` command line (absl-py flags, one module per command).

Each command module has its own `FLAGS` (`absl.flags.FlagValues`), an
importable `run(...)` that does the work and returns a result object, and a
`main(argv)` that only reads flags and prints.
"""
