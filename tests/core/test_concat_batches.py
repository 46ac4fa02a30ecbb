"""``concat_batches`` (what ``ListSink.frame()`` and a run's results join batches with) gives what
casting every batch to the union of its categories and then ``pd.concat`` gives, whatever the batches'
categories, their order, and which batches lack a column: a batch whose categories are already the
union's is joined as it is, without a cast."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from streamlab._frames import concat_batches

COLORS = ["red", "blue", "green", "amber"]


@st.composite
def batches(draw: st.DrawFn) -> list[pd.DataFrame]:
    out = []
    for _ in range(draw(st.integers(2, 8))):
        n = draw(st.integers(0, 4))
        cats = draw(st.lists(st.sampled_from(COLORS), min_size=1, max_size=4, unique=True))
        values = draw(st.lists(st.sampled_from([*cats, None]), min_size=n, max_size=n))
        cols: dict[str, object] = {"c": pd.Categorical(values, categories=cats)}
        if draw(st.booleans()):  # ints, or a batch where every value is missing (float64 NaN)
            cols["n"] = (
                np.array(draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)), dtype=np.int64)
                if draw(st.booleans())
                else np.full(n, np.nan)
            )
        if draw(st.booleans()):  # ints in some batches, floats in others
            kind = draw(st.sampled_from(["int", "float"]))
            cols["k"] = np.arange(n, dtype=np.int64) if kind == "int" else np.arange(n) + 0.5
        out.append(pd.DataFrame(cols))
    return out


def reference(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Every batch cast to the union's categories, then concat_batches' two rules for integers."""
    cats = pd.Index([]).append([b["c"].cat.categories for b in frames]).unique().sort_values()
    frames = [b.astype({"c": pd.CategoricalDtype(cats)}) for b in frames]
    for c in ("n", "k"):  # integers beside batches of only missing values: nullable integers
        held = [b[c] for b in frames if c in b.columns]
        ints = [s.dtype.kind == "i" for s in held]
        if any(ints) and all(i or s.isna().all() for i, s in zip(ints, held)) and not all(ints):
            frames = [b.astype({c: "Int64"}) if c in b.columns else b for b in frames]
    for c in ("n", "k"):  # integers beside floats: Python objects
        held = [b[c] for b in frames if c in b.columns]
        if any(s.dtype.kind == "i" for s in held) and any(
            s.dtype.kind == "f" and s.notna().any() for s in held
        ):
            frames = [b.astype({c: object}) if c in b.columns else b for b in frames]
    return pd.concat(frames, ignore_index=True)


@given(batches())
def test_concat_batches_equals_casting_every_batch_to_the_union(frames: list[pd.DataFrame]) -> None:
    got = concat_batches(frames)
    pd.testing.assert_frame_equal(got, reference(frames))
    assert isinstance(got["c"].dtype, pd.CategoricalDtype)


def test_batches_already_of_the_unions_categories_are_joined_as_they_are() -> None:
    dtype = pd.CategoricalDtype(["blue", "red"])
    frames = [pd.DataFrame({"c": pd.Series(["red", "blue"][i % 2 :][:1], dtype=dtype)}) for i in range(300)]
    got = concat_batches(frames)
    assert got["c"].dtype == dtype and got["c"].tolist() == ["red", "blue"] * 150


def test_categories_equal_in_value_but_not_in_type_are_cast_to_the_union() -> None:
    # Index.equals takes 'a' as text and as an object, or 1 and 1.0, for the same categories: joined
    # uncast, pandas made the column objects (or floats), where the union keeps it categorical
    text = pd.DataFrame({"c": pd.Categorical(["a"], categories=pd.Index(["a"], dtype="str"))})
    objects = pd.DataFrame({"c": pd.Categorical(["a"], categories=pd.Index(["a"], dtype=object))})
    ints, floats = pd.DataFrame({"c": pd.Categorical([1])}), pd.DataFrame({"c": pd.Categorical([1.0])})
    for frames in ([objects, text], [ints, floats]):
        got = concat_batches(frames)
        assert isinstance(got["c"].dtype, pd.CategoricalDtype), got["c"].dtype
        pd.testing.assert_frame_equal(got, reference(frames))
