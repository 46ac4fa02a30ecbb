"""Event-time text is one time whichever path reads it.

A parse step reads a record's time with ``streamlab._record.iso_to_ns``; a window on a replayed CSV or
frame read its text column with pandas' ISO-8601 reader (``streamlab._time.to_utc_ns``), which read
``'2024/01/01 00:00:00'``, ``'2024-1-1'`` and ``'20240101T000000Z'`` (parse: no time) and refused a
lowercase ``t`` or ``z`` and a decimal comma (parse: a time). The same data gave other windows and
dead letters as CSV than as JSON with a parse. Found by the shapes hunt; ``to_utc_ns`` now reads text
as the parse rule does.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab._record import iso_to_ns
from streamlab._time import NAT_NS, to_utc_ns

INT64_MAX = 2**63 - 1


def parse_rule(text: str) -> int:
    try:
        ns = iso_to_ns(text)
    except ValueError:
        return NAT_NS
    return NAT_NS if ns is None or not NAT_NS < ns <= INT64_MAX else ns


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


# ISO-8601 texts and their near misses: separators, case, fractions, offsets, widths, spaces
parts = st.tuples(
    st.sampled_from(["2024", "1969", "2262", "0001", "99999", "202"]),
    st.sampled_from(["-", "/", ""]),
    st.sampled_from(["01", "1", "12", "13", "02"]),
    st.sampled_from(["-", "/", ""]),
    st.sampled_from(["01", "1", "29", "30", "31"]),
    st.sampled_from(["", "T", "t", " ", "  "]),
    st.sampled_from(["", "00", "23", "24", "9"]),
    st.sampled_from(["", ":00", ":59", ":60", "00"]),
    st.sampled_from(["", ":00", ":59", ":60"]),
    st.one_of(
        st.just(""),
        st.builds(lambda sep, d: sep + d, st.sampled_from([".", ","]), digits(1) | digits(3) | digits(10)),
    ),
    st.sampled_from(["", "Z", "z", " Z", "+05:30", "-0800", "+05", "+24:00", "+05:60", "-00:00"]),
    st.sampled_from(["", " "]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(parts.map(lambda p: p[-1] + "".join(p[:-1]) + p[-1]), min_size=1, max_size=20))
def test_text_times_read_as_the_parse_rule_reads_them(texts: list[str]) -> None:
    for column in (pd.Series(texts, dtype=object), pd.Series(texts, dtype="string")):
        assert to_utc_ns(column).tolist() == [parse_rule(t) for t in texts], texts


def test_the_forms_that_differed() -> None:
    texts = [
        "2024/01/01 00:00:00",
        "2024-1-1",
        "20240101T000000Z",
        "2024-01-01T00:00:00 Z",
        "2024-01-01t10:30:00z",
        "2024-01-01T00:00:00,5Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:01Z",
    ]
    assert to_utc_ns(pd.Series(texts)).tolist() == [NAT_NS] * 4 + [
        1704105000000000000,
        1704067200500000000,
        NAT_NS,
        1704067201000000000,
    ]


def test_numbers_and_datetimes_beside_text_keep_their_reading() -> None:
    from datetime import datetime, timezone

    column = pd.Series(
        [1_700_000_000, datetime(2024, 1, 1, tzinfo=timezone.utc), "2024-01-01t00:00:00z", None]
    )
    assert to_utc_ns(column).tolist() == [
        1_700_000_000 * 10**9,
        1704067200000000000,
        1704067200000000000,
        NAT_NS,
    ]
