"""``agg.quantile`` of extreme finite values is finite, in streamlab and in the exported combiner.

A window of values near ±1e308 gave ±inf (written as null): the sketch's bucket middle
``2 * gamma**k / (gamma + 1)`` doubled before dividing and overflowed. Subnormal values (5e-324) read as
0.0, outside the relative accuracy. Now every finite value's bucket stands for a finite value within the
relative accuracy (of the largest double, for the top bucket), as pandas' quantile of such values is.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from hypothesis import example, given
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.aggregators import QuantileAggregator
from streamlab.export._snippets import QuantileCombine
from streamlab.testing import ListSource

EXTREME = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, sys.float_info.max, -sys.float_info.max, 5e-324, -5e-324, 1e-310]),
)


def _combine(q: float, values: list[float]) -> float:
    c = QuantileCombine("x", q, 0.01)
    acc = c.create_accumulator()
    for v in values:
        acc = c.add_input(acc, {"x": v}, 0)
    return float(c.extract_output(acc))


@given(st.lists(EXTREME, min_size=1, max_size=20), st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
@example([1.7637650858193227e308], 0.0)  # the top finite bucket: its middle was the largest double, 1.9 % off
def test_quantile_of_finite_values_is_finite_and_within_its_accuracy(values, q):
    a = QuantileAggregator("x", q)
    got = a.result(a.add(a.initial(), np.array(values)))
    assert math.isfinite(got)
    # the sketch answers the value of rank floor-ish q * (n - 1) within 1 %: one of the values it lies near
    target = sorted(values)[next(i for i in range(len(values)) if i + 1 > q * (len(values) - 1))]
    if target == 0.0 or abs(target) >= sys.float_info.min:
        assert abs(got - target) <= 0.01 * abs(target) * (1 + 1e-9)
    else:  # a subnormal: within 1 % or the nearest representable double of it
        assert abs(got - target) <= max(0.01 * abs(target), 5e-324)
    assert _combine(q, values) == got  # the exported Beam/Lambda/Flink DataStream combiner agrees


def test_a_window_of_values_near_the_largest_double_gives_what_pandas_gives():
    values = {"pos": [1e308, 1.5e308, sys.float_info.max], "neg": [-1e308, -1.2e308, -sys.float_info.max]}
    start = pd.Timestamp("2024-01-01", tz="UTC")
    recs = [
        {"timestamp": start + pd.Timedelta(seconds=i), "k": k, "x": v}
        for k, vs in values.items()
        for i, v in enumerate(vs)
    ]
    p = Pipeline(ListSource(recs))
    qs = (0.0, 0.5, 1.0)
    p.window(TumblingWindow("1m"), key="k", step_id="w").agg(*(agg.quantile("x", q) for q in qs))
    out = p.run().outputs["w"].set_index("k")
    for k, vs in values.items():
        got = out.loc[k, ["p0_x", "p50_x", "p100_x"]].tolist()
        expected = pd.Series(vs).quantile(list(qs)).tolist()  # ranks 0, 1, 2: pandas interpolates nothing
        assert all(math.isfinite(g) for g in got), got
        assert all(abs(g - e) <= 0.01 * abs(e) for g, e in zip(got, expected)), (got, expected)
