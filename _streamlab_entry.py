"""The ``streamlab`` console script: Ctrl-C or SIGTERM while Python imports streamlab (pandas, numpy: a
second or so) prints one line and exits 130 or 143, as it does later, where a traceback and a death by
the signal were printed. This module is top level because importing any module inside ``streamlab``
first imports the package; it imports nothing but the standard library before it sets the handling up,
then hands over to :func:`streamlab.cli.main` (which handles both signals from there on).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

__all__ = ["main"]


class _Terminated(BaseException):
    """SIGTERM while streamlab is imported."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def main() -> int:
    """Run ``streamlab`` with ``sys.argv``; returns the exit status (see :func:`streamlab.cli.main`)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
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
