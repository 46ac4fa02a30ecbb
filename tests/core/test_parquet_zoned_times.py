"""Time-zone-aware columns reach Parquet through ``streamlab._compat.arrow_table``: the same table as
``pa.Table.from_pandas``, without pandas 3.1's ``Pandas4Warning`` from pyarrow's ``Series.values`` (an
error where warnings are errors, as in a user's test suite: the flush failed on every retry)."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from streamlab import ParquetSink, Pipeline, TumblingWindow, agg
from streamlab._compat import arrow_table
from streamlab.testing import ListSource

ZONES = ["UTC", "Asia/Kolkata", dt.timezone(dt.timedelta(hours=-3, minutes=-30))]


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_the_table_is_arrows_own(zone: object) -> None:
    t = pd.Series(pd.to_datetime([0, None, 1_700_000_000_123], unit="ms", utc=True)).dt.tz_convert(zone)
    frame = pd.DataFrame({"t": t, 7: [1, 2, 3], "s": ["a", None, "c"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pa.Table.from_pandas(frame, preserve_index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = arrow_table(frame)
    assert got.schema.types == expected.schema.types
    assert got.schema.names == expected.schema.names
    assert got.equals(expected.replace_schema_metadata(got.schema.metadata))
    pd.testing.assert_frame_equal(got.to_pandas(), expected.to_pandas())


@pytest.mark.filterwarnings("error")
def test_a_pipeline_writes_window_times_to_parquet_with_warnings_as_errors(tmp_path: Path) -> None:
    events = [
        {"event_type": "click", "amount": 1.5, "timestamp": "2024-01-01T00:00:05Z"},
        {"event_type": "buy", "amount": 3.0, "timestamp": "2024-01-01T00:01:05Z"},
    ]
    p = Pipeline(ListSource([json.dumps(e) for e in events]))
    p.parse({"event_type": "string", "amount": "float64", "timestamp": "timestamp"}).window(
        TumblingWindow("1m"), key="event_type"
    ).agg(agg.count(), agg.sum("amount")).to(ParquetSink(str(tmp_path / "out")))
    p.run()
    out = pd.read_parquet(tmp_path / "out").sort_values("window_start", ignore_index=True)
    assert out["window_start"].dt.tz is not None
    assert out["window_start"].tolist() == [
        pd.Timestamp("2024-01-01T00:00:00Z"),
        pd.Timestamp("2024-01-01T00:01:00Z"),
    ]
    assert out["count"].tolist() == [1, 1]
