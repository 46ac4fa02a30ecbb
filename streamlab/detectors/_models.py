"""Anomaly detectors in river's vocabulary: ``learn_one(x)``, ``score_one(x)``, higher = more anomalous."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from river import anomaly, feature_extraction, preprocessing

try:
    from river.base import SupervisedAnomalyDetector
except ImportError:  # river 0.22 (the newest for Python 3.10) keeps it in river.anomaly.base
    from river.anomaly.base import SupervisedAnomalyDetector  # type: ignore[no-redef]

from streamlab._detector_record import local_outlier_factor
from streamlab.detectors._vectorized import HalfSpaceTreesBank, ModelBank, MomentsBank
from streamlab.errors import ParameterError

__all__ = [
    "Detector",
    "GaussianScorerDetector",
    "HalfSpaceTreesDetector",
    "LocalOutlierFactorDetector",
    "OneClassSVMDetector",
    "RiverDetector",
    "StandardAbsoluteDeviationDetector",
]


class Detector:
    """Contract of an online anomaly detector.

    ``score_one(x)`` returns a float, higher = more anomalous, without learning; ``learn_one(x)``
    updates the model. ``clone()`` returns a fresh, untrained detector with the same parameters
    (the per-key models of :class:`~streamlab.detectors.Detect` are clones of a prototype).
    Subclasses must not mutate ``x``.

    Examples
    --------
    >>> det = StandardAbsoluteDeviationDetector(grace_period=3)
    >>> for v in [1.0, 2.0, 1.5, 1.0, 2.0]:
    ...     det.learn_one({"amount": v})
    >>> det.score_one({"amount": 50.0}) > det.score_one({"amount": 1.5})
    True
    """

    #: Value written to the ``detector`` column of scored events.
    name: str = "detector"

    def learn_one(self, x: dict[str, float]) -> None:
        """Update the model with one event's features."""
        raise NotImplementedError

    def score_one(self, x: dict[str, float]) -> float:
        """Anomaly score of one event's features (higher = more anomalous); does not learn."""
        raise NotImplementedError

    def clone(self) -> Detector:
        """A fresh, untrained detector with the same parameters."""
        raise NotImplementedError

    def check_features(self, features: tuple[str, ...]) -> None:
        """Raise a ValueError when the detector cannot work on events with these features."""

    def bound_methods(self) -> tuple[Callable[[dict[str, float]], float], Callable[[dict[str, float]], None]]:
        """``(score_one, learn_one)`` as the cheapest callables that behave exactly like the methods.

        Hot loops call these; a wrapper whose methods only delegate returns its model's methods,
        saving a Python call per event.
        """
        return self.score_one, self.learn_one

    def describe(self) -> dict[str, Any]:
        """Parameters as plain data (``kind`` plus parameters), for YAML and export."""
        raise NotImplementedError

    def vectorized(self, features: tuple[str, ...]) -> ModelBank | None:
        """A bank of fresh models that score micro-batches as this detector's per-event loop would.

        ``None`` (the default) when the detector has no vectorized twin: the detect step then calls
        ``score_one``/``learn_one`` event by event. ``features`` gives the column order of the rows.
        """
        return None

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({params})"


def _check_int(value: object, where: str, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(
            where,
            what,
            f"{what} must be an integer >= {minimum}, got {value!r}",
            f"pass e.g. {what}={max(minimum, 10)}",
        )
    if maximum is not None and value > maximum:
        raise ParameterError(
            where,
            what,
            f"{what}={value:,} is more than the {maximum:,} a model can hold in memory",
            f"pass {what} of at most {maximum:,}",
        )
    return value


#: The most nodes (``n_trees * 2**(height + 1)``) a Half-Space Trees model may have: each key's model
#: holds two counts per node, so a larger forest (height=40, or 10**9 trees) would exhaust memory on the
#: first event, long after the pipeline was built. river's defaults (25 trees of height 15) are within.
MAX_HST_NODES = 2**22


def _check_seed(value: object, where: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(
            f"{where}: seed must be an int or None, got {value!r}; pass seed=42 for reproducibility"
        )
    return value


class _PipelineDetector(Detector):
    """A detector backed by a river pipeline built from the detector's parameters."""

    _params: dict[str, Any]
    _model: Any

    def _build_model(self) -> Any:
        raise NotImplementedError

    def learn_one(self, x: dict[str, float]) -> None:
        self._model.learn_one(x)

    def score_one(self, x: dict[str, float]) -> float:
        return float(self._model.score_one(x))

    def clone(self) -> Detector:
        return type(self)(**self._params)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, **self._params}

    def bound_methods(self) -> tuple[Callable[[dict[str, float]], float], Callable[[dict[str, float]], None]]:
        if type(self).score_one is _PipelineDetector.score_one:
            return self._model.score_one, self._model.learn_one
        return self.score_one, self._model.learn_one


class HalfSpaceTreesDetector(_PipelineDetector):
    """Half-Space Trees (river ``anomaly.HalfSpaceTrees``) behind a ``MinMaxScaler``.

    The trees assume features in [0, 1]; the built-in online min-max scaling lets raw features
    (amounts, counts) be passed directly. Scores are in [0, 1]; the first ``window_size`` events
    score 0 (the reference window is still filling). In a detect step the model runs vectorized (a
    window of events scored at once, see :meth:`vectorized`), with scores bit-identical to river's.

    Parameters
    ----------
    n_trees
        Number of trees.
    height
        Height of each tree.
    window_size
        Events per reference window.
    seed
        Random seed; the same seed gives the same scores.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = HalfSpaceTreesDetector(window_size=50, seed=42)
    >>> for _ in range(200):
    ...     det.learn_one({"amount": rng.uniform(10, 20), "items": rng.uniform(1, 3)})
    >>> det.score_one({"amount": 200.0, "items": 30.0}) > det.score_one({"amount": 15.0, "items": 2.0})
    True
    """

    name = "half_space_trees"

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int | None = None):
        where = "HalfSpaceTreesDetector"
        self._params = {
            "n_trees": _check_int(n_trees, where, "n_trees"),
            "height": _check_int(height, where, "height"),
            "window_size": _check_int(window_size, where, "window_size"),
            "seed": _check_seed(seed, where),
        }
        tall = self._params["height"] + 1 > MAX_HST_NODES.bit_length() - 1
        if tall or self._params["n_trees"] * 2 ** (self._params["height"] + 1) > MAX_HST_NODES:
            raise ParameterError(
                where,
                "height" if tall else "n_trees",
                f"n_trees={n_trees} trees of height={height} have n_trees * 2**(height + 1) nodes, more "
                f"than the {MAX_HST_NODES:,} a model can hold in memory (each level doubles a tree)",
                "lower height (8 to 15 is usual) or n_trees",
            )
        self._model = self._build_model()

    def _build_model(self) -> Any:
        return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(**self._params)

    def vectorized(self, features: tuple[str, ...]) -> ModelBank:
        """river's trees from ``seed``, scored a window at a time; bit-identical scores.

        With ``seed=None`` a seed is drawn once, so the per-key models of one detect step share
        their (random) trees, where river's unseeded clones would each draw their own.
        """
        p = self._params
        seed = p["seed"] if p["seed"] is not None else random.randrange(2**32)
        return HalfSpaceTreesBank(features, p["n_trees"], p["height"], p["window_size"], seed)


class OneClassSVMDetector(_PipelineDetector):
    """Online one-class SVM (river ``anomaly.OneClassSVM``) behind a ``StandardScaler``.

    An RBF random-feature map (``feature_extraction.RBFSampler``) sits between scaler and SVM, since
    a linear one-class SVM on centred data cannot separate a cloud from its outliers. river's
    ``score_one`` is a decision value (higher = more normal); this wrapper returns its negation so
    that higher = more anomalous, like every other detector.

    Parameters
    ----------
    nu
        Expected fraction of anomalies, in (0, 1).
    n_components
        Number of random Fourier features.
    gamma
        RBF kernel width parameter.
    seed
        Seed of the random features.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> det = OneClassSVMDetector(seed=7)
    >>> for _ in range(500):
    ...     det.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)})
    >>> det.score_one({"a": 8.0, "b": -8.0}) > det.score_one({"a": 0.0, "b": 0.0})
    True
    """

    name = "one_class_svm"

    def __init__(self, nu: float = 0.1, n_components: int = 50, gamma: float = 1.0, seed: int | None = None):
        where = "OneClassSVMDetector"
        if not isinstance(nu, (int, float)) or isinstance(nu, bool) or not 0 < nu < 1:
            raise ValueError(
                f"{where}: nu must be a fraction in (0, 1) (the expected share of anomalies), got {nu!r}"
            )
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not 0 < gamma < float("inf"):
            raise ValueError(f"{where}: gamma must be a positive number, got {gamma!r}")
        self._params = {
            "nu": float(nu),
            "n_components": _check_int(n_components, where, "n_components", maximum=100_000),
            "gamma": float(gamma),
            "seed": _check_seed(seed, where),
        }
        self._model = self._build_model()

    def _build_model(self) -> Any:
        p = self._params
        return (
            preprocessing.StandardScaler()
            | feature_extraction.RBFSampler(gamma=p["gamma"], n_components=p["n_components"], seed=p["seed"])
            | anomaly.OneClassSVM(nu=p["nu"])
        )

    def score_one(self, x: dict[str, float]) -> float:
        return -float(self._model.score_one(x))


class LocalOutlierFactorDetector(_PipelineDetector):
    """Local Outlier Factor over a sliding window (river ``anomaly.LocalOutlierFactor``).

    Exact neighbour search over the last ``window_size`` learned events: scoring costs
    O(window_size * n_neighbors), so keep the window small on hot paths. A score near 1 is normal;
    well above 1 is an outlier; 0 while the window is too small to judge.

    Parameters
    ----------
    n_neighbors
        Neighbourhood size.
    window_size
        Number of recent events kept.

    Examples
    --------
    >>> det = LocalOutlierFactorDetector(n_neighbors=3, window_size=50)
    >>> for v in [0.5, 0.45, 0.43, 0.44, 0.445, 0.45]:
    ...     det.learn_one({"x": v})
    >>> round(det.score_one({"x": 0.0}), 1) > 5
    True
    """

    name = "local_outlier_factor"

    def __init__(self, n_neighbors: int = 10, window_size: int = 1000):
        where = "LocalOutlierFactorDetector"
        self._params = {
            "n_neighbors": _check_int(n_neighbors, where, "n_neighbors"),
            "window_size": _check_int(window_size, where, "window_size", minimum=2),
        }
        if self._params["window_size"] <= self._params["n_neighbors"]:
            raise ValueError(
                f"{where}: window_size ({window_size}) must exceed n_neighbors ({n_neighbors}), "
                "or no event ever has a full neighbourhood"
            )
        self._model = self._build_model()

    def _build_model(self) -> Any:
        return local_outlier_factor(self._params["n_neighbors"], self._params["window_size"])


def _check_feature(feature: object, where: str) -> str | None:
    if feature is not None and (not isinstance(feature, str) or not feature):
        raise ValueError(f"{where}: feature must be a column name or None, got {feature!r}")
    return feature


class _UnivariateDetector(Detector):
    """Adapts river's supervised univariate detectors (``learn_one(x, y)``) to one-dict events."""

    _params: dict[str, Any]
    _model: Any

    def _value(self, x: dict[str, float]) -> float:
        feature = self._params["feature"]
        if feature is not None:
            return float(x[feature])
        if len(x) != 1:
            raise ValueError(
                f"{type(self).__name__}: scores a single metric but got features {sorted(x)!r}; "
                f"pass feature='<column>' to choose one, or give the step a single feature"
            )
        return float(next(iter(x.values())))

    def check_features(self, features: tuple[str, ...]) -> None:
        feature = self._params["feature"]
        if feature is None and len(features) != 1:
            raise ValueError(
                f"{type(self).__name__} scores a single metric but the step has features {list(features)!r}; "
                f"pass feature='<column>' to the detector, or give the step a single feature"
            )
        if feature is not None and feature not in features:
            raise ValueError(
                f"{type(self).__name__}(feature={feature!r}): {feature!r} is not among the step's features "
                f"{list(features)!r}; add it to features"
            )

    def learn_one(self, x: dict[str, float]) -> None:
        self._model.learn_one(None, self._value(x))

    def score_one(self, x: dict[str, float]) -> float:
        return float(self._model.score_one(None, self._value(x)))

    def clone(self) -> Detector:
        return type(self)(**self._params)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, **self._params}

    def _column(self, features: tuple[str, ...]) -> int:
        feature = self._params["feature"]
        return 0 if feature is None else features.index(feature)


class GaussianScorerDetector(_UnivariateDetector):
    """Univariate Gaussian scorer (river ``anomaly.GaussianScorer``): ``2·|CDF(v) − 0.5|`` in [0, 1].

    Parameters
    ----------
    feature
        The metric to score; may be omitted when events carry a single feature.
    window_size
        Fit the Gaussian over the last ``window_size`` values only (``None``: all values).
    grace_period
        Events that score 0 while the fit stabilises.

    Examples
    --------
    >>> det = GaussianScorerDetector(grace_period=3)
    >>> for v in [10.0, 11.0, 9.0, 10.5, 9.5]:
    ...     det.learn_one({"latency": v})
    >>> det.score_one({"latency": 30.0}) > 0.99
    True
    """

    name = "gaussian_scorer"

    def __init__(self, feature: str | None = None, window_size: int | None = None, grace_period: int = 100):
        where = "GaussianScorerDetector"
        self._params = {
            "feature": _check_feature(feature, where),
            # one value has no spread: every score was 1.0, every event anomalous
            "window_size": None
            if window_size is None
            else _check_int(window_size, where, "window_size", minimum=2),
            "grace_period": _check_int(grace_period, where, "grace_period", minimum=0),
        }
        self._model = anomaly.GaussianScorer(window_size=window_size, grace_period=grace_period)

    def vectorized(self, features: tuple[str, ...]) -> ModelBank | None:
        """river's running moments for all keys at once (within ``MomentsBank``'s tolerance); ``None`` with a ``window_size``."""
        if self._params["window_size"] is not None:
            return None
        return MomentsBank("gaussian", self._params["grace_period"], self._column(features))


class StandardAbsoluteDeviationDetector(_UnivariateDetector):
    """Standard absolute deviation (river ``anomaly.StandardAbsoluteDeviation``): ``|v − mean| / std``.

    Parameters
    ----------
    feature
        The metric to score; may be omitted when events carry a single feature.
    grace_period
        Score 0 until this many values were learned: with one or two values the deviation is
        meaningless (an untrained model scores about 1e11, which would flag everything).

    Examples
    --------
    >>> det = StandardAbsoluteDeviationDetector(feature="amount", grace_period=3)
    >>> det.score_one({"amount": 500.0, "other": 0.0})
    0.0
    >>> for v in [10.0, 12.0, 11.0, 9.0]:
    ...     det.learn_one({"amount": v, "other": 0.0})
    >>> round(det.score_one({"amount": 10.5, "other": 0.0}), 2)
    0.0
    >>> det.score_one({"amount": 50.0, "other": 0.0}) > 10
    True
    """

    name = "standard_absolute_deviation"

    def __init__(self, feature: str | None = None, grace_period: int = 30):
        where = "StandardAbsoluteDeviationDetector"
        self._params = {
            "feature": _check_feature(feature, where),
            "grace_period": _check_int(grace_period, where, "grace_period", minimum=0),
        }
        self._model = anomaly.StandardAbsoluteDeviation()
        self._seen = 0

    def learn_one(self, x: dict[str, float]) -> None:
        super().learn_one(x)
        self._seen += 1

    def score_one(self, x: dict[str, float]) -> float:
        if self._seen < self._params["grace_period"]:
            return 0.0
        return super().score_one(x)

    def vectorized(self, features: tuple[str, ...]) -> ModelBank:
        """river's running moments for all keys at once (within ``MomentsBank``'s tolerance)."""
        return MomentsBank("sad", self._params["grace_period"], self._column(features))


class RiverDetector(Detector):
    """Any river anomaly detector (or pipeline ending in one) as a streamlab detector.

    Unsupervised detectors are called as ``score_one(x)``/``learn_one(x)``. Supervised ones (river's
    ``SupervisedAnomalyDetector``, e.g. ``GaussianScorer``) are called with ``y = x[target]`` and the
    remaining features as ``x``.

    Parameters
    ----------
    model
        A river estimator with ``learn_one`` and ``score_one`` (its ``clone()`` makes per-key copies).
    target
        For supervised detectors: the feature passed as ``y``.
    name
        Value of the ``detector`` column; defaults to the model's class name.

    Examples
    --------
    >>> from river import anomaly
    >>> det = RiverDetector(anomaly.HalfSpaceTrees(seed=3))
    >>> det.name
    'HalfSpaceTrees'
    >>> for i in range(50):
    ...     det.learn_one({"a": i % 5, "b": i % 7})
    >>> isinstance(det.score_one({"a": 1.0, "b": 2.0}), float)
    True
    """

    def __init__(self, model: Any, target: str | None = None, name: str | None = None):
        if isinstance(model, Detector):
            raise TypeError("RiverDetector: got a streamlab Detector; pass it to Detect(...) directly")
        for method in ("learn_one", "score_one", "clone"):
            if not callable(getattr(model, method, None)):
                raise TypeError(
                    f"RiverDetector: {type(model).__name__} has no {method}() method; pass a river anomaly "
                    "detector such as river.anomaly.HalfSpaceTrees(), or a pipeline ending in one"
                )
        self._supervised = isinstance(model, SupervisedAnomalyDetector)
        if target is not None and not self._supervised:
            raise ValueError(
                f"RiverDetector: target={target!r} is only for supervised detectors; "
                f"{type(model).__name__} is unsupervised, so drop target"
            )
        self._model = model
        self._target = target
        self.name = name if name is not None else type(model).__name__

    def _split(self, x: dict[str, float]) -> tuple[dict[str, float] | None, float]:
        if self._target is not None:
            return {k: v for k, v in x.items() if k != self._target}, float(x[self._target])
        if len(x) != 1:
            raise ValueError(
                f"RiverDetector({self.name}): a supervised detector needs target='<feature>' "
                f"when events carry several features ({sorted(x)!r})"
            )
        return None, float(next(iter(x.values())))

    def check_features(self, features: tuple[str, ...]) -> None:
        if not self._supervised:
            return
        if self._target is None and len(features) != 1:
            raise ValueError(
                f"RiverDetector({self.name}) is supervised: pass target='<feature>' (its y) when the step "
                f"has several features ({list(features)!r})"
            )
        if self._target is not None and self._target not in features:
            raise ValueError(
                f"RiverDetector({self.name}): target {self._target!r} is not among the step's features "
                f"{list(features)!r}; add it to features"
            )

    def learn_one(self, x: dict[str, float]) -> None:
        if self._supervised:
            features, y = self._split(x)
            self._model.learn_one(features, y)
        else:
            self._model.learn_one(x)

    def score_one(self, x: dict[str, float]) -> float:
        if self._supervised:
            features, y = self._split(x)
            score = self._model.score_one(features, y)
        else:
            score = self._model.score_one(x)
        return float(score)

    def clone(self) -> Detector:
        return RiverDetector(self._model.clone(), target=self._target, name=self.name)

    def describe(self) -> dict[str, Any]:
        return {"kind": "river", "model": repr(self._model), "target": self._target, "name": self.name}

    def __repr__(self) -> str:
        return f"RiverDetector({self._model!r})"


def as_detector(value: Any, *, where: str) -> Detector:
    """Accept a streamlab detector or wrap a river one; raise a TypeError for anything else."""
    if isinstance(value, Detector):
        return value
    if isinstance(value, type):  # the class, not a detector: it would fail on the first event
        raise TypeError(
            f"{where}: detector must be an instance, got the class {value.__name__}; pass {value.__name__}()"
        )
    if callable(getattr(value, "score_one", None)) and callable(getattr(value, "learn_one", None)):
        return RiverDetector(value)
    raise TypeError(
        f"{where}: detector must be a streamlab Detector (e.g. HalfSpaceTreesDetector(seed=42)) or a river "
        f"anomaly detector, got {type(value).__name__}"
    )
