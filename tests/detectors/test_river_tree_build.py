"""The vectorized HalfSpaceTrees draws river's trees itself (``_river_trees``): the same features and
thresholds, bit for bit, as river's ``make_padded_tree`` builds on its first ``learn_one``."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.detectors._vectorized import _river_trees


def trees_by_river(
    features: tuple[str, ...], n_trees: int, height: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """river's own trees, read breadth first (heap order), as streamlab read them before."""
    from river import anomaly

    hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, seed=seed)
    hst.learn_one(dict.fromkeys(features, 0.0))
    column = {f: j for j, f in enumerate(features)}
    n_inner = 2**height - 1
    feature = np.zeros((n_trees, max(n_inner, 1)), dtype=np.intp)
    threshold = np.zeros((n_trees, max(n_inner, 1)), dtype=np.float64)
    for t, root in enumerate(hst.trees):
        level, pos = [root], 0
        for _ in range(height):
            nxt: list[Any] = []
            for node in level:
                feature[t, pos], threshold[t, pos] = column[node.feature], node.threshold
                pos += 1
                nxt.extend(node.children)
            level = nxt
    return feature, threshold


@settings(max_examples=40, deadline=None)
@given(
    features=st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=6, unique=True).map(tuple),
    n_trees=st.integers(1, 4),
    height=st.integers(0, 7),
    seed=st.integers(0, 2**32),
)
def test_the_trees_equal_rivers(features: tuple[str, ...], n_trees: int, height: int, seed: int) -> None:
    fast = _river_trees.__wrapped__(features, n_trees, height, seed)
    ours, theirs = fast, trees_by_river(features, n_trees, height, seed)
    assert np.array_equal(ours[0], theirs[0])
    assert ours[1].tobytes() == theirs[1].tobytes()  # bit for bit


def test_rivers_default_forest_and_a_deep_one_equal_rivers() -> None:
    for features, n_trees, height, seed in ((("x", "y", "amount"), 10, 8, 42), (("a",), 2, 12, 7)):
        ours = _river_trees.__wrapped__(features, n_trees, height, seed)
        theirs = trees_by_river(features, n_trees, height, seed)
        assert np.array_equal(ours[0], theirs[0]) and ours[1].tobytes() == theirs[1].tobytes()
