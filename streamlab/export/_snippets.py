"""Code that exporters copy verbatim into generated modules.

Everything here is plain Python with no Beam or boto3 import (and no streamlab import that is copied), so
a generated module deploys alone. The parse step's per-record rules are not here: generated modules carry
``streamlab._record`` itself, the code of streamlab's own checked parse path; nor is the row encoding:
they carry ``streamlab._serde_values``, the code of ``streamlab.serde``. These functions mirror the
runtime's semantics row by row: the aggregators' null handling (``streamlab.aggregators``) and the
tumbling/sliding window assignment (``streamlab.windows``). Tests run them against the runtime.
"""

from __future__ import annotations

import json
import math
from typing import Any

from streamlab._serde_values import json_default  # generated modules carry it with streamlab._serde_values


def is_null(value: Any) -> bool:
    """None or NaN: what the aggregators skip."""
    return value is None or (isinstance(value, float) and value != value)


def to_float(value: Any) -> float:
    """A value the aggregators take as a float; an int beyond a double's range (a 400-digit JSON number)
    is the infinity of its sign, as streamlab reads it (``streamlab._detector_record.as_number``), where
    ``float`` raises OverflowError and would fail the job on every retry."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def window_starts(ts_ns: int, size_ns: int, slide_ns: int, offset_ns: int) -> list[int]:
    """Starts (ns) of the tumbling (slide == size) or sliding windows holding an event."""
    base = (ts_ns - offset_ns) // slide_ns
    n = -(-size_ns // slide_ns)
    starts = [(base - j) * slide_ns + offset_ns for j in range(n)]
    return [s for s in starts if s + size_ns > ts_ns]


class CountCombine:
    """Number of rows, or of non-null values of ``column``."""

    def __init__(self, column: str | None) -> None:
        self.column = column

    def create_accumulator(self) -> int:
        return 0

    def add_input(self, acc: int, row: dict[str, Any], ts_ns: int) -> int:
        return acc + (1 if self.column is None or not is_null(row.get(self.column)) else 0)

    def merge_accumulators(self, accs: Any) -> int:
        return sum(accs)

    def extract_output(self, acc: Any) -> Any:
        return acc

    def to_json(self, acc: Any) -> Any:
        return acc

    def from_json(self, data: Any) -> Any:
        return data


class SumCombine(CountCombine):
    """Sum of a numeric column, skipping nulls; also counts values so that mean can share it."""

    def create_accumulator(self) -> Any:
        return [0.0, 0]

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if not is_null(value):
            acc = [acc[0] + to_float(value), acc[1] + 1]
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        accs = list(accs)
        return [sum(a[0] for a in accs), sum(a[1] for a in accs)]

    def extract_output(self, acc: Any) -> float:
        return float(acc[0])


class MeanCombine(SumCombine):
    """Mean of a numeric column, skipping nulls; NaN without values."""

    def extract_output(self, acc: Any) -> float:
        return acc[0] / acc[1] if acc[1] else math.nan


class MinCombine(CountCombine):
    """Smallest value of a numeric column, skipping nulls; NaN without values."""

    pick = staticmethod(min)

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if is_null(value):
            return acc
        return to_float(value) if acc is None else self.pick(acc, to_float(value))

    def merge_accumulators(self, accs: Any) -> Any:
        best = None
        for a in accs:
            if a is not None:
                best = a if best is None else self.pick(best, a)
        return best

    def extract_output(self, acc: Any) -> float:
        return math.nan if acc is None else acc


class MaxCombine(MinCombine):
    """Largest value of a numeric column, skipping nulls; NaN without values."""

    pick = staticmethod(max)


class CountDistinctCombine(CountCombine):
    """Exact number of distinct non-null values."""

    def create_accumulator(self) -> Any:
        return set()

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if not is_null(value):
            acc.add(value)
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        out: set[Any] = set()
        for a in accs:
            out |= a
        return out

    def extract_output(self, acc: Any) -> int:
        return len(acc)

    def to_json(self, acc: Any) -> Any:
        return list(acc)

    def from_json(self, data: Any) -> Any:
        return set(data)


class FirstCombine(CountCombine):
    """Value at the earliest event time (earliest arrival among ties)."""

    last = False

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if acc is None or (ts_ns >= acc[0] if self.last else ts_ns < acc[0]):
            return [ts_ns, value]
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        best = None
        for a in accs:
            if a is not None and (best is None or (a[0] >= best[0] if self.last else a[0] < best[0])):
                best = a
        return best

    def extract_output(self, acc: Any) -> Any:
        return None if acc is None else acc[1]


class LastCombine(FirstCombine):
    """Value at the latest event time (latest arrival among ties)."""

    last = True


class QuantileCombine(CountCombine):
    """Approximate quantile with a relative-error guarantee (a DDSketch, as streamlab's)."""

    def __init__(self, column: str | None, q: float, relative_accuracy: float) -> None:
        super().__init__(column)
        self.q = q
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self.log_gamma = math.log(self.gamma)

    def create_accumulator(self) -> Any:
        return {"pos": {}, "neg": {}, "zero": 0, "n": 0}

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if is_null(value):
            return acc
        value = to_float(value)
        acc["n"] += 1
        if value == 0:
            acc["zero"] += 1
        else:
            part = acc["pos" if value > 0 else "neg"]
            # an infinite value: the bucket above every finite one (streamlab's INFINITE_BUCKET)
            bucket = math.ceil(math.log(abs(value)) / self.log_gamma) if abs(value) < math.inf else 2**62
            part[bucket] = part.get(bucket, 0) + 1
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        out = self.create_accumulator()
        for a in accs:
            out["zero"] += a["zero"]
            out["n"] += a["n"]
            for part in ("pos", "neg"):
                for k, c in a[part].items():
                    out[part][k] = out[part].get(k, 0) + c
        return out

    def extract_output(self, acc: Any) -> float:
        n = acc["n"]
        if n == 0:
            return math.nan
        rank = self.q * (n - 1)
        seen = 0
        for k in sorted(acc["neg"], reverse=True):
            seen += acc["neg"][k]
            if seen > rank:
                return self.value(k, -1.0)
        seen += acc["zero"]
        if seen > rank:
            return 0.0
        for k in sorted(acc["pos"]):
            seen += acc["pos"][k]
            if seen > rank:
                return self.value(k, 1.0)
        return self.value(max(acc["pos"]), 1.0)

    def value(self, k: int, sign: float) -> float:
        """The value bucket ``k`` stands for (an infinity for the bucket of infinite values)."""
        if k == 2**62:
            return sign * math.inf
        try:  # as streamlab's: divided before doubling, the largest double for the top finite bucket
            middle = 2 * (self.gamma**k / (self.gamma + 1))
        except OverflowError:
            middle = math.inf
        if middle > 1.7976931348623157e308:  # the top finite bucket: the middle of its finite part
            try:
                middle = 2 / (1 / self.gamma ** (k - 1) + 1 / 1.7976931348623157e308)
            except OverflowError:
                middle = 1.7976931348623157e308
        if middle < 2.2250738585072014e-308:  # subnormal: gamma**k lost its digits
            t = k * self.log_gamma / math.log(2)
            middle = math.ldexp(2 / (self.gamma + 1) * 2 ** (t - math.floor(t)), math.floor(t))
        return float(sign * min(middle, 1.7976931348623157e308))  # the largest double

    def to_json(self, acc: Any) -> Any:
        return {**acc, "pos": list(acc["pos"].items()), "neg": list(acc["neg"].items())}

    def from_json(self, data: Any) -> Any:
        return {**data, "pos": dict(data["pos"]), "neg": dict(data["neg"])}


class RowCombine:
    """Several aggregators over the same rows: one accumulator list, one output dict."""

    def __init__(self, aggregators: list[tuple[str, Any]]) -> None:
        self.aggregators = aggregators

    def create_accumulator(self) -> list[Any]:
        return [fn.create_accumulator() for _, fn in self.aggregators]

    def add_input(self, acc: list[Any], row: dict[str, Any], ts_ns: int) -> list[Any]:
        return [fn.add_input(a, row, ts_ns) for a, (_, fn) in zip(acc, self.aggregators)]

    def merge_accumulators(self, accs: Any) -> list[Any]:
        columns = list(zip(*accs))
        if not columns:
            return self.create_accumulator()
        return [fn.merge_accumulators(col) for col, (_, fn) in zip(columns, self.aggregators)]

    def extract_output(self, acc: list[Any]) -> dict[str, Any]:
        return {name: fn.extract_output(a) for a, (name, fn) in zip(acc, self.aggregators)}

    def to_json(self, acc: list[Any]) -> list[Any]:
        return [fn.to_json(a) for a, (_, fn) in zip(acc, self.aggregators)]

    def from_json(self, data: list[Any]) -> list[Any]:
        return [fn.from_json(a) for a, (_, fn) in zip(data, self.aggregators)]


def group_key(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    """A deterministic text key of a row's key columns (JSON list), for grouping and state.

    Keys are values, as streamlab groups them: a float -0.0 is 0.0's key (``v + 0.0``), and the
    infinities are JSON's ``Infinity`` / ``-Infinity``, apart from each other and from a missing key.
    """
    values = [row.get(k) for k in keys]
    return json.dumps([v + 0.0 if type(v) is float else v for v in values], default=json_default)


class ExprCompiler:
    """A streamlab expression compiled once into a per-record function with ``DataFrame.eval``'s answer
    on a one-row frame, for the operators streamlab's expressions use (arithmetic, comparisons,
    ``and``/``or``/``not``, ``&``/``|``/``~``, ``in``); pandas is asked whenever the answer is not certain.

    Values are the Python ones a row holds, read as the dtypes pandas would give a one-row column: an
    int (int64, wrapped by numpy when it overflows: such results go to pandas), a float (float64, a
    missing number is NaN), a bool, a str, None (an object column). An expression that reads a method
    (``x.str.len()``), a name that is no column, ``@`` locals or backticks, or an operation whose result
    or error is not one of the cases written here (a division by zero, an int overflow, a type error
    other than arithmetic on None) is evaluated by pandas (``pandas_eval``), so the answer is pandas'
    in every case.
    """

    class AskPandasError(Exception):
        """The compiled code is not sure of pandas' answer for this row: pandas evaluates it."""

    class NoneArithmeticError(Exception):
        """Arithmetic on a missing value of an object column, a TypeError for pandas."""

    CACHE: dict[Any, Any] = {}
    LOW, HIGH = -(2**63), 2**63
    EXACT = 2**53
    TESTS = frozenset(
        {"contains", "startswith", "endswith", "match", "fullmatch", "isalnum", "isalpha", "isascii"}
        | {"isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper"}
    )
    """``.str`` methods that test each string: pandas 3 answers False for a missing one."""
    TEXTS = frozenset(
        {"capitalize", "casefold", "center", "get", "join", "ljust", "lower", "lstrip", "normalize", "pad"}
        | {"removeprefix", "removesuffix", "repeat", "replace", "rjust", "rstrip", "slice", "slice_replace"}
        | {"strip", "swapcase", "title", "translate", "upper", "wrap", "zfill"}
    )
    """``.str`` methods that give a string: pandas 3 answers a missing string for a missing one."""

    @staticmethod
    def operand_type_error(e: BaseException) -> Any:
        """The TypeError pandas meant to raise where it raised ``e``, or None when ``e`` is another error.

        pandas' ``eval`` refuses arithmetic between objects and numbers ("unsupported operand type(s) for
        +: '<class 'float'>' and 'object'"), but when an operand is itself computed (``-1.5 + a``,
        ``a * -2``, ``(b * 2) + a``) it fails while writing that message, with "'UnaryOp' object has no
        attribute 'type'". The message is written here as pandas writes it for an operand computed
        first: its value's type, read from pandas' own frame.

        Examples
        --------
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"a": pd.Series([None], dtype=object)})
        >>> try:
        ...     frame.eval("a * -2", engine="python")
        ... except AttributeError as e:
        ...     print(ExprCompiler.operand_type_error(e))
        unsupported operand type(s) for *: 'object' and '<class 'int'>'
        """
        if not isinstance(e, AttributeError) or not str(e).endswith("object has no attribute 'type'"):
            return None
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = tb.tb_frame.f_locals if tb is not None else {}
        if tb is None or tb.tb_frame.f_code.co_name != "_maybe_evaluate_binop" or "res" not in where:
            return None

        def kind(operand: Any) -> str:
            if hasattr(operand, "type"):  # a column or a constant: pandas' own wording
                return str(operand.type)
            try:
                value = operand(where["self"].env)
            except Exception:
                return str(operand)  # its text, e.g. -(1.5)
            return str(getattr(value, "dtype", type(value)))

        op, lhs, rhs = where["res"].op, where.get("lhs"), where.get("rhs")
        return TypeError(f"unsupported operand type(s) for {op}: '{kind(lhs)}' and '{kind(rhs)}'")

    @staticmethod
    def meant(fn: Any, expr: str, **kwargs: Any) -> Any:
        """``fn(expr, **kwargs)`` (a pandas ``eval``), raising :meth:`operand_type_error`'s TypeError where
        pandas garbles it (``-1.5 + a`` over objects), any other error as it is. On pandas before 3, an
        operation whose attribute ``expr`` reads is evaluated first (:meth:`operations_read`), as pandas 3
        evaluates it: ``(n * 2).fillna(1)`` failed on every row there.

        Examples
        --------
        >>> import pandas as pd
        >>> try:
        ...     ExprCompiler.meant(pd.DataFrame({"a": [None]}).eval, "-1.5 + a", engine="python")
        ... except TypeError as e:
        ...     print(e)
        unsupported operand type(s) for +: '<class 'float'>' and 'object'
        >>> ExprCompiler.meant(pd.DataFrame({"n": [1.0, None]}).eval, "(n * 2).fillna(1)", engine="python").tolist()
        [2.0, 1.0]
        """
        import pandas as pd

        if int(pd.__version__.split(".")[0]) < 3:
            rewritten, operations = ExprCompiler.operations_read(expr)
            if operations:
                resolvers = list(kwargs.pop("resolvers", None) or ())
                values = {
                    name: ExprCompiler.meant(fn, operation, resolvers=resolvers, **kwargs)
                    for name, operation in operations
                }
                expr, kwargs = rewritten, {**kwargs, "resolvers": [values, *resolvers]}
        try:
            return fn(expr, **kwargs)
        except AttributeError as e:
            error = ExprCompiler.operand_type_error(e)
            if error is None:
                raise
            raise error from e

    @staticmethod
    def missing_text(index: Any) -> Any:
        """A missing value of a string or category column as a column of ``index`` on which pandas answers
        as on streamlab's columns (pandas 3's ``str`` dtype): a test of its ``.str`` (``contains``,
        ``isdigit``) is False (``na=True`` makes it True), a string method gives a missing string, any
        other (``len``, ``find``) NaN.

        pandas before 3 has no such dtype, and a PyFlink worker runs pandas < 2.3: there the column holds
        None as an object, whose own ``.str`` methods answer NaN (``s.str.contains('a') or n > 2`` dropped
        the row, ``not s.str.contains('a')`` was a TypeError), so it is given ``.str`` methods answering
        as pandas 3's (a missing string is NaN, as there). ``DataFrame.eval`` reads it from its resolvers
        (a frame's column is a plain Series).
        """
        import pandas as pd

        column = pd.Series([None], dtype="str", index=index)
        if column.dtype != object:
            return column
        tests, texts = ExprCompiler.TESTS, ExprCompiler.TEXTS

        class MissingTextMethods:
            def __init__(self, index: Any) -> None:
                self.index = index

            def __getitem__(self, key: Any) -> Any:
                return MissingText([math.nan], dtype=object, index=self.index)

            def __getattr__(self, name: str) -> Any:
                index = self.index
                plain = pd.Series([math.nan], dtype=object, index=index).str
                # pandas' AttributeError for no such method, but pandas < 3 has no isascii
                real = getattr(plain, name, None) if name in tests else getattr(plain, name)
                if not callable(real) and name not in tests:
                    return real

                def method(*args: Any, **kwargs: Any) -> Any:
                    out = real(*args, **kwargs) if real is not None else None  # pandas' argument errors
                    if name in tests:
                        return pd.Series([kwargs.get("na") is True], dtype=bool, index=index)
                    if name in texts:
                        return MissingText([math.nan], dtype=object, index=index)
                    if isinstance(out, pd.Series):
                        return pd.Series([math.nan], dtype="float64", index=index)
                    return out  # a frame (extract, partition): its missing values are NaN already

                return method

        class MissingText(pd.Series):
            @property
            def str(self) -> Any:  # type: ignore[override]
                return MissingTextMethods(self.index)

        return MissingText([math.nan], dtype=object, index=index)

    @classmethod
    def get(cls, expr: str, numeric: Any = (), typed: Any = ()) -> Any:
        """The per-record function of ``expr`` (cached); ``numeric`` names the columns whose missing
        values are NaN (the schema's numeric fields), ``typed`` holds (column, type) of the other columns
        whose streamlab type is known (their missing values are never read as NaN)."""
        key = (expr, numeric, typed)
        fn = cls.CACHE.get(key)
        if fn is None:
            fn = cls.CACHE[key] = cls(expr, numeric, typed).with_integers()
        return fn

    def __init__(self, expr: str, numeric: Any, typed: Any = ()) -> None:
        self.expr = expr
        self.numeric = tuple(numeric)
        self.typed = tuple(typed)
        self.known = frozenset(name for name, _ in self.typed)
        self.reads = False

    def function(self) -> Any:
        """The per-record function: the compiled code, which asks pandas for what it is not sure of (all of
        the expression when it reads something the compiler does not know)."""
        expr, numeric, typed = self.expr, self.numeric, self.typed
        fallback, none_arith = ExprCompiler.AskPandasError, ExprCompiler.NoneArithmeticError
        tree = self.parse(expr)
        body: Any = None
        body_nan: Any = None
        if tree is not None:
            try:
                body = self.node(tree, False)
                body_nan = self.node(tree, True)
            except fallback:
                body = None
        if body is None or not self.reads:  # pandas answers a constant with a scalar: leave it to pandas

            def evaluate(row: dict[str, Any]) -> Any:
                return pandas_eval(expr, row, numeric, typed)

            return evaluate

        def evaluate_compiled(row: dict[str, Any]) -> Any:
            try:
                return body(row)
            except none_arith:  # pandas reads the missing values as NaN and evaluates again
                try:
                    return body_nan(row)
                except (fallback, none_arith):  # a typed column's missing value stays what it is
                    return pandas_eval(expr, row, numeric, typed)
            except fallback:
                return pandas_eval(expr, row, numeric, typed)

        return evaluate_compiled

    @staticmethod
    def keeping_objects() -> Any:
        """pandas 3's ``fillna`` of an object column where pandas 2 has the option: ``[None].fillna(1.0)``
        stays the object 1.0 (pandas 2 casts it to float64, and ``fillna(1)`` to int64), as streamlab's
        runtime evaluates (``streamlab._compat.as_pandas_3``)."""
        import contextlib

        import pandas as pd

        if int(pd.__version__.split(".")[0]) >= 3 or "no_silent_downcasting" not in dir(pd.options.future):
            return contextlib.nullcontext()  # pandas 3 does not downcast (pandas < 2.2 has no such option)
        return pd.option_context("future.no_silent_downcasting", True)

    #: the nodes of an expression that only compares and combines values (streamlab's ``_compares_only``)
    COMPARING = ("Expression", "Compare", "BoolOp", "UnaryOp", "Name", "Constant", "List", "Tuple", "Load")

    def with_integers(self) -> Any:
        """:meth:`function`, whose values are of the type streamlab's column has where the expression
        computes with an ``int64`` field (in ``typed``), as ``streamlab._expr`` types them by batch:

        - a row missing such a field (read as NaN) gives what the expression gives with the field as
          None (``n.fillna(0)`` is the int 0, ``n.fillna(1.0)`` the float 1.0) when that is a number;
          else a whole number where the expression gives an integer for a row holding the field
          (``(n * 2).fillna(1)`` is 1, not 1.0);
        - a row holding them gives a float where the expression gives a float for a row missing them
          (``n.fillna(0.5)`` is 7.0 for 7: the column is float64 in every batch).

        An expression that only compares and combines values is left as it is (a bool).
        """
        import ast
        import math

        fn = self.function()
        ints = tuple(c for c, kind in self.typed if kind == "int64")
        tree = self.parse(self.expr)
        if tree is not None:
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            ints = tuple(c for c in ints if c in names)
            comparing = ExprCompiler.COMPARING
            signs = (ast.USub, ast.UAdd)
            if all(
                (
                    type(n).__name__ in comparing
                    or isinstance(n, (ast.cmpop, ast.boolop, ast.unaryop, ast.expr_context))
                )
                and not (
                    isinstance(n, ast.UnaryOp)
                    and isinstance(n.op, signs)
                    and not isinstance(n.operand, ast.Constant)
                )
                for n in ast.walk(ast.Expression(tree))
            ):
                return fn
        if not ints:
            return fn
        expr, numeric, typed = self.expr, self.numeric, self.typed
        floats_when_missing: dict[tuple[str, ...], bool] = {}

        def none_reading(row: dict[str, Any], missing: Any) -> Any:
            """The expression with the fields ``missing`` as None: an int64 int or a float, else None."""
            rest = tuple(c for c in numeric if c not in missing)
            try:
                with ExprCompiler.keeping_objects():
                    value = pandas_eval(expr, {**row, **dict.fromkeys(missing)}, rest, typed, series=True)
            except Exception:  # arithmetic on None: the NaN reading decides
                return None
            if str(getattr(value, "dtype", "")) != "object" or len(value) != 1:
                return None
            got = value.iloc[0]
            if (type(got) is int and -(2**63) <= got < 2**63) or (type(got) is float and got == got):
                return got
            return None

        def evaluate(row: dict[str, Any]) -> Any:
            value = fn(row)
            missing = [c for c in ints if c in row and row[c] is None]
            if missing:
                if type(value) is not float:
                    return value
                given = none_reading(row, missing)
                if given is not None:
                    return given
                if not (value == value and abs(value) < 2.0**63 and value == math.floor(value)):
                    return value
                try:
                    probe = fn({**row, **dict.fromkeys(missing, 1)})
                except Exception:  # the probe fails where the row does not: keep what it gave
                    return value
                return int(value) if type(probe) is int else value
            if type(value) is int:
                kinds = tuple(type(row.get(c)).__name__ for c in ints)
                floats = floats_when_missing.get(kinds)
                if floats is None:
                    floats = floats_when_missing[kinds] = type(none_reading(row, ints)) is float
                if floats:
                    return float(value)
            return value

        return evaluate

    @staticmethod
    def text_operands(expr: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """``expr`` with each string constant next to a ``+`` read from a name, and those (name, constant).

        pandas' ``DataFrame.eval`` refuses a string constant in arithmetic (``s + '!'``: "unsupported
        operand type(s) for +: 'str' and '<class 'str'>'") but joins two text columns: given as a column
        of the constant (``constant_column``), the constant is joined. streamlab's runtime evaluates with it too.
        """
        import ast
        import io
        import tokenize

        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
        except (tokenize.TokenError, SyntaxError):
            return expr, ()
        skip = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
        seen = [i for i, t in enumerate(tokens) if t.type not in skip and t.type != tokenize.ENDMARKER]
        texts: dict[int, str] = {}
        for k, i in enumerate(seen):
            if tokens[i].type != tokenize.STRING:
                continue
            near = [tokens[seen[j]] for j in (k - 1, k + 1) if 0 <= j < len(seen)]
            if any(t.type == tokenize.STRING for t in near):
                return expr, ()  # 'a' 'b': implicit concatenation, left as it is
            if any(t.type == tokenize.OP and t.string == "+" for t in near):
                try:
                    value = ast.literal_eval(tokens[i].string)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str):
                    texts[i] = value
        if not texts:
            return expr, ()
        # each constant's span replaced in the text itself (untokenize would space out a backtick-quoted
        # name, `user.id` becoming `user .id `, which names no column)
        starts = [0]
        for line in expr.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        pairs: list[tuple[str, str]] = []
        spans: list[tuple[int, int, str]] = []
        for i in sorted(texts):
            name = f"_streamlab_text_{len(pairs)}"
            pairs.append((name, texts[i]))
            (r0, c0), (r1, c1) = tokens[i].start, tokens[i].end
            spans.append((starts[r0 - 1] + c0, starts[r1 - 1] + c1, name))
        out = expr
        for begin, end, name in reversed(spans):
            out = out[:begin] + name + out[end:]
        return out, tuple(pairs)

    @staticmethod
    def constant_column(frame: Any, value: str, expr: str) -> Any:
        """``value`` on every row of ``frame``, in the text dtype of the columns ``expr`` reads (pandas joins
        text columns of one dtype only): object when one of them holds strings as objects, or only missing
        values as objects (a json field's null: joined with a constant it is missing, as pandas joins an
        object None with a Python string), else pandas' string dtype."""
        import ast

        import pandas as pd

        tree = ExprCompiler.parse(expr)
        names = (
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree is not None else frame.columns
        )
        held = any(
            n in frame.columns
            and frame[n].dtype == object
            and pd.api.types.infer_dtype(frame[n], skipna=True) in ("string", "empty")
            for n in names
        )
        return pd.Series([value] * len(frame), index=frame.index, dtype=object if held else str)

    @staticmethod
    def source(expr: str, keywords: bool = False) -> Any:
        """``expr`` as pandas rewrites it before parsing (``&``/``|`` as ``and``/``or``, the rest of the text
        as it is), or None where the compiled code does not read it (``@`` locals, backticks, a token error,
        an ``=``: an assignment, or unless ``keywords``, a keyword argument).

        Examples
        --------
        >>> ExprCompiler.source("a > 1 & (b|c)")
        'a > 1  and  (b or c)'
        >>> ExprCompiler.source("a.fillna(value=1)"), ExprCompiler.source("a.fillna(value=1)", keywords=True)
        (None, 'a.fillna(value=1)')
        """
        import io
        import tokenize

        if "@" in expr or "`" in expr:
            return None
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
        except (SyntaxError, tokenize.TokenError, ValueError):
            return None
        starts = [0]
        for line in expr.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        out = expr
        for tok in reversed(tokens):
            if tok.type != tokenize.OP or tok.string not in ("&", "|", "="):
                continue
            if tok.string == "=":
                if keywords:
                    continue
                return None
            at = starts[tok.start[0] - 1] + tok.start[1]
            out = out[:at] + (" and " if tok.string == "&" else " or ") + out[at + 1 :]
        return out

    @staticmethod
    def parse(expr: str) -> Any:
        """The expression's syntax tree after pandas' rewriting (``&``/``|`` as ``and``/``or``), or None."""
        import ast

        source = ExprCompiler.source(expr)
        if source is None:
            return None
        for _ in range(3):  # CPython 3.11's parser can fail when another thread parses at once
            try:
                return ast.parse(source, mode="eval").body
            except SystemError:
                continue
            except (SyntaxError, ValueError):
                return None
        return None

    #: (expression, its operations read apart), for ``operations_read``
    OPERATIONS: dict[str, Any] = {}

    @staticmethod
    def operations_read(expr: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """``expr`` with each operation whose attribute it reads (``(n * 2).fillna(1)``, ``(-n).abs()``,
        ``(n > 1).astype(int)``) read from a name, and those (name, operation); ``(expr, ())`` when it reads
        none.

        pandas before 3 cannot evaluate an attribute of an operation ("'BinOp' object has no attribute
        'value'"), where pandas 3 evaluates the operation and reads the attribute of its value; evaluated
        first and given by its name, the operation is read as pandas 3 reads it (:meth:`meant`).

        Examples
        --------
        >>> ExprCompiler.operations_read("(n * 2).fillna(1) > m & (-n).abs() < 3")
        ('(_streamlab_operand_0).fillna(1) > m  and  (_streamlab_operand_1).abs() < 3', (('_streamlab_operand_0', 'n * 2'), ('_streamlab_operand_1', '-n')))
        >>> ExprCompiler.operations_read("n.mul(2).fillna(1)")
        ('n.mul(2).fillna(1)', ())
        """
        import ast

        found = ExprCompiler.OPERATIONS.get(expr)
        if found is not None:
            return found  # type: ignore[no-any-return]
        source = ExprCompiler.source(expr, keywords=True)
        tree = None
        for _ in range(3 if source is not None else 0):  # (CPython 3.11's parser race: see parse)
            try:
                tree = ast.parse(source, mode="eval")
                break
            except SystemError:
                continue
            except (SyntaxError, ValueError):
                break
        operations = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare)
        spans: list[Any] = []
        todo = [tree] if tree is not None else []
        while todo:
            node = todo.pop()
            if isinstance(node, ast.Attribute) and isinstance(node.value, operations):
                spans.append(node.value)  # evaluated apart, with the operations it reads itself
                continue
            todo.extend(ast.iter_child_nodes(node))
        if not spans or source is None:
            found = (expr, ())
        else:
            lines = source.splitlines(keepends=True)
            starts = [0]
            for line in lines:
                starts.append(starts[-1] + len(line))

            def at(row: int, col: int) -> int:  # ast's columns count UTF-8 bytes
                return starts[row - 1] + len(lines[row - 1].encode()[:col].decode())

            out = source
            pairs: list[tuple[str, str, int, int]] = []  # (name, operation, its start, its end)
            for node in sorted(spans, key=lambda n: (n.lineno, n.col_offset)):
                begin, end = at(node.lineno, node.col_offset), at(node.end_lineno, node.end_col_offset)
                name = f"_streamlab_operand_{len(pairs)}"
                pairs.append((name, source[begin:end], begin, end))
            for name, _, begin, end in reversed(pairs):
                out = out[:begin] + name + out[end:]
            found = (out, tuple((name, text) for name, text, _, _ in pairs))
        if len(ExprCompiler.OPERATIONS) < 4096:
            ExprCompiler.OPERATIONS[expr] = found
        return found

    def node(self, n: Any, nan_for_none: bool) -> Any:
        import ast

        fallback = ExprCompiler.AskPandasError
        if isinstance(n, ast.Name):
            return self.column(n.id, (nan_for_none and n.id not in self.known) or n.id in self.numeric)
        if isinstance(n, ast.Constant):
            value = n.value
            if not (
                type(value) in (bool, float, str) or (type(value) is int and self.LOW <= value < self.HIGH)
            ):
                raise fallback
            return lambda row: value
        if isinstance(n, ast.BinOp):
            # arithmetic on an object column is a TypeError for pandas next to a column or constant only
            terms = all(isinstance(x, (ast.Name, ast.Constant)) for x in (n.left, n.right))
            left, right = self.node(n.left, nan_for_none), self.node(n.right, nan_for_none)
            # which operands are text whatever the row
            text = (self.text(n.left), self.text(n.right))
            return self.arithmetic(n.op, left, right, terms, text)
        if isinstance(n, ast.UnaryOp):
            return self.unary(n.op, self.node(n.operand, nan_for_none))
        if isinstance(n, ast.BoolOp):
            parts = [self.node(v, nan_for_none) for v in n.values]
            out = parts[0]
            for part in parts[1:]:  # pandas folds a chain left to right, evaluating every operand
                out = self.logic(isinstance(n.op, ast.And), out, part)
            return out
        if isinstance(n, ast.Compare):
            operands = [n.left, *n.comparators]
            sides = [
                None if isinstance(v, (ast.List, ast.Tuple)) else self.node(v, nan_for_none) for v in operands
            ]
            pairs = []
            for i, op in enumerate(n.ops):
                if sides[i] is None:
                    raise fallback  # a list on the left
                if isinstance(op, (ast.In, ast.NotIn)):
                    pairs.append(self.member(isinstance(op, ast.In), sides[i], operands[i + 1]))
                elif sides[i + 1] is None:
                    raise fallback  # pandas reads == [..] as isin
                else:
                    pairs.append(self.compare(op, sides[i], sides[i + 1]))
            out = pairs[0]
            for part in pairs[1:]:
                out = self.logic(True, out, part)
            return out
        raise fallback

    def column(self, name: str, nan_for_none: bool) -> Any:
        self.reads = True
        fallback, low, high = ExprCompiler.AskPandasError, self.LOW, self.HIGH
        missing = math.nan if nan_for_none else None

        def read(row: dict[str, Any]) -> Any:
            try:
                v = row[name]
            except KeyError:
                raise fallback from None
            t = type(v)
            if t is float or t is str or t is bool:
                return v
            if t is int and low <= v < high:
                return v
            if v is None:
                return missing
            raise fallback  # a huge int (uint64 or object), bytes, a timestamp, ...

        return read

    def text(self, n: Any) -> bool:
        """Whether ``n`` is text whatever the row: a string constant, a string or category column (streamlab
        reads an unordered category as its values' text in expressions), or + of text."""
        import ast

        if isinstance(n, ast.Constant):
            return type(n.value) is str
        if isinstance(n, ast.Name):
            return (n.id, "string") in self.typed or (n.id, "category") in self.typed
        return (
            isinstance(n, ast.BinOp)
            and isinstance(n.op, ast.Add)
            and (self.text(n.left) or self.text(n.right))
        )

    def arithmetic(
        self, op: Any, left: Any, right: Any, terms: bool, text: tuple[bool, bool] | None = (False, False)
    ) -> Any:
        """``op`` on two operands; ``text``: whether each is text whatever the row (its missing value is a
        missing text), None when they are never joined (a category column)."""
        import operator

        fallback, none_arith, low, high = (
            ExprCompiler.AskPandasError,
            ExprCompiler.NoneArithmeticError,
            self.LOW,
            self.HIGH,
        )
        name = type(op).__name__
        if name not in ("Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow"):
            raise fallback
        fn = getattr(operator, {"Add": "add", "Sub": "sub", "Mult": "mul", "Div": "truediv"}.get(name, "add"))
        plain = name in ("Add", "Sub", "Mult", "Div")
        int_op = name != "Div"

        def other(a: Any, b: Any) -> Any:
            """Anything but numbers: pandas' TypeError for a missing value of an object column, or pandas."""
            ta, tb = type(a), type(b)
            if name == "Add" and text is not None and (ta is str or tb is str):
                # text joined, a missing text staying missing (pandas' eval refuses a string constant here)
                if ta is str and tb is str:
                    return a + b
                if (ta is str or (a is None and text[0])) and (tb is str or (b is None and text[1])):
                    return None
            if terms and (a is None or ta is int or ta is float) and (b is None or tb is int or tb is float):
                raise none_arith
            raise fallback

        def integers(a: int, b: int) -> Any:
            if name == "FloorDiv" or name == "Mod":
                if b == 0:
                    raise fallback
                r = a // b if name == "FloorDiv" else a % b
            elif name == "Pow":
                if b < 0 or (b > 64 and abs(a) > 1):
                    raise fallback
                r = a**b
            else:
                r = fn(a, b)
            if low <= r < high:
                return r
            raise fallback  # numpy wraps around

        def floats(a: float, b: float) -> Any:
            if name == "Div" and b == 0.0:
                raise fallback
            if plain:
                return fn(a, b)
            if name == "Pow":
                try:
                    r = a**b
                except (ZeroDivisionError, OverflowError):
                    raise fallback from None
                if type(r) is not float:
                    raise fallback  # a negative base to a fractional power: complex in Python, NaN in numpy
                return r
            if b == 0.0 or not (math.isfinite(a) and math.isfinite(b)):
                raise fallback
            return a // b if name == "FloorDiv" else a % b

        def run(row: dict[str, Any]) -> Any:
            a = left(row)
            b = right(row)
            ta, tb = type(a), type(b)
            if ta is int and tb is int and int_op:
                return integers(a, b)
            if (ta is float or ta is int) and (tb is float or tb is int):
                return floats(float(a), float(b))
            return other(a, b)

        return run

    def unary(self, op: Any, operand: Any) -> Any:
        import ast

        fallback, low = ExprCompiler.AskPandasError, self.LOW
        if isinstance(op, (ast.Not, ast.Invert)):  # pandas reads ``not`` as ``~``

            def invert(row: dict[str, Any]) -> Any:
                a = operand(row)
                t = type(a)
                if t is bool:
                    return not a
                if t is int:
                    return ~a
                raise fallback

            return invert
        negate = isinstance(op, ast.USub)

        def sign(row: dict[str, Any]) -> Any:
            a = operand(row)
            t = type(a)
            if t is float or (t is int and a != low):
                return -a if negate else a
            raise fallback

        return sign

    @staticmethod
    def logic(conjunction: bool, left: Any, right: Any) -> Any:
        fallback = ExprCompiler.AskPandasError

        def run(row: dict[str, Any]) -> Any:
            a = left(row)
            b = right(row)
            if type(a) is bool and type(b) is bool:
                return (a and b) if conjunction else (a or b)
            raise fallback

        return run

    @staticmethod
    def compare(op: Any, left: Any, right: Any) -> Any:
        import operator

        fallback = ExprCompiler.AskPandasError
        name = type(op).__name__
        if name not in ("Eq", "NotEq", "Lt", "LtE", "Gt", "GtE"):
            raise fallback
        fn = getattr(
            operator, {"Eq": "eq", "NotEq": "ne", "Lt": "lt", "LtE": "le", "Gt": "gt", "GtE": "ge"}[name]
        )
        equality = name in ("Eq", "NotEq")
        differ = name == "NotEq"
        numbers = (int, float, bool)

        def run(row: dict[str, Any]) -> Any:
            a = left(row)
            b = right(row)
            ta, tb = type(a), type(b)
            if ta in numbers and tb in numbers:
                if ta is float or tb is float:  # numpy compares an int64 with a float64 as float64
                    return fn(float(a), float(b))
                return fn(a, b)
            if ta is str and tb is str:
                return fn(a, b)
            if a is None or (b is None and equality):  # a missing value of an object column compares False
                if not equality and tb in numbers:  # a missing string < a number: pandas' TypeError
                    raise fallback
                return differ  # (but a number < None on the right is a TypeError for pandas)
            if equality and (ta is str or tb is str):
                return differ
            raise fallback

        return run

    def member(self, inside: bool, left: Any, node: Any) -> Any:
        import ast

        fallback, exact = ExprCompiler.AskPandasError, self.EXACT
        if not isinstance(node, (ast.List, ast.Tuple)):
            raise fallback
        values: list[Any] = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(values) != len(node.elts):
            raise fallback
        for v in values:
            if not (type(v) is str or (type(v) in (int, float) and -exact <= v <= exact)):
                raise fallback  # None, NaN, bools and huge ints follow numpy's casting rules in isin
        words = frozenset(v for v in values if type(v) is str)
        numbers = frozenset(v for v in values if type(v) is not str)

        def run(row: dict[str, Any]) -> Any:
            a = left(row)
            t = type(a)
            if t is str:
                found = a in words
            elif t is float or (t is int and -exact <= a <= exact):
                found = a in numbers
            elif a is None:
                found = False
            else:
                raise fallback
            return found if inside else not found

        return run


def pandas_eval(
    expr: str, row: dict[str, Any], numeric: Any = (), typed: Any = (), series: bool = False
) -> Any:
    """``expr`` evaluated by pandas on a one-row frame of ``row`` typed as streamlab's columns: a missing
    value of a ``numeric`` column is NaN, a missing string or category (``typed``: (column, type) pairs)
    is a missing value of a string column; when that is a type error, as arithmetic on a missing value of
    a column of unknown type is, those are read as NaN too (a missing number is NaN in streamlab's
    columns). A missing value of a column whose type is known stays what it is. ``series``: pandas'
    answer as it is (a one-row Series, its dtype with it), not its value."""
    import ast

    import pandas as pd

    try:
        frame = pd.DataFrame([row])
    except OverflowError:
        # pandas < 3 on an int beyond a double (a 400-digit JSON number), which pandas 3 and streamlab's
        # columns keep as an object: given so, as the only value of its column
        huge = [c for c, v in row.items() if type(v) is int and not -(2**64) < v < 2**64]
        frame = pd.DataFrame([{c: None if c in huge else v for c, v in row.items()}])
        for c in huge:
            frame[c] = pd.Series([row[c]], dtype=object, index=frame.index)
    nans = {c: "float64" for c in numeric if c in row and row[c] is None}
    if nans:
        frame = frame.astype(nans)
    known = {c for c, _ in typed}
    rewritten, texts = ExprCompiler.text_operands(expr)
    texts_missing: dict[str, Any] = {}  # DataFrame.eval reads these first (see ExprCompiler.missing_text)
    for c, kind in typed:
        if kind in ("string", "category") and c in row and row[c] is None:
            frame[c] = texts_missing[c] = ExprCompiler.missing_text(frame.index)
        elif kind in ("json", "object") and (
            isinstance(row.get(c), str) or (type(row.get(c)) is int and not -(2**63) <= row[c] < 2**63)
        ):
            # a json field's text or int beyond int64 is a Python object in streamlab's column, where pandas
            # makes text its str dtype (its errors then named 'str', not 'object') and 2**63 uint64 (and
            # 2**63 * 2 wrapped to 0)
            frame[c] = pd.Series([row[c]], dtype=object, index=frame.index)
    tree = ExprCompiler.parse(expr) if texts else None
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree is not None else set(row)
    if any(kind == "category" and c in read for c, kind in typed):
        texts = ()  # a category column (a string here) is joined with no text in streamlab's runtime

    def evaluate(frame: Any) -> Any:
        if not texts:
            return ExprCompiler.meant(frame.eval, expr, engine="python", resolvers=[texts_missing])
        columns = {n: ExprCompiler.constant_column(frame, v, expr) for n, v in texts}
        return ExprCompiler.meant(frame.eval, rewritten, engine="python", resolvers=[texts_missing, columns])

    try:
        value = evaluate(frame)
    except TypeError:
        missing = [c for c, v in row.items() if v is None and c not in nans and c not in known]
        if not missing:
            raise
        value = evaluate(frame.astype({c: "float64" for c in missing}))
    if series:
        return value
    value = value.iloc[0] if hasattr(value, "iloc") else value
    return value.item() if hasattr(value, "item") else value


def eval_expr(
    expr: str, row: dict[str, Any], numeric: tuple[str, ...] = (), typed: tuple[tuple[str, str], ...] = ()
) -> Any:
    """A pandas expression (as streamlab's filter/with_columns) evaluated on one row, as
    ``pandas.DataFrame([row]).eval(expr)`` answers it, by code compiled once per expression.

    A missing value (None) of a ``numeric`` column (the schema's numbers) is NaN, as in streamlab's
    columns; one of a string or category column in ``typed`` ((column, type) pairs of the columns of known
    non-numeric type) is a missing string. Any other missing value is first left as it is (``x > 0`` is
    False); when that is a type error, as arithmetic on None is, it is read as NaN unless its column is
    in ``typed``.

    Examples
    --------
    >>> eval_expr("amount * 100", {"amount": None}, ("amount",))
    nan
    >>> eval_expr("amount > 10 & kind == 'buy'", {"amount": 12, "kind": "buy"})
    True
    """
    fn = ExprCompiler.CACHE.get((expr, numeric, typed))
    if fn is None:
        fn = ExprCompiler.get(expr, numeric, typed)
    return fn(row)


def filter_keeps(
    expr: str, row: dict[str, Any], numeric: tuple[str, ...] = (), typed: tuple[tuple[str, str], ...] = ()
) -> bool:
    """Whether streamlab's ``filter(expr)`` keeps ``row``: its value (:func:`eval_expr`) is true and not
    missing (a missing value, None or NaN, drops the row, as in streamlab's filter).

    Examples
    --------
    >>> filter_keeps("amount", {"amount": None}, ("amount",)), filter_keeps("amount > 1", {"amount": 2.0})
    (False, True)
    """
    value = eval_expr(expr, row, numeric, typed)
    if value is None or type(value).__name__ == "NAType" or value != value:
        return False
    return bool(value)


def assign_exprs(
    row: dict[str, Any],
    columns: Any,
    numeric: tuple[str, ...] = (),
    typed: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """``row`` with the columns of streamlab's ``with_columns``: (name, expression) pairs evaluated in
    order, each seeing the columns set before it (``numeric`` and ``typed`` as for :func:`eval_expr`)."""
    out = dict(row)
    for name, expr in columns:
        out[name] = eval_expr(expr, out, numeric, typed)
    return out
