"""The detectors' conditions: :mod:`streamlab._expr` (shared with ``with_columns``)."""

from streamlab._expr import compile_expression, eval_condition, eval_expression, expression_names

__all__ = ["compile_expression", "eval_condition", "eval_expression", "expression_names"]
