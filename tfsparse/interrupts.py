"""Interrupts that unwind: SIGTERM like Ctrl-C, and none lost inside TensorFlow.

`sigterm_unwinds()` (used by the command line) makes SIGTERM raise
`Terminated` in the main thread, so `finally` blocks remove temporary and
unfinished files as they do for Ctrl-C's `KeyboardInterrupt`.
`interrupts_not_swallowed()` (used by export) raises such an interrupt again
if code inside the block swallowed it or turned it into another error.

Example:

>>> from tfsparse.interrupts import sigterm_unwinds
>>> with sigterm_unwinds():
...     pass
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so `finally` blocks remove temporary and unfinished files."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds():
    """SIGTERM unwinds like Ctrl-C (SIGINT) while a command runs; the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_not_swallowed():
    """Raises again, at the end of the block, an interrupt that TensorFlow swallowed or turned into another error.

    A Python signal handler (SIGINT's `KeyboardInterrupt`, the CLI's SIGTERM
    handler) raises wherever the main thread is; inside TensorFlow or Keras
    (tracing, tensor conversion) a broad `except` can then drop that exception,
    so the export would finish and write its file, or turn it into another
    error. While the block runs, each signal with a Python handler goes through
    a wrapper that remembers what the handler raised, and that exception is
    raised here if the block ends without it. Only in the main thread (the only
    one with signal handlers); signals without a Python handler are untouched.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised, previous = [], {}

    def remembering(handler):
        def handle(signum, frame):
            try:
                handler(signum, frame)
            except BaseException as error:
                raised.append(error)
                raise
        return handle

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, remembering(handler))
    try:
        yield
    except BaseException as error:
        if raised and error is not raised[0]:
            raise raised[0]  # the interrupt, not the error TensorFlow made of it
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if raised:
        raise raised[0]
