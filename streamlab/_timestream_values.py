"""Which measure values Amazon Timestream cannot hold: one rule for ``TimestreamSink`` and the generated
AWS Lambda handler (which carries this module's code after its imports, copied, not rewritten).

Timestream cannot store NaN or infinities in a ``DOUBLE`` (its data-types page); a text (``VARCHAR``)
value takes 1 to 2,048 bytes (``MeasureValue.Value``: botocore refuses an empty one before sending,
failing the whole request on every retry). A missing value (None) is left out of the record, not a
problem.
"""

from __future__ import annotations

import math

TEXT_MAX_BYTES = 2048  # bytes of a VARCHAR measure value (MeasureValue.Value: 1..2048; varchar: 2 KB)


def utf8_size(text: str | None) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counted as its three bytes)."""
    return len((text or "").encode("utf-8", "surrogatepass"))


def measure_problem(measures: list[tuple[str, str, str | None]]) -> str:
    """Why Timestream cannot take a record with these ``(name, type, text)`` measure values, or ``""``.

    Examples
    --------
    >>> measure_problem([("cpu", "DOUBLE", "0.5"), ("note", "VARCHAR", "ok")])
    ''
    >>> measure_problem([("cpu", "DOUBLE", "-inf"), ("n", "VARCHAR", None)])
    "measure(s) ['cpu'] are infinite (-inf), which a Timestream DOUBLE cannot hold"
    >>> measure_problem([("note", "VARCHAR", "")])
    "text measure(s) ['note'] are 0 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)"
    """
    infinite = [
        (name, text)
        for name, kind, text in measures
        if kind == "DOUBLE" and text is not None and math.isinf(float(text))
    ]
    if infinite:
        values = ", ".join(text for _, text in infinite)
        return f"measure(s) {[n for n, _ in infinite]} are infinite ({values}), which a Timestream DOUBLE cannot hold"
    sizes_of = [
        (name, utf8_size(text)) for name, kind, text in measures if kind == "VARCHAR" and text is not None
    ]
    unfit = [(name, size) for name, size in sizes_of if not 1 <= size <= TEXT_MAX_BYTES]
    if unfit:
        sizes = ", ".join(f"{size:,}" for _, size in unfit)
        return (
            f"text measure(s) {[n for n, _ in unfit]} are {sizes} bytes long; Timestream takes 1 to "
            f"{TEXT_MAX_BYTES:,} bytes (an empty text is refused)"
        )
    return ""
