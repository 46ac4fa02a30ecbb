"""Alert text templates: ``{column}`` fields checked when a sink is built, filled from each row.

A field is a plain column name, optionally with a conversion (``!r``, ``!s``, ``!a``) and a format spec
(``{score:.2f}``, ``{timestamp:%H:%M}``); attribute and index access (``{user_id.upper}``, ``{x[0]}``)
is refused. A missing value is ``None``, spec or not. A timestamp column is its UTC time: ISO-8601 text
as in the JSON body without a spec, ``strftime`` codes with one.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from streamlab._serde_values import key_value
from streamlab.errors import ParameterError
from streamlab.io import missing_columns_problem

#: the text of a missing value (null, NaN, NaT) in an alert's text, with or without a format spec
MISSING_TEXT = "None"

_CONVERSIONS: dict[str, Callable[[object], str]] = {"r": repr, "s": str, "a": ascii}


def _fields(template: str) -> Iterator[tuple[str, str | None, str, str | None]]:
    """``string.Formatter().parse``, with an empty spec for a field without one."""
    for literal, name, spec, conv in string.Formatter().parse(template):
        yield literal, name, spec or "", conv


def check_template(owner: str, what: str, template: str) -> str:
    """``template`` when its fields are plain columns with at most a conversion and a format spec.

    Examples
    --------
    >>> check_template("WebhookSink", "template", "{user_id} scored {score:.2f}")
    '{user_id} scored {score:.2f}'
    >>> check_template("WebhookSink", "template", "{user_id.upper}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: WebhookSink(template=...): '{user_id.upper}' in '{user_id.upper}' is attribute or index access, ...
    """
    try:
        parts = list(_fields(template))
    except ValueError as exc:
        raise ParameterError(
            owner, what, f"{template!r} is not a template: {exc}", "write literal braces as '{{' and '}}'"
        ) from exc
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if not name:
            raise ParameterError(
                owner,
                what,
                f"{template!r} has a placeholder without a column name",
                "name the column in every placeholder, e.g. '{user_id}'",
            )
        if "." in name or "[" in name:
            raise ParameterError(
                owner,
                what,
                f"'{{{name}}}' in {template!r} is attribute or index access, which templates do not do",
                "write a plain column like '{user_id}' (with a format spec such as '{score:.2f}' if you "
                "like) and compute other values in a step before the sink (with_columns)",
            )
        if conv is not None and conv not in _CONVERSIONS:
            raise ParameterError(
                owner,
                what,
                f"'!{conv}' in {template!r} is not a conversion",
                "use !r, !s or !a, or none",
            )
        if "{" in spec:
            raise ParameterError(
                owner,
                what,
                f"a format spec cannot hold fields ('{{{name}:{spec}}}' in {template!r})",
                "write the format spec out, e.g. '{score:.2f}'",
            )
    return template


def template_columns(template: Any) -> list[str]:
    """The columns a (checked) template names, each once, at any depth of a mapping or list.

    Examples
    --------
    >>> template_columns({"text": "{user_id} scored {score:.2f}", "tags": ["{user_id}", 1]})
    ['user_id', 'score']
    """
    if isinstance(template, str):
        return list(dict.fromkeys(name for _, name, _, _ in _fields(template) if name))
    if isinstance(template, Mapping):
        template = list(template.values())
    if isinstance(template, list):
        return list(dict.fromkeys(c for v in template for c in template_columns(v)))
    return []


def templates_problem(owner: str, templates: Mapping[str, Any], columns: list[str]) -> tuple[str, str] | None:
    """``(problem, fix)`` for the first of ``templates`` (parameter name → template) naming a column
    that ``columns`` lacks, else None: what the alert sinks' ``columns_problem`` answers.

    Examples
    --------
    >>> templates_problem("PagerDutySink", {"dedup_key": "{user}", "summary": None}, ["user_id"])[1]
    "did you mean ['user_id']? use {column} placeholders naming columns of the stream"
    """
    for what, template in templates.items():
        problem = missing_columns_problem(
            f"{owner}({what}={template!r})",
            template_columns(template),
            columns,
            "use {column} placeholders naming columns of the stream",
        )
        if problem is not None:
            return problem
    return None


class Instant(str):
    """A timestamp value of an alert row: its ISO-8601 text (as in the JSON body) that a format spec
    formats as the UTC time it is (``{timestamp:%H:%M}``).

    Examples
    --------
    >>> t = Instant("2024-01-01T08:30:00.000000Z")
    >>> f"{t} {t:%H:%M}", t == "2024-01-01T08:30:00.000000Z"
    ('2024-01-01T08:30:00.000000Z 08:30', True)
    """

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        when: datetime = pd.Timestamp(str(self)).to_pydatetime()
        return format(when, spec)


def _format(name: str, value: Any, spec: str, conv: str | None) -> str:
    if value is None:  # null, NaN and NaT in the row's JSON: a missing value is text, whatever the spec
        return MISSING_TEXT
    value = key_value(value)  # 7.0 as 7: the key rule, so a value has one text in every batch
    if conv is not None:
        value = _CONVERSIONS[conv](value)
    try:
        return format(value, spec)
    except (TypeError, ValueError) as exc:
        failed = exc
    if isinstance(value, int) and not isinstance(value, bool):
        try:  # a spec an integer does not take ('.2'): the float's text, the same for 7 and for 7.0
            return format(float(value), spec)
        except (ValueError, OverflowError):
            pass
    raise ValueError(
        f"column {name!r} value {value!r} cannot be formatted as '{{{name}:{spec}}}': {failed}"
    ) from failed


def render(template: str, row: Mapping[str, Any]) -> str:
    """``template`` filled from ``row``; a column the row lacks or a value its spec cannot format is a
    ``KeyError`` or ``ValueError`` naming it (the writer records the alert as failed with it).

    A float that is a whole number is the integer it equals, as in every sink's keys
    (:func:`streamlab.serde.key_texts`): pandas makes an integer column float64 once it meets a missing
    value, so the user ``7`` arrived as ``7.0`` in some batches only (a resolve keyed ``7.0`` left the
    incident keyed ``7`` open, and a summary said ``user 7.0``). A format spec an integer does not take
    (``{n:.2}``) formats the float it equals, for ``7`` and ``7.0`` alike.

    Examples
    --------
    >>> render("{user_id} scored {score:.2f}", {"user_id": "u1", "score": None})
    'u1 scored None'
    >>> render("{detector}:{user_id}", {"detector": "hst", "user_id": 7.0})
    'hst:7'
    """
    out: list[str] = []
    for literal, name, spec, conv in _fields(template):
        out.append(literal)
        if name is None:
            continue
        if name not in row:
            raise KeyError(f"template needs column {name!r}; the alert rows have {sorted(row)}")
        out.append(_format(name, row[name], spec, conv))
    return "".join(out)


def render_any(template: Any, row: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        return render(template, row)
    if isinstance(template, Mapping):
        return {k: render_any(v, row) for k, v in template.items()}
    if isinstance(template, list):
        return [render_any(v, row) for v in template]
    return template


def check_nested(owner: str, template: Any) -> None:
    if isinstance(template, str):
        check_template(owner, "template", template)
    elif isinstance(template, Mapping):
        for v in template.values():
            check_nested(owner, v)
    elif isinstance(template, list):
        for v in template:
            check_nested(owner, v)
