"""Background runs stop gracefully (flush, commit) on SIGTERM and at interpreter exit.

While at least one ``RunHandle`` lives, a SIGTERM handler installed from the main thread stops every
live handle, then chains to the handler that was there before (calls it; ``SIG_DFL``: exits with status
128 + 15, as the default would report; ``SIG_IGN``: nothing more). When the last live handle has
stopped, the previous handler is put back (from the main thread: the next time one calls in, a stop, a
wait or the next start). A handler set over ours while no run lives is the one the next start chains to.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamlab.runtime.handle import RunHandle

log = logging.getLogger("streamlab")

_LIVE: weakref.WeakSet[RunHandle] = weakref.WeakSet()
_LOCK = threading.RLock()  # re-entered when SIGTERM lands while the main thread holds it
_PREVIOUS_SIGTERM: Any = None
_INSTALLED = False  # our SIGTERM handler is in place
_AT_EXIT = False
_IN_HANDLER = False  # _on_sigterm is running (a chain of handlers may lead back to it)


def _stop_live_handles() -> None:
    for handle in list(_LIVE):
        if handle.thread.is_alive():
            try:
                handle.stop(timeout=30.0)
            except Exception:  # shutting down: stop the others too
                log.exception("stopping pipeline %r at shutdown failed", handle.pipeline.name)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _IN_HANDLER
    if _IN_HANDLER:  # a handler set over ours that chains to ours, and that ours chains to: stop here
        return
    _IN_HANDLER = True
    try:
        previous = _PREVIOUS_SIGTERM
        _stop_live_handles()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)
    finally:
        _IN_HANDLER = False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def register(handle: RunHandle) -> None:
    """``handle`` is live: make sure the shutdown hooks are in place (the SIGTERM one from the main thread)."""
    global _PREVIOUS_SIGTERM, _INSTALLED, _AT_EXIT
    with _LOCK:
        _LIVE.add(handle)
        if not _AT_EXIT:
            atexit.register(_stop_live_handles)
            _AT_EXIT = True
        if not _in_main_thread():
            return
        if _INSTALLED and not any(h.thread.is_alive() for h in list(_LIVE) if h is not handle):
            # no other run lives, yet ours is marked installed: the last run ended without a release
            # from the main thread (nobody waited for it, or one stopped it from another thread), and
            # the handler found now may be one set since over ours; finish that release first, so the
            # handler found now is chained and this run is covered
            _restore_previous()
        if not _INSTALLED:
            _PREVIOUS_SIGTERM = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
            _INSTALLED = True


def release() -> None:
    """A handle stopped: when none lives, put the previous SIGTERM handler back and drop the exit hook.

    Only the main thread may set a signal handler: elsewhere this waits for the next call from it.
    A handler someone installed over ours is left alone.
    """
    global _PREVIOUS_SIGTERM, _INSTALLED, _AT_EXIT
    with _LOCK:
        if any(h.thread.is_alive() for h in list(_LIVE)):
            return
        _LIVE.clear()
        if _AT_EXIT:
            atexit.unregister(_stop_live_handles)
            _AT_EXIT = False
        if _INSTALLED and _in_main_thread():
            _restore_previous()


def _restore_previous() -> None:
    """Put the handler ours replaced back (unless another was set over ours since); main thread only."""
    global _PREVIOUS_SIGTERM, _INSTALLED
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        # None: the previous handler was not set from Python; the default is the nearest
        previous = _PREVIOUS_SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    _PREVIOUS_SIGTERM = None
    _INSTALLED = False
