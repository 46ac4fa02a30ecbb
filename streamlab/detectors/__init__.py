"""Online fraud and anomaly detection: detectors, thresholds, features, rules, patterns, drift.

Contract: detectors speak river's vocabulary (``learn_one(x)``, ``score_one(x)``, higher = more
anomalous); every step is a frozen config whose ``build()`` returns a picklable
:class:`~streamlab.operators.Operator` working on pandas batches (``op.process(df)["out"]``).
Metrics against labels that arrive later live in :mod:`streamlab.detectors.evaluation`.
"""

from streamlab.detectors._detect import Detect, DetectOperator
from streamlab.detectors._drift import DriftDetector, DriftOperator
from streamlab.detectors._features import (
    DistinctCountFeature,
    FeatureOperator,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.detectors._models import (
    Detector,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    LocalOutlierFactorDetector,
    OneClassSVMDetector,
    RiverDetector,
    StandardAbsoluteDeviationDetector,
)
from streamlab.detectors._pattern import Pattern, PatternOperator, PatternStep
from streamlab.detectors._thresholds import (
    AdaptiveThresholdFilter,
    FixedThresholdFilter,
    QuantileThresholdFilter,
    ThresholdFilter,
    ThresholdOperator,
)

__all__ = [
    "AdaptiveThresholdFilter",
    "Detect",
    "DetectOperator",
    "Detector",
    "DistinctCountFeature",
    "DriftDetector",
    "DriftOperator",
    "FeatureOperator",
    "FixedThresholdFilter",
    "GaussianScorerDetector",
    "HalfSpaceTreesDetector",
    "LocalOutlierFactorDetector",
    "OneClassSVMDetector",
    "Pattern",
    "PatternOperator",
    "PatternStep",
    "QuantileThresholdFilter",
    "RatioToMedianFeature",
    "RiverDetector",
    "StandardAbsoluteDeviationDetector",
    "ThresholdFilter",
    "ThresholdOperator",
    "ThresholdRule",
    "TimeSinceLastFeature",
    "VelocityFeature",
    "VelocityRule",
    "ZScoreFeature",
]
