"""The notebooks' example pipelines, each built by one function that notebooks, tests and benchmarks share.

>>> from streamlab.examples import fraud_pipeline
>>> fraud_pipeline().name
'fraud'
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from streamlab.detectors import (
    DistinctCountFeature,
    HalfSpaceTreesDetector,
    PatternStep,
    QuantileThresholdFilter,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.pipeline import Pipeline, Stream
from streamlab.sources import ReplaySource
from streamlab.testing import ListSource

__all__ = ["FRAUD_FEATURES", "FRAUD_RULES", "TRANSACTIONS_SCHEMA", "fraud_pipeline"]

#: the fields of the bundled ``transactions`` dataset's raw JSON records, as ``Stream.parse`` reads them
TRANSACTIONS_SCHEMA = {
    "event_id": "string",
    "card_id": "string",
    "merchant_category": "string",
    "country": "string",
    "amount": "float64",
    "timestamp": "timestamp",
    "is_fraud": "bool",
}
#: the columns the fraud pipeline's Half-Space Trees score
FRAUD_FEATURES = ["amount_vs_usual", "count_10m", "distinct_country_1h"]
#: the fraud pipeline's threshold rules (``ThresholdRule`` expressions by rule name)
FRAUD_RULES = {
    "amount_spike": "amount_vs_usual > 10 and amount >= 500",
    "second_country": "distinct_country_1h > 1",
}


def fraud_pipeline(
    data: pd.DataFrame | str | Sequence[bytes] | None = None,
    *,
    batch_size: int | None = None,
    every_feature: bool = False,
    window_size: int = 250,
    warmup: int = 100,
) -> Pipeline:
    """Notebook 08's fraud pipeline: per-card features, three rules, Half-Space Trees and a pattern.

    Per card, on event time: the count and sum of amounts over 10 minutes, the amount's ratio to the
    card's median, the distinct countries over an hour; rules flag bursts, amount spikes and a second
    country (``is_alert``, ``rule``); Half-Space Trees (``seed=7``) score ``FRAUD_FEATURES``, learning
    from unflagged transactions only, flagged above their running 0.99 quantile (step ``detect``); a
    two-country pattern within an hour runs on the side (step ``pattern``).

    Parameters
    ----------
    data
        Transactions as a frame or a file (replayed, ``batch_size`` rows a batch), or raw JSON records
        (bytes), parsed first with ``TRANSACTIONS_SCHEMA`` as a production job reads them. None: the
        bundled ``transactions`` dataset is not loaded, the pipeline reads one placeholder record (for
        exporting, or for ``verify``, which brings its own records).
    batch_size
        Rows a batch when ``data`` is a frame or a file.
    every_feature
        Also the card's z-score of the amount and the seconds since its last transaction (every
        feature kind, as the exports' tests want them).
    window_size
        The Half-Space Trees' window (events a reference window holds).
    warmup
        Scores the quantile threshold sees before it flags any.

    Returns
    -------
    Pipeline
        The pipeline, named ``fraud``, with outputs ``detect`` and ``pattern`` among others.

    Examples
    --------
    >>> from streamlab import ManualClock
    >>> from streamlab.datasets import load
    >>> result = fraud_pipeline(load("transactions").head(1_000)).run(clock=ManualClock(0))
    >>> len(result["detect"]), "is_anomaly" in result["detect"]
    (1000, True)
    >>> list(fraud_pipeline([b"{}"]).steps)[:3]
    ['source', 'parse', 'velocity_feature']
    """
    events: Stream
    if data is None or (isinstance(data, Sequence) and not isinstance(data, str)):
        p = Pipeline(ListSource(list(data) if data is not None else [b"{}"]), name="fraud")
        events = p.parse(TRANSACTIONS_SCHEMA)
    else:
        p = Pipeline(ReplaySource(data, batch_size=batch_size), name="fraud")
        events = p.stream
    features = (
        events.apply(VelocityFeature("card_id", window="10m", value="amount"))
        .apply(RatioToMedianFeature("card_id", "amount"))
        .apply(DistinctCountFeature("card_id", "country", window="1h"))
    )
    if every_feature:
        features = features.apply(TimeSinceLastFeature("card_id")).apply(ZScoreFeature("card_id", "amount"))
    # a card's first transaction has no usual amount yet: treat it as usual
    features = features.with_columns(amount_vs_usual="ratio_to_median_amount.fillna(1.0)")
    ruled = (
        features.apply(VelocityRule("card_id", window="10m", max_count=6, name="burst"))
        .apply(ThresholdRule("amount_spike", expr=FRAUD_RULES["amount_spike"]))
        .apply(ThresholdRule("second_country", expr=FRAUD_RULES["second_country"]))
    )
    ruled.detect(
        HalfSpaceTreesDetector(seed=7, window_size=window_size),
        features=FRAUD_FEATURES,
        threshold=QuantileThresholdFilter(0.99, warmup=warmup),
        learn="unflagged",
        step_id="detect",
    )
    events.pattern(
        "card_id",
        [
            PatternStep("home", "amount > 0"),
            PatternStep("abroad", "amount > 0", differs_from={"country": "home"}),
        ],
        within="1h",
        delay="2s",
        name="two_countries",
        step_id="pattern",
    )
    return p
