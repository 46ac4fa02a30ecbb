"""Exceptions that name the step, the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["PipelineConfigError", "StepFailedError", "suggest"]


class PipelineConfigError(ValueError):
    """A pipeline was configured wrongly; raised when the step is added, before anything runs.

    Examples
    --------
    >>> str(PipelineConfigError("window", "window", "unknown column 'evnt_type'", "use 'event_type'"))
    "step 'window' (window): unknown column 'evnt_type'. Fix: use 'event_type'"
    """

    def __init__(self, step_id: str, kind: str, problem: str, fix: str) -> None:
        self.step_id, self.kind, self.problem, self.fix = step_id, kind, problem, fix
        super().__init__(f"step {step_id!r} ({kind}): {problem}. Fix: {fix}")


class StepFailedError(RuntimeError):
    """A step's own code failed while running (not bad input, which goes to dead letter).

    Examples
    --------
    >>> str(StepFailedError('map', 'map', ValueError('boom')))
    "step 'map' (map) failed: ValueError: boom"
    """

    def __init__(self, step_id: str, kind: str, cause: BaseException) -> None:
        self.step_id, self.kind = step_id, kind
        super().__init__(f"step {step_id!r} ({kind}) failed: {type(cause).__name__}: {cause}")


def suggest(name: str, options: Iterable[str]) -> str:
    """A hint naming the closest known names.

    Examples
    --------
    >>> suggest("evnt_type", ["event_type", "user_id"])
    "did you mean 'event_type'? Known columns: 'event_type', 'user_id'"
    """
    opts = list(options)
    close = difflib.get_close_matches(name, opts, n=1)
    known = ", ".join(repr(o) for o in opts)
    return (f"did you mean {close[0]!r}? " if close else "") + f"Known columns: {known}"
