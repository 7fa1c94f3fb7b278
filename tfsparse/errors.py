"""One error style for the API and the command line.

API errors follow Keras' template, "Invalid value received for argument
`x`. Expected ... Received: x=...". The command line shows the same
message with its flag names (`--limit`, `--data`) instead of the API's
argument names (`limit`, `name_or_path`): `for_command_line` rewrites it.

Example:

>>> from tfsparse.errors import check_positive_int, for_command_line
>>> try:
...     check_positive_int(0, "epochs")
... except ValueError as error:
...     message = str(error)
>>> message
'Invalid value received for argument `epochs`. Expected a positive integer (1 or more). Received: epochs=0'
>>> for_command_line(message, flags=["epochs"])
'Invalid value received for flag --epochs. Expected a positive integer (1 or more). Received: --epochs=0'
"""

from __future__ import annotations

import math
import numbers
import re


def invalid_argument(argument, expected, value) -> ValueError:
    """The Keras-style `ValueError` for `argument` (which expected `expected`) given `value`."""
    return ValueError(f"Invalid value received for argument `{argument}`. Expected {expected}. "
                      f"Received: {argument}={value!r}")


def is_integer(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(value, argument, *, optional=False):
    """Returns `value` if it is an integer >= 1 (or `None` when `optional`); raises otherwise."""
    if value is None and optional:
        return value
    if not is_integer(value) or value < 1:
        raise invalid_argument(argument, "a positive integer (1 or more)", value)
    return int(value)


def check_positive_float(value, argument):
    """Returns `value` if it is a finite number > 0; raises otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise invalid_argument(argument, "a finite number greater than 0", value)
    return float(value)


def for_command_line(message, *, flags=(), aliases=None) -> str:
    """Rewrites a Keras-style message to name command-line flags.

    Args:
        message: The error message.
        flags: Flag names that are also the API's argument names.
        aliases: API argument name -> flag name, where they differ (e.g.
            `{"name_or_path": "data"}`). Defaults to `None`.

    Returns:
        The message with "argument `x`" as "flag --y" and "Received: x=" as
        "Received: --y=" for every known name; other names are left alone.
    """
    names = {name: name for name in flags}
    names.update(aliases or {})
    for argument, flag in names.items():
        message = message.replace(f"argument `{argument}`", f"flag --{flag}")
        message = re.sub(rf"\b(Received: |with ){re.escape(argument)}=", rf"\g<1>--{flag}=", message)
    return message
