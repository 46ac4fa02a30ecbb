"""The fraud and IoT pipelines of notebooks 08 and 09 and samples of the bundled datasets, shared by the
detector export tests of every engine (no engine imported here)."""

from __future__ import annotations

from streamlab.datasets import load

from streamlab import Pipeline
from streamlab.detectors import DriftDetector, FixedThresholdFilter, GaussianScorerDetector
from streamlab.examples import TRANSACTIONS_SCHEMA
from streamlab.examples import fraud_pipeline as notebook_fraud_pipeline
from streamlab.export.verify import sample_lines
from streamlab.testing import ListSink, ListSource

TX_SCHEMA = TRANSACTIONS_SCHEMA
IOT_SCHEMA = {
    "device_id": "string",
    "temperature": "float64",
    "humidity": "float64",
    "vibration": "float64",
    "timestamp": "timestamp",
}
BAD = [b"not json", b'{"event_id": "x1", "amount": 3.0, "timestamp": "2024-03-01T01:00:00Z"}']


def fraud_pipeline() -> Pipeline:
    """Notebook 08's pipeline, reading raw records, with every feature kind; a Half-Space Trees window
    and quantile warm-up of 50 suit the samples' few hundred records."""
    return notebook_fraud_pipeline([b"{}"], every_feature=True, window_size=50, warmup=50)


def iot_pipeline(devices: list[str]) -> Pipeline:
    """Notebook 09's pipeline: a Gaussian scorer per device and metric, then ADWIN on one device's balance."""
    p = Pipeline(ListSource([b"{}"]), name="iot")
    s = p.parse(IOT_SCHEMA)
    for m in ("temperature", "humidity", "vibration"):
        s = s.detect(
            GaussianScorerDetector(grace_period=20),
            features=[m],
            key="device_id",
            threshold=FixedThresholdFilter(0.99999),
            step_id=f"score_{m}",
        ).with_columns(**{f"score_{m}": "score", f"flag_{m}": "is_anomaly"}, step_id=f"keep_{m}")
    scored = s.with_columns(
        flagged="flag_temperature | flag_humidity | flag_vibration",
        balance="temperature + -2.5 * humidity",
        step_id="combine",
    )
    scored.to(ListSink())
    clean = scored.filter("~flagged", step_id="unflagged")
    for dev in devices:
        one = clean.filter(f"device_id == '{dev}'", step_id=f"only_{dev}")
        one.apply(
            DriftDetector(column="balance", method="adwin", params={"clock": 8}), step_id=f"drift_{dev}"
        )
    return p


def fraud_sample() -> list[bytes]:
    """400 transactions around a geo-jump incident, with a record that is not JSON and one without a card."""
    tx = load("transactions")
    start = int(tx.index[tx.fraud_pattern.eq("geo_jump")][0]) - 250  # a geo-jump incident in the sample
    lines = sample_lines(tx.iloc[start : start + 400])
    return lines[:100] + BAD + lines[100:]


def iot_sample(devices: list[str]) -> list[bytes]:
    readings = load("iot")
    return sample_lines(readings[readings.device_id.isin(devices)].head(240))
