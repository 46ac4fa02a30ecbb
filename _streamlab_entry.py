"""The ``streamlab`` console script: Ctrl-C or SIGTERM while Python imports streamlab (pandas, numpy: a
second or so) prints one line and exits 130 or 143, as it does later, where a traceback and a death by
the signal were printed. This module is top level because importing any module inside ``streamlab``
first imports the package; it imports nothing but the standard library before it sets the handling up,
then hands over to :func:`streamlab.cli.main` (which handles both signals from there on).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["main"]


class _Terminated(BaseException):
    """SIGTERM while streamlab is imported."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _signals_held(hold: bool) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while streamlab and its dependencies are imported, and deliver them
    when that is done: a KeyboardInterrupt raised inside a third-party import was swallowed there (a bare
    ``except``, an extension module's init turning it into an ImportError), and the command went on with
    a module half imported ("pyarrow>=16.0.0 is required", or a run that finished as if never stopped)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hold or not hasattr(signal, "pthread_sigmask"):  # (Windows: no signal masks)
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:  # a signal that came meanwhile is delivered now, and raises here
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def main() -> int:
    """Run ``streamlab`` with ``sys.argv``; returns the exit status (see :func:`streamlab.cli.main`)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        with _signals_held(in_main_thread):
            from streamlab.cli import main as cli_main
        return cli_main()
    except (KeyboardInterrupt, _Terminated) as stop:
        # (before streamlab.cli.main's own handling, or after it: its text and statuses, which cannot be
        # imported to say them here)
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        prog = f"streamlab {command}" if command in ("demo", "run", "export", "bench") else "streamlab"
        stopped = "terminated" if isinstance(stop, _Terminated) else "interrupted"
        print(f"{prog}: {stopped}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
