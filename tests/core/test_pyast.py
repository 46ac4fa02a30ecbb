"""streamlab._pyast: parses survive CPython 3.11's spurious AST SystemError from concurrent parses."""

from __future__ import annotations

import ast
import threading

import pandas as pd
import pytest

from streamlab import _pyast


def test_a_spurious_ast_race_is_retried_and_other_errors_are_not() -> None:
    calls = []

    def flaky(text: str) -> ast.Module:
        calls.append(text)
        if len(calls) < 3:
            raise SystemError("AST constructor recursion depth mismatch (before=30, after=154)")
        return ast.parse(text)

    tree = _pyast.guarded(flaky, "a = 1")
    assert isinstance(tree.body[0], ast.Assign) and len(calls) == 3

    def broken(text: str) -> None:
        raise SystemError("something else")

    with pytest.raises(SystemError, match="something else"):
        _pyast.guarded(broken, "x")
    with pytest.raises(SyntaxError):
        _pyast.parse("a +")


def test_a_race_that_never_ends_still_raises() -> None:
    def always(text: str) -> None:
        raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")

    with pytest.raises(SystemError, match="recursion depth mismatch"):
        _pyast.guarded(always, "x")


def test_parses_and_evals_from_many_threads_give_the_same_results() -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.0], "b": ["x", "y", "x"]})
    source = "\n".join(f"x{i} = (a + b * c) if d else [f(g) for g in h if g > {i}]" for i in range(200))
    expected = ast.dump(ast.parse(source))
    results: list[bool] = []

    def work() -> None:
        for _ in range(20):
            results.append(ast.dump(_pyast.parse(source)) == expected)
            mask = _pyast.guarded(frame.eval, "a > 1 and b == 'x'", engine="python")
            results.append(mask.tolist() == [False, False, True])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 160 and all(results)
