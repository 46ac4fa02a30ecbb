"""Detector, feature, rule, drift and pattern steps for exporters: their row-level specs and how they are keyed.

A step's spec is plain data (durations as ns, output column names resolved) that
``streamlab._detector_record.make_step`` turns into the per-record state machine a generated job runs;
generated modules carry that module's code and write each spec as a constant.

Examples
--------
>>> from streamlab.detectors import VelocityFeature
>>> spec = row_step_spec(VelocityFeature("card_id", window="10m", value="amount"), "velocity")
>>> spec["window_ns"], spec["count_column"], spec["sum_column"]
(600000000000, 'count_10m', 'sum_amount_10m')
"""

from __future__ import annotations

from typing import Any

from streamlab import _detector_record
from streamlab._expr import expression_names
from streamlab._step_kinds import label_of
from streamlab._time import parse_duration
from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    DistinctCountFeature,
    DriftDetector,
    FixedThresholdFilter,
    HalfSpaceTreesDetector,
    OneClassSVMDetector,
    Pattern,
    PatternStep,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import _plan

__all__ = ["IMPORTS", "detector_record_source", "global_step", "row_step_spec", "state_key"]

IMPORTS = ("bisect", "heapq", "math", "collections", "typing", "streamlab._record")
"""Modules ``streamlab._detector_record`` imports (river aside, imported where a model is built);
generated modules carry ``streamlab._record``'s code (``_plan.snippet_source``) beside its own."""


def detector_record_source() -> str:
    """The code of ``streamlab._detector_record`` after its imports, as generated modules carry it."""
    return _plan._module_body(_detector_record, IMPORTS)


def _ns(value: Any, what: str) -> int:
    return parse_duration(value, what=what)


def _refuse(step_id: str, config: Any, why: str, fix: str) -> PipelineConfigError:
    """An export error for a row step, named as every error names it (``label_of``: its config's class,
    a detect step's detector's class)."""
    return PipelineConfigError(step_id, label_of(config), why, fix)


def row_step_spec(config: Any, step_id: str) -> dict[str, Any]:
    """The plain-data spec of a detector, feature, rule, drift or pattern step (see the module docstring)."""
    if isinstance(config, VelocityFeature):
        count, total = config.column_names()
        return {
            "kind": config.kind,
            "key": config.key,
            "time": config.time,
            "value": config.value,
            "window_ns": _ns(config.window, "window"),
            "lateness_ns": _ns(config.allowed_lateness, "allowed_lateness"),
            "count_column": count,
            "sum_column": total,
        }
    if isinstance(config, VelocityRule):
        return {
            "kind": config.kind,
            "key": config.key,
            "time": config.time,
            "name": config.name,
            "max_count": config.max_count,
            "window_ns": _ns(config.window, "window"),
            "lateness_ns": _ns(config.allowed_lateness, "allowed_lateness"),
        }
    if isinstance(config, DistinctCountFeature):
        return {
            "kind": config.kind,
            "key": config.key,
            "time": config.time,
            "value": config.value,
            "column": config.column_name(),
            "window_ns": _ns(config.window, "window"),
            "lateness_ns": _ns(config.allowed_lateness, "allowed_lateness"),
        }
    if isinstance(config, (ZScoreFeature, RatioToMedianFeature)):
        spec = {
            "kind": config.kind,
            "key": config.key,
            "value": config.value,
            "column": config.column_name(),
            "max_keys": config.max_keys,
        }
        if isinstance(config, RatioToMedianFeature):
            spec["history"] = config.history
        return spec
    if isinstance(config, TimeSinceLastFeature):
        return {
            "kind": config.kind,
            "key": config.key,
            "time": config.time,
            "column": config.column_name(),
            "max_keys": config.max_keys,
        }
    if isinstance(config, ThresholdRule):
        return {**config.describe(), "columns": config.condition_columns()}
    if isinstance(config, Detect):
        return _detect_spec(config, step_id)
    if isinstance(config, DriftDetector):
        return config.describe()
    if isinstance(config, Pattern):
        steps: tuple[PatternStep, ...] = tuple(config.steps)  # type: ignore[arg-type]
        columns = sorted({c for s in steps for c in s.differs_from})
        names = [s.name for s in steps]
        return {
            "kind": config.kind,
            "key": config.key,
            "time": config.time,
            "id_column": config.id_column,
            "name": config.name,
            "value_columns": columns,
            "steps": [
                {
                    "name": s.name,
                    "where": s.where,
                    "columns": list(expression_names(s.where) or ()),
                    "times": s.times,
                    "differs_from": {columns.index(c): names.index(e) for c, e in s.differs_from.items()},
                }
                for s in steps
            ],
            "within_ns": _ns(config.within, "within"),
            "delay_ns": _ns(config.delay, "delay"),
        }
    raise _refuse(
        step_id,
        config,
        "such steps have no per-record form, so exporters cannot translate them",
        "use streamlab's detectors, features, rules and patterns, or keep this step in the notebook",
    )


def _detect_spec(config: Detect, step_id: str) -> dict[str, Any]:
    detector = config.detector.describe()
    kind = detector["kind"]
    if kind not in (
        "half_space_trees",
        "one_class_svm",
        "local_outlier_factor",
        "gaussian_scorer",
        "standard_absolute_deviation",
    ):
        raise _refuse(
            step_id,
            config,
            f"its detector wraps an arbitrary river model ({config.detector.name}), which exported code cannot "
            "rebuild",
            "use one of streamlab's detectors (HalfSpaceTreesDetector, GaussianScorerDetector, ...)",
        )
    if (
        isinstance(config.detector, (HalfSpaceTreesDetector, OneClassSVMDetector))
        and detector["seed"] is None
    ):
        raise _refuse(
            step_id,
            config,
            "the detector has seed=None: its random trees or features would differ between the notebook and "
            "the exported job",
            f"pass seed=42 (any int) to {type(config.detector).__name__}",
        )
    return {
        "kind": config.kind,
        "detector": detector,
        "features": list(config.features),
        "key": config.key,
        "learn": config.learn,
        "threshold": None if config.threshold is None else config.threshold.describe(),
        "max_keys": config.max_keys,
        "ttl_ns": None if config.key_ttl is None else _ns(config.key_ttl, "key_ttl"),
        "time": config.time,
    }


def state_key(config: Any) -> str | None:
    """The column a step's state can be split by (each key's state apart), or None when its state spans
    all keys: a pattern (one watermark), a drift detector, an unkeyed detect step, or a detect step whose
    threshold learns from every key's scores."""
    if isinstance(config, Detect):
        if config.key is None:
            return None
        t = config.threshold
        if (
            t is None
            or isinstance(t, FixedThresholdFilter)
            or (isinstance(t, AdaptiveThresholdFilter) and t.per_key)
        ):
            return config.key
        return None
    if isinstance(config, (Pattern, DriftDetector)):
        return None
    return getattr(config, "key", None)


def global_step(config: Any) -> bool:
    """Whether the step's state spans all keys (see :func:`state_key`)."""
    return state_key(config) is None


_ADDED_TYPES = {
    "score": "float64",
    "is_anomaly": "bool",
    "detector": "string",
    "rule": "string",
    "is_alert": "bool",
}


def output_types(p: Any, types: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """``types`` (``_plan.column_types``) completed with the columns detector-package steps add, so that
    tables (BigQuery) get every column: counts and distinct counts as int64, other features as float64."""
    from streamlab.steps import OperatorStep

    out = dict(types)
    for sid, step in p.steps.items():
        if not isinstance(step, OperatorStep):
            continue
        base = out.get(step.inputs[0], {}) if step.inputs else {}
        for name in step.outputs:
            ref = sid if name == "out" else f"{sid}.{name}"
            columns = p.columns_of(ref) or ()
            known = {**base, **_ADDED_TYPES, "reason": "string", "step_id": "string"}
            if isinstance(step.config, Pattern) and name == "out":
                known = {step.config.key: base.get(step.config.key, "string"), "pattern": "string"}
                known |= {
                    "first_time": "timestamp",
                    "last_time": "timestamp",
                    "event_ids": "json",
                    "n_events": "int64",
                }
            if isinstance(step.config, DriftDetector) and name == "drift":
                known = {
                    "time": "timestamp",
                    "value": "float64",
                    "method": "string",
                    "column": "string",
                    "n_seen": "int64",
                }
            out[ref] = {c: known.get(c, _feature_type(c)) for c in columns}
    return out


def _feature_type(column: str) -> str:
    return "int64" if column.startswith(("count_", "distinct_")) or column.endswith("_count") else "float64"
