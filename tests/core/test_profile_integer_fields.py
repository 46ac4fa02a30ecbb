"""profile() on integer fields as users' data holds them: uint64 hashes, ids beside missing values.

A field of uint64 hashes (half of them beyond int64) was inferred as ``int64``: the profile called half
the sample malformed and its pipeline sent every such valid record to dead letter. An integer column
with missing values (read exactly, as ``Int64``) was inferred as ``json``: its missing values counted
as values of another kind.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import profile

START = 1_704_067_200


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=40))
def test_a_field_of_integers_is_read_by_the_profiles_pipeline_whatever_their_size(ids: list[int]) -> None:
    rows = [f'{{"ts": {START + i}, "h": {h}, "k": "a"}}'.encode() for i, h in enumerate(ids)]
    prof = profile(rows)
    assert prof.malformed_rate == 0.0
    assert prof.schema["h"] == ("int64" if max(ids) < 2**63 else "json")
    result = prof.pipeline().run()
    assert result["parse.dead_letter"].empty and int(result["window"]["count"].sum()) == len(ids)


def test_an_integer_column_beside_missing_values_is_profiled_as_integers(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f"ts,id\n{START},9007199254740993\n{START + 1},\n{START + 2},7\n")
    prof = profile(str(path))
    assert prof.schema["id"] == "int64"
    assert prof.fields[[f.name for f in prof.fields].index("id")].null_share == 1 / 3
