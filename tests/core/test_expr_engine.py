"""Expressions mean one thing on every machine: filter and with_columns (and the exported programs'
per-row evaluation) use pandas' Python engine whether numexpr is installed or not. With numexpr, pandas'
default engine read some values otherwise (tests of this suite failed) and walked the interpreter's
stack for every operation (a suite of expression tests ran for over 20 minutes instead of one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamlab import ListSink, ManualClock, Pipeline
from streamlab.export._snippets import eval_expr, pandas_eval
from streamlab.testing import ListSource


@pytest.fixture
def numexpr_everywhere(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """pandas told numexpr is installed, and every evaluation by another engine than Python refused."""
    from pandas.core.computation import check

    monkeypatch.setattr(check, "NUMEXPR_INSTALLED", True)
    other: list[str] = []
    real_frame_eval, real_eval = pd.DataFrame.eval, pd.eval

    def frame_eval(self: pd.DataFrame, expr: str, **kwargs: Any) -> Any:
        if kwargs.get("engine") != "python":
            other.append(expr)
            raise AssertionError(f"DataFrame.eval({expr!r}) without engine='python'")
        return real_frame_eval(self, expr, **kwargs)

    def top_eval(expr: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("engine") != "python":
            other.append(str(expr))
            raise AssertionError(f"pandas.eval({expr!r}) without engine='python'")
        return real_eval(expr, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "eval", frame_eval)
    monkeypatch.setattr(pd, "eval", top_eval)
    return other


def test_filter_and_with_columns_use_the_python_engine_with_numexpr_installed(
    numexpr_everywhere: list[str],
) -> None:
    events = [
        {"n": i, "amount": float(i) / 3, "country": ["FR", "US", None][i % 3], "flag": i % 2 == 0}
        for i in range(40)
    ]
    p = Pipeline(ListSource(events, batch_size=7))
    out, dead = ListSink(), ListSink()
    kept = p.filter("(amount > 2 and country == 'FR') or n // 7 == 3 or flag", step_id="f")
    mapped = kept.with_columns(
        step_id="m", big="n * 2**40 + 1", ratio="amount / (n - 9)", c="country.str.lower()"
    )
    mapped.to(out)
    mapped.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    got = out.frame()
    frame = pd.DataFrame(events)
    keep = ((frame.amount > 2) & (frame.country == "FR")) | (frame.n // 7 == 3) | frame.flag
    assert got["n"].tolist() == frame.n[keep].tolist()
    assert got["big"].tolist() == [n * 2**40 + 1 for n in frame.n[keep]]
    np.testing.assert_array_equal(got["ratio"].to_numpy(), (frame.amount / (frame.n - 9))[keep].to_numpy())
    assert not numexpr_everywhere


def test_the_exported_per_row_evaluation_uses_the_python_engine(numexpr_everywhere: list[str]) -> None:
    assert eval_expr("amount * 100", {"amount": None}, ("amount",)) != eval_expr(
        "amount * 100", {"amount": None}, ("amount",)
    )  # NaN
    assert pandas_eval("n // 7 + 1", {"n": 20}) == 3
    assert pandas_eval("country == 'FR'", {"country": "FR"}) is True
    assert not numexpr_everywhere
