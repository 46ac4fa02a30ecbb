"""Exceptions that name the step, the problem and the fix."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ParameterError",
    "PipelineConfigError",
    "SinkFailedError",
    "SpecError",
    "SpecProblem",
    "StepFailedError",
    "UntrustedSpecError",
    "check_flag",
    "check_path",
    "closest",
    "suggest",
]


def _rebuilt(cls: type[BaseException], message: str, state: dict[str, object]) -> BaseException:
    """An error of ``cls`` with ``message`` and the attributes ``state``, its ``__init__`` not called."""
    error = cls.__new__(cls)
    BaseException.__init__(error, message)
    error.__dict__.update(state)
    return error


class _PicklableError(Exception):
    """An error whose ``__init__`` takes other arguments than its message, pickled by its message and
    attributes: pickle calls ``cls(*args)`` with the message alone, which such an ``__init__`` refuses,
    so the error could not cross a process boundary (a process pool, a test worker) and became a
    ``TypeError`` about its own constructor.

    Examples
    --------
    >>> import pickle
    >>> e = pickle.loads(pickle.dumps(PipelineConfigError("w", "window", "bad", "fix it")))
    >>> str(e), e.step_id, e.fix
    ("step 'w' (window): bad. Fix: fix it", 'w', 'fix it')
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuilt, (type(self), str(self), dict(self.__dict__)))


class PipelineConfigError(_PicklableError, ValueError):
    """A pipeline was configured wrongly; raised when the step is added, before anything runs.

    Examples
    --------
    >>> str(PipelineConfigError("window", "window", "unknown column 'evnt_type'", "use 'event_type'"))
    "step 'window' (window): unknown column 'evnt_type'. Fix: use 'event_type'"

    A step config (``VelocityFeature(...)``) checks its arguments when it is made, before
    ``Stream.apply`` makes it a step: ``config=True`` says so, naming the config and the step id
    ``apply`` gives it by default (``step_id`` is the config's name).

    >>> str(PipelineConfigError("VelocityFeature", "velocity_feature", "bad", "fix it", config=True))
    "VelocityFeature (config of step 'velocity_feature': the id Stream.apply gives it unless step_id= is passed): bad. Fix: fix it"
    """

    def __init__(self, step_id: str, kind: str, problem: str, fix: str, *, config: bool = False) -> None:
        self.step_id, self.kind, self.problem, self.fix = step_id, kind, problem, fix
        where = (
            f"{step_id} (config of step {kind!r}: the id Stream.apply gives it unless step_id= is passed)"
            if config
            else f"step {step_id!r} ({kind})"
        )
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class ParameterError(_PicklableError, ValueError):
    """A parameter of a source, sink or step given a value of the wrong kind; ``parameter`` names it, so
    a spec reports it at its path (``streaming.sources[0] (step 'events').raw``).

    Examples
    --------
    >>> str(ParameterError("ReplaySource", "raw", "expected true or false, got the text 'yes'", "write true"))
    "ReplaySource(raw=...): expected true or false, got the text 'yes'. Fix: write true"
    """

    def __init__(self, owner: str, parameter: str, problem: str, fix: str) -> None:
        self.owner, self.parameter, self.problem, self.fix = owner, parameter, problem, fix
        super().__init__(f"{owner}({parameter}=...): {problem}. Fix: {fix}")


def check_flag(owner: str, parameter: str, value: Any) -> bool:
    """``value`` if it is a bool; anything else (the text ``'yes'`` or ``'false'`` of a quoted YAML value,
    which Python would take as true, a number) raises :class:`ParameterError`.

    Examples
    --------
    >>> check_flag("ReplaySource", "raw", False)
    False
    >>> check_flag("ReplaySource", "raw", "false")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: ReplaySource(raw=...): expected true or false, got the text 'false'. Fix: write raw: false without quotes (a quoted 'yes' or 'false' is text, not a boolean); in Python pass raw=False
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    got = f"the text {value!r}" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
    word = (
        "true"
        if isinstance(value, str) and value.strip().lower() in ("yes", "y", "on", "true", "1")
        else "false"
    )
    if not isinstance(value, str):
        word = "true" if value else "false"
    raise ParameterError(
        owner,
        parameter,
        f"expected true or false, got {got}",
        f"write {parameter}: {word} without quotes (a quoted 'yes' or 'false' is text, not a boolean); in "
        f"Python pass {parameter}={word.title()}",
    )


def check_path(owner: str, parameter: str, value: Any) -> str:
    """``value`` as a path text if it is a non-empty text or ``os.PathLike``; anything else (a number, a
    list, None, a mapping from a mis-nested YAML value) raises :class:`ParameterError` naming the
    parameter, not ``os.fspath``'s ``TypeError``.

    Examples
    --------
    >>> check_path("JsonLinesSink", "path", "out.jsonl")
    'out.jsonl'
    >>> check_path("JsonLinesSink", "path", ["out.jsonl"])
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: JsonLinesSink(path=...): expected a file path, got list ['out.jsonl']. Fix: write one path as text, e.g. path: out/events.jsonl
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip():
        return value
    got = "an empty text" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
    raise ParameterError(
        owner,
        parameter,
        f"expected a file path, got {got}",
        "write one path as text, e.g. path: out/events.jsonl",
    )


class StepFailedError(_PicklableError, RuntimeError):
    """A step's own code failed while running (not bad input, which goes to dead letter).

    Examples
    --------
    >>> str(StepFailedError('map', 'map', ValueError('boom')))
    "step 'map' (map) failed: ValueError: boom"
    """

    def __init__(self, step_id: str, kind: str, cause: BaseException) -> None:
        self.step_id, self.kind = step_id, kind
        super().__init__(f"step {step_id!r} ({kind}) failed: {type(cause).__name__}: {cause}")


class SinkFailedError(StepFailedError):
    """A sink failed while the pipeline ran; the sink's own exception is the ``__cause__``.

    ``action`` says what the runtime asked of it (``"writing a batch of 3 rows"``, ``"flushing"``,
    ...). The fix is the sink error's ``fix`` text where it has one (a sink that knows the remedy), else
    a general one. A sink that fails on rows gets them again: the sources' positions are not committed past
    rows a sink did not take (``rows=False``: a failure with no rows at stake, opening or closing the
    sink, whose message then does not speak of them).

    Examples
    --------
    >>> e = SinkFailedError("out", "DuckDBSink", "writing a batch of 2 rows", ValueError("disk full"))
    >>> print(e)  # doctest: +NORMALIZE_WHITESPACE
    step 'out' (DuckDBSink) failed writing a batch of 2 rows: ValueError: disk full. Nothing was
    committed past the rows it failed on: the sources' positions stay before them, so a restart
    reads them again. Fix: correct what the error says (the sink's settings, its destination, or
    the stream's values), then run again
    """

    def __init__(
        self, step_id: str, kind: str, action: str, cause: BaseException, *, rows: bool = True
    ) -> None:
        self.step_id, self.kind, self.action = step_id, kind, action
        kept = (
            "Nothing was committed past the rows it failed on: the sources' positions stay before "
            "them, so a restart reads them again. "
            if rows
            else ""
        )
        # a sink that knows the remedy says it in a ``fix`` text on its error (``DuckDBSink``'s locked file)
        fix = getattr(cause, "fix", None)
        if not isinstance(fix, str) or not fix:
            fix = (
                "correct what the error says (the sink's settings, its destination, or the stream's "
                "values), then run again"
            )
        BaseException.__init__(
            self,
            f"step {step_id!r} ({kind}) failed {action}: {type(cause).__name__}: {cause}. {kept}Fix: {fix}",
        )


def closest(name: object, options: Iterable[str], aliases: dict[str, str] | None = None) -> str | None:
    """The known name a misspelled ``name`` most likely means (``aliases`` first), or None.

    Examples
    --------
    >>> closest("flaot", ["float64", "int64", "string"])
    'float64'
    >>> closest("str", ["string", "category"], aliases={"str": "string"})
    'string'
    >>> closest("zzz", ["string"]) is None
    True
    >>> closest("1", [0, 1, "10"])  # a frame's columns need not be text: 0, 1 are passed over
    '10'
    """
    if not isinstance(name, str):
        return None
    opts = [o for o in options if isinstance(o, str)]
    if aliases and name.lower() in aliases:
        return aliases[name.lower()]
    lowered = {o.lower(): o for o in opts}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, opts, n=1, cutoff=0.6)
    if not close:
        close = [o for o in opts if len(name) >= 3 and (o.startswith(name) or name.startswith(o))][:1]
    return close[0] if close else None


def suggest(
    name: str, options: Iterable[str], what: str = "columns", aliases: dict[str, str] | None = None
) -> str:
    """A hint naming the closest known name and listing the known ones.

    Examples
    --------
    >>> suggest("evnt_type", ["event_type", "user_id"])
    "did you mean 'event_type'? Known columns: 'event_type', 'user_id'"
    >>> suggest("summ", ["count", "sum"], what="aggregators")
    "did you mean 'sum'? Known aggregators: 'count', 'sum'"
    """
    opts = list(options)
    close = closest(name, opts, aliases)
    known = ", ".join(repr(o) for o in opts)
    if close:
        return f"did you mean {close!r}? Known {what}: {known}"
    return f"use one of the known {what}: {known}" if opts else f"there are no known {what} here"


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a pipeline spec: where it is (``streaming.processing[3].window.size``), what is
    wrong and what to do about it.

    Examples
    --------
    >>> str(SpecProblem("streaming.processing[1].ttl", "ttl '-1h' is negative", "write a positive duration such as '1h'"))
    "streaming.processing[1].ttl: ttl '-1h' is negative. Fix: write a positive duration such as '1h'"
    """

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}. Fix: {self.fix}"


class SpecError(_PicklableError, ValueError):
    """A pipeline spec (YAML or dict) is not valid; ``problems`` lists every problem found, each with
    its path in the spec and a fix. Raised before any step, source or sink is built.

    Examples
    --------
    >>> e = SpecError([SpecProblem("streaming", "missing", "add a 'streaming:' section")])
    >>> str(e)
    "streaming: missing. Fix: add a 'streaming:' section"
    >>> len(e.problems)
    1
    """

    def __init__(self, problems: Sequence[SpecProblem], origin: str | None = None) -> None:
        self.problems = list(problems)
        self.origin = origin
        where = f"{origin}: " if origin else ""
        if len(self.problems) == 1:
            text = where + str(self.problems[0])
        else:
            text = f"{where}{len(self.problems)} problems in the spec:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class UntrustedSpecError(SpecError):
    """The spec holds code (a function's ``source:``, SQL that is not a read-only query) and was not
    loaded with ``trust=True`` (``--trust`` on the command line); each problem names what would run.

    Examples
    --------
    >>> issubclass(UntrustedSpecError, SpecError)
    True
    """
