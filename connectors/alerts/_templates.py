"""Alert text templates: ``{column}`` fields checked when a sink is built, filled from each row."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any


def check_template(owner: str, what: str, template: str) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"{owner}({what}={template!r}): {exc}; write literal braces as '{{{{' and '}}}}'"
        ) from exc
    if any(not f for f in fields):
        raise ValueError(
            f"{owner}({what}={template!r}): name the column in every placeholder, e.g. '{{user_id}}'"
        )
    return template


class _Fields(dict):  # type: ignore[type-arg]
    """Row values for ``str.format_map`` with an error that names the missing column."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"template needs column {key!r}; the alert rows have {sorted(self)}")


def render(template: str, row: Mapping[str, Any]) -> str:
    return template.format_map(_Fields(row))


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
