"""Checks of parameters that several connectors share; each failure is a ``ParameterError`` naming the
connector, the parameter and the fix."""

from __future__ import annotations

from streamlab._time import Duration, parse_duration
from streamlab.errors import ParameterError


def duration_ns(owner: str, parameter: str, value: Duration) -> int:
    """``value`` in nanoseconds; text that is not a duration (or a bool) raises :class:`ParameterError`.

    Examples
    --------
    >>> duration_ns("KinesisSink", "backoff", "100ms")
    100000000
    >>> duration_ns("KinesisSink", "backoff", "soon")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KinesisSink(backoff=...): cannot read 'soon' as a duration... Fix: write a duration such as backoff: 10s (backoff='10s' in Python), or a number of seconds
    """
    try:
        return parse_duration(value, what=f"{owner}({parameter}=...)")
    except (TypeError, ValueError) as exc:
        text = str(exc).removeprefix(f"{owner}({parameter}=...): ")
        problem = text.partition("; write it like")[0].partition(". Fix: ")[0]
        raise ParameterError(
            owner,
            parameter,
            problem,
            f"write a duration such as {parameter}: 10s ({parameter}='10s' in Python), or a number of seconds",
        ) from exc
