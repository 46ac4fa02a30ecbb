"""User functions carried by a pipeline: the callable plus how to find it again (import path or source)."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamlab import _pyast

__all__ = ["UserFunction"]


def _lambda_source(fn: Callable[..., Any]) -> str | None:
    """Extract the text of a lambda from the line(s) that define it, when that is unambiguous."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    try:
        tree = _pyast.parse(src)
    except SyntaxError:
        try:
            tree = _pyast.parse("(" + src.strip().rstrip(",") + ")")
            src = "(" + src.strip().rstrip(",") + ")"
        except SyntaxError:
            return None
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(lambdas) != 1:
        return None
    return ast.get_source_segment(src, lambdas[0])


@dataclass(frozen=True)
class UserFunction:
    """A user's Python function with a portable reference, so YAML and exporters can carry it.

    ``ref`` is ``"module:qualname"`` when the function is importable by that name; otherwise ``source``
    holds its text (a lambda expression or a ``def`` block).

    Examples
    --------
    >>> import math
    >>> UserFunction.of(math.sqrt).ref
    'math:sqrt'
    >>> f = UserFunction.of(lambda e: e["amount"] > 10)
    >>> f.source
    'lambda e: e["amount"] > 10'
    >>> UserFunction.from_spec({"source": f.source}, trust=True)({"amount": 12})
    True
    """

    fn: Callable[..., Any] = field(compare=False)
    ref: str | None = None
    source: str | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any] | UserFunction) -> UserFunction:
        if isinstance(fn, UserFunction):
            return fn
        if not callable(fn):
            raise TypeError(f"expected a function, got {type(fn).__name__}: {fn!r}")
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", "")
        ref = None
        if module and module != "__main__" and "<" not in qualname:
            try:
                obj: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
                if obj is fn:
                    ref = f"{module}:{qualname}"
            except (ImportError, AttributeError):
                ref = None
        source = None
        if ref is None:
            if getattr(fn, "__name__", "") == "<lambda>":
                source = _lambda_source(fn)
            else:
                try:
                    source = textwrap.dedent(inspect.getsource(fn))
                except (OSError, TypeError):
                    source = None
        return cls(fn=fn, ref=ref, source=source)

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | str, *, trust: bool = False) -> UserFunction:
        """Find a function again from :meth:`spec`: import ``ref``, or run ``source`` (``trust=True`` only).

        Running a function's source text runs whatever it holds, so a ``source`` is refused unless the
        caller trusts where the spec came from; an import path names code already installed here.
        """
        if isinstance(spec, str):
            spec = {"ref": spec}
        if spec.get("ref"):
            module, _, qualname = spec["ref"].partition(":")
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return cls(fn=obj, ref=spec["ref"])
        source = spec.get("source")
        if not source:
            raise ValueError("a function spec needs 'ref' (module:qualname) or 'source'")
        if not trust:
            raise ValueError(
                f"refusing to run function source {source.strip().splitlines()[0][:60]!r} from an untrusted "
                "spec; pass trust=True (--trust) if you wrote or reviewed it, or reference an importable "
                "function as {'ref': 'module:name'}"
            )
        namespace: dict[str, Any] = {}
        if source.lstrip().startswith("lambda") or source.lstrip().startswith("("):
            fn = eval(source, namespace)
        else:
            exec(source, namespace)
            fns = [v for v in namespace.values() if inspect.isfunction(v)]
            if not fns:
                raise ValueError("function source defines no function")
            fn = fns[-1]
        return cls(fn=fn, source=source)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def spec(self) -> dict[str, str]:
        if self.ref:
            return {"ref": self.ref}
        if self.source:
            return {"source": self.source}
        raise ValueError(
            f"function {self.name} has neither an import path nor readable source; define it in a module "
            "(importable as module:name) so the pipeline can be saved and exported"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)
