"""Pattern steps (``Stream.pattern``) as Flink SQL ``MATCH_RECOGNIZE``, for the subset that maps exactly.

streamlab's pattern rule (``streamlab.detectors.Pattern``): per key, in event-time order, every event
satisfying the first step opens a candidate; an event advances every open candidate whose current step
it satisfies; events that satisfy no step are skipped; candidates whose first event is more than
``within`` before the event are dropped; the earliest-opened complete candidate is the match, and all
of the key's candidates are then cleared. Its ``event_ids`` are the events the candidate took.

The same matches, in ``MATCH_RECOGNIZE``: the input is first reduced to the events that satisfy a
step; each step of ``times`` events becomes that many pattern variables, with a gap variable between
consecutive ones (``G*?``: rows that do not satisfy the next variable), so the candidate takes the
next event satisfying its current step and the events it skips are absorbed by a gap, not taken; ``AFTER MATCH SKIP PAST LAST ROW`` clears the key's other candidates; ``WITHIN``
is ``within`` plus one millisecond (Flink drops a candidate when the span reaches ``WITHIN``, streamlab
when it exceeds ``within``; event times are whole milliseconds). This holds when no event can satisfy
two steps, which the exporter can only prove for conditions of the form ``column == literal`` on one
column with a different literal per step (a column named in backticks, `` `event type` == 'buy' ``, as
well); ``differs_from`` is not translated. Other patterns are
refused with the step and the reason (:func:`pattern_refusal`).

Examples
--------
>>> from streamlab.detectors import Pattern
>>> p = Pattern(key="user_id", within="5m", steps=[("failed", "event_type == 'login_failed'", 2),
...     ("success", "event_type == 'login_success'")])
>>> pattern_refusal(p) is None
True
>>> print(match_recognize(p, "`parse`", "INTERVAL '0 00:05:00.001' DAY TO SECOND(3)"))  # doctest: +ELLIPSIS
SELECT * FROM (SELECT * FROM `parse` WHERE `event_type` IN ('login_failed', 'login_success') AND `user_id` IS NOT NULL)
MATCH_RECOGNIZE (
  PARTITION BY `user_id`
  ORDER BY `timestamp`
  MEASURES
    'pattern' AS `pattern`,
    S0_1.`timestamp` AS `first_time`,
    S1_1.`timestamp` AS `last_time`,
    ARRAY[CAST(S0_1.`event_id` AS STRING), CAST(S0_2.`event_id` AS STRING), CAST(S1_1.`event_id` AS STRING)] AS `event_ids`,
    CAST(3 AS BIGINT) AS `n_events`
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (S0_1 G1*? S0_2 G2*? S1_1) WITHIN INTERVAL '0 00:05:00.001' DAY TO SECOND(3)
  DEFINE
    S0_1 AS S0_1.`event_type` = 'login_failed',
    S0_2 AS S0_2.`event_type` = 'login_failed',
    S1_1 AS S1_1.`event_type` = 'login_success',
    G1 AS NOT (G1.`event_type` = 'login_failed'),
    G2 AS NOT (G2.`event_type` = 'login_success')
)
"""

from __future__ import annotations

import ast
from typing import Any

from streamlab import _pyast
from streamlab.detectors import Pattern, PatternStep

__all__ = ["match_recognize", "pattern_refusal"]


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (int, float)):
        return repr(value)
    raise ValueError(value)


def _equality(where: str) -> tuple[str, Any] | None:
    """``(column, literal)`` of a condition ``column == literal``, or None for any other condition; the
    column may be backtick-quoted (`` `event type` == 'buy' ``), as filters and rules read it, and is
    then that name (quoted again with SQL backticks by ``_q``).

    Examples
    --------
    >>> _equality("`event type` == 'buy'"), _equality("kind == 1"), _equality("`unit price` > 3")
    (('event type', 'buy'), ('kind', 1), None)
    """
    try:
        text, quoted = _pyast.unquote_backticks(where)
        node = _pyast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
        return None
    left, right = node.left, node.comparators[0]
    if isinstance(left, ast.Constant) and isinstance(right, ast.Name):
        left, right = right, left
    if not (isinstance(left, ast.Name) and isinstance(right, ast.Constant)):
        return None
    try:
        _literal(right.value)
    except ValueError:
        return None
    return quoted.get(left.id, left.id), right.value


def pattern_refusal(pattern: Pattern) -> str | None:
    """Why ``pattern`` has no exact ``MATCH_RECOGNIZE`` translation, or None when it has one.

    Examples
    --------
    >>> from streamlab.detectors import Pattern, PatternStep
    >>> pattern_refusal(Pattern(key="card", within="1h", steps=[("a", "amount > 100"), ("b", "x == 1")]))
    "step 'a': only conditions of the form column == literal translate (got 'amount > 100')"
    >>> pattern_refusal(Pattern(key="card", within="1h", steps=[
    ...     PatternStep("first", "kind == 'pay'"),
    ...     PatternStep("second", "kind == 'pay'", differs_from={"country": "first"})]))
    "step 'second': differs_from has no exact MATCH_RECOGNIZE form (a missing value compares differently in SQL)"
    """
    steps: tuple[PatternStep, ...] = tuple(pattern.steps)  # type: ignore[arg-type]
    columns = set()
    literals: list[Any] = []
    for s in steps:
        if s.differs_from:
            return (
                f"step {s.name!r}: differs_from has no exact MATCH_RECOGNIZE form (a missing value "
                "compares differently in SQL)"
            )
        eq = _equality(s.where)
        if eq is None:
            return (
                f"step {s.name!r}: only conditions of the form column == literal translate (got {s.where!r})"
            )
        columns.add(eq[0])
        literals.append(eq[1])
    if len(columns) > 1:
        return (
            f"the steps test different columns ({', '.join(sorted(columns))}), so an event may satisfy two "
            "steps, which MATCH_RECOGNIZE matches differently"
        )
    if len(set(map(repr, literals))) < len(literals):
        return "two steps test the same value, so an event satisfies both, which MATCH_RECOGNIZE matches differently"
    return None


def match_recognize(pattern: Pattern, source: str, within: str) -> str:
    """The ``SELECT`` of ``pattern`` over the (quoted) view ``source``; ``within`` is a Flink interval
    literal of ``within`` plus one millisecond. Check :func:`pattern_refusal` first."""
    steps: tuple[PatternStep, ...] = tuple(pattern.steps)  # type: ignore[arg-type]
    conds = [_equality(s.where) for s in steps]
    column = _q(conds[0][0]) if conds[0] else ""
    variables: list[tuple[str, str]] = []  # (variable, SQL condition)
    for i, (s, eq) in enumerate(zip(steps, conds)):
        assert eq is not None
        for j in range(1, s.times + 1):
            var = f"S{i}_{j}"
            variables.append((var, f"{var}.{_q(eq[0])} = {_literal(eq[1])}"))
    first, last = variables[0][0], variables[-1][0]
    parts = [first]
    gaps: list[tuple[str, str]] = []
    for n, (var, cond) in enumerate(variables[1:], start=1):
        # a gap takes only rows that do not satisfy the next variable: the candidate takes the next
        # event satisfying its current step, as streamlab's does
        gap = f"G{n}"
        parts += [f"{gap}*?", var]
        gaps.append((gap, "NOT (" + cond.replace(f"{var}.", f"{gap}.", 1) + ")"))
    ids = ", ".join(f"CAST({v}.{_q(pattern.id_column)} AS STRING)" for v, _ in variables)
    t = _q(pattern.time)
    values = ", ".join(_literal(eq[1]) for eq in conds if eq is not None)
    measures = [
        f"{_literal(pattern.name)} AS `pattern`",
        f"{first}.{t} AS `first_time`",
        f"{last}.{t} AS `last_time`",
        f"ARRAY[{ids}] AS `event_ids`",
        f"CAST({len(variables)} AS BIGINT) AS `n_events`",
    ]
    defines = ",\n    ".join(f"{v} AS {c}" for v, c in [*variables, *gaps])
    return (
        # a row without a key is a dead letter in streamlab ("key column ... is missing"), never matched
        f"SELECT * FROM (SELECT * FROM {source} WHERE {column} IN ({values}) AND {_q(pattern.key)} IS NOT NULL)\n"
        "MATCH_RECOGNIZE (\n"
        f"  PARTITION BY {_q(pattern.key)}\n"
        f"  ORDER BY {t}\n"
        "  MEASURES\n    " + ",\n    ".join(measures) + "\n"
        "  ONE ROW PER MATCH\n"
        "  AFTER MATCH SKIP PAST LAST ROW\n"
        f"  PATTERN ({' '.join(parts)}) WITHIN {within}\n"
        f"  DEFINE\n    {defines}\n"
        ")"
    )
