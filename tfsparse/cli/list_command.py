"""`tfsparse list`: registered strategies, their targets and distributions.

Broken plugins are listed and marked, never fatal.
"""

from __future__ import annotations

import json

from absl import flags

from tfsparse import registry

FLAGS = flags.FlagValues()
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=FLAGS)


def run(*, check=True):
    """Returns `registry.list_strategies(check=check)`."""
    return registry.list_strategies(check=check)


def format_table(infos) -> str:
    header = ("name", "target", "distribution", "version", "status")
    rows = [(i.name, i.target, i.distribution or "-", i.version or "-", i.status) for i in infos]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), "  ".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)])


def main(argv):
    del argv
    infos = run()
    if _JSON.value:
        print(json.dumps([{"name": i.name, "target": i.target, "distribution": i.distribution,
                           "version": i.version, "status": i.status} for i in infos], indent=2))
    else:
        print(format_table(infos))
    return 0
