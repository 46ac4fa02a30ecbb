"""What the live views send to the browser: strict JSON whatever the data holds, and a bounded size."""

from __future__ import annotations

import itertools
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
from streamlab.widgets import AnomalyChart, LiveTable, WindowChart

BASE = pd.Timestamp("2024-03-01T09:00:00Z")


def sent_messages(view: Any) -> list[dict[str, Any]]:
    """Record what the view's model sends to the browser (a list filled as messages go out)."""
    sent: list[dict[str, Any]] = []
    view._send = lambda msg, buffers=None: sent.append(msg)
    return sent


def strict_json(view: Any, sent: list[dict[str, Any]]) -> None:
    """The view's whole state (what a new view gets) and each message it sent are strict JSON, and the
    kernel packs them without its "Message serialization failed" warning (printed into the notebook)."""
    from ipywidgets.widgets.widget import _remove_buffers
    from jupyter_client.session import Session

    state, _paths, _buffers = _remove_buffers(view.get_state())
    json.dumps(state, allow_nan=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for msg in sent:
            json.dumps(msg, allow_nan=False)
            Session().pack(msg)


def with_gaps() -> pd.DataFrame:
    """Three rows, the middle one missing in every column; the last holds infinities where a dtype can."""
    times = pd.to_datetime(["2024-01-01 00:00:01", None, "2024-01-01 00:00:03"])
    return pd.DataFrame(
        {
            "object": pd.Series(["a", None, "c"], dtype=object),
            "object_nan": pd.Series(["a", np.nan, float("inf")], dtype=object),
            "object_na": pd.Series(["a", pd.NA, pd.NaT], dtype=object),
            "str": pd.Series(["a", None, "c"], dtype="str"),
            "string": pd.Series(["a", None, "c"], dtype="string"),
            "Int64": pd.Series([1, None, 3], dtype="Int64"),
            "boolean": pd.Series([True, None, False], dtype="boolean"),
            "category": pd.Series(["a", None, "c"], dtype="category"),
            "float": [0.5, np.nan, np.inf],
            "neg_inf": [0.5, np.nan, -np.inf],
            "Float64": pd.Series([0.5, None, 2.0], dtype="Float64"),
            "naive": times,
            "utc": times.tz_localize("UTC"),
            "timedelta": pd.to_timedelta(["1s", None, "3s"]),
        }
    )


def test_missing_values_and_infinities_travel_as_strict_json_and_show_empty_cells() -> None:
    # A parsed record without a field (show(handle, "parse")) made a table cell float NaN: jupyter_client
    # warned "Out of range float values are not JSON compliant" into the notebook and the cell read "nan".
    frame = with_gaps()
    table = LiveTable(frame.iloc[:1], rows=5, auto_refresh=False)
    view = table.widget
    sent = sent_messages(view)
    table._buffer.append(frame.iloc[1:])
    assert table.refresh(force=True) is True
    assert sent
    strict_json(view, sent)
    cells = dict(zip(view.figure["data"][0]["header"]["values"], view.figure["data"][0]["cells"]["values"]))
    assert set(cells) == set(frame.columns)
    for name, texts in cells.items():
        assert len(texts) == 3 and texts[1] == "", name  # missing: an empty cell
        assert all(isinstance(t, str) and t not in ("nan", "NaN", "<NA>", "NaT", "None") for t in texts), name
    assert cells["float"][2] == "inf" and cells["neg_inf"][2] == "-inf"  # infinities are values, not gaps
    table.close()

    # charts: missing and infinite values, times and keys, all in one figure
    windows = pd.DataFrame(
        {
            "window_start": pd.to_datetime([BASE, BASE, pd.NaT, BASE + pd.Timedelta("10s")], utc=True),
            "count": [1.0, np.nan, np.inf, -np.inf],
            "k": pd.Series(["a", None, np.nan, "b"], dtype=object),
        }
    )
    scores = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([BASE, pd.NaT, BASE + pd.Timedelta("1s")], utc=True),
            "score": [np.nan, np.inf, -np.inf],
            "is_anomaly": pd.Series([True, None, False], dtype="boolean"),
        }
    )
    for chart in (
        WindowChart(windows, value="count", key="k", auto_refresh=False),
        AnomalyChart(scores, auto_refresh=False),
        AnomalyChart(scores, threshold=0.5, auto_refresh=False),
    ):
        view = chart.widget
        strict_json(view, [])
        chart.close()


def test_the_view_encodes_every_non_finite_number_outside_arrays_as_a_gap() -> None:
    # Layout values, hover texts and trace properties given as Python lists reach the browser as JSON too.
    from streamlab.widgets._figure import _encode

    payload = {
        "layout": {"yaxis": {"range": [float("nan"), np.float64("inf")]}, "shapes": [{"y0": -np.inf}]},
        "data": [{"y": [1.0, float("nan"), 2], "text": np.array([np.nan, "x"], dtype=object)}],
        "y": np.array([1.0, np.nan, np.inf]),  # a numeric array is binary: its NaN and inf stay as they are
    }
    encoded = _encode(payload)
    assert encoded["layout"] == {"yaxis": {"range": [None, None]}, "shapes": [{"y0": None}]}
    assert encoded["data"] == [{"y": [1.0, None, 2], "text": [None, "x"]}]
    y = np.frombuffer(encoded["y"]["data"], dtype=encoded["y"]["__ndarray__"])
    assert y[0] == 1.0 and np.isnan(y[1]) and y[2] == np.inf
    json.dumps({k: v for k, v in encoded.items() if k != "y"}, allow_nan=False)


def redraw_bytes(figure: dict[str, Any]) -> int:
    """Bytes a redraw sends: its JSON with each binary array counted at its length."""
    return len(json.dumps(figure, default=lambda buffer: "x" * len(bytes(buffer))))


def test_a_window_chart_over_many_keys_sends_a_bounded_figure_with_stable_colours() -> None:
    # Keyed by 10k users, every key that was ever in the top max_keys kept an empty trace, so each redraw
    # sent more (546 traces, ~89 kB per redraw while the legend showed 10) and the kernel named every key.
    rng = np.random.default_rng(0)
    max_keys, max_windows = 10, 8
    chart = WindowChart(
        pd.DataFrame({"k": [], "window_start": pd.to_datetime([], utc=True), "count": []}),
        value="count", key="k", max_keys=max_keys, max_windows=max_windows, auto_refresh=False,
    )  # fmt: skip
    view = chart.widget
    sent: list[tuple[int, int, int]] = []  # per redraw: traces, most points in one, bytes
    colours: list[dict[str, str | None]] = []  # per redraw: each drawn key's line colour
    for w in range(150):
        users = rng.choice(10_000, 300, replace=False)
        keys = [f"user-{u:05d}" for u in users]
        start = BASE + pd.Timedelta(seconds=10 * w)
        chart._buffer.append(
            pd.DataFrame({"k": keys, "window_start": start, "count": rng.integers(1, 50, 300)})
        )
        assert chart.refresh(force=True) is True
        traces = view.figure["data"]
        sent.append((len(traces), max(len(t["x"]["data"]) // 8 for t in traces), redraw_bytes(view.figure)))
        colours.append({t["name"]: t.get("line", {}).get("color") for t in traces})
        assert all(t.get("marker", {}).get("color") == colours[-1][t["name"]] for t in traces)
    assert max(n for n, _, _ in sent) == max_keys  # was 10 at first, then one trace more per key ever drawn
    assert max(points for _, points, _ in sent) <= max_windows
    assert max(size for _, _, size in sent) < 8_000
    live = len(np.unique(chart._k))
    assert len(chart._names) == len(chart._index) <= max(1000, 2 * live)  # names of forgotten keys dropped
    stayed = 0
    for last, now in itertools.pairwise(colours):
        assert None not in now.values() and len(set(now.values())) == max_keys  # drawn keys told apart
        kept = now.keys() & last.keys()
        assert {key: now[key] for key in kept} == {
            key: last[key] for key in kept
        }  # a drawn key keeps its colour
        stayed += len(kept)
    assert stayed > 500  # most keys stay drawn from one redraw to the next: the colour check had work
    colour_of = colours[-1]
    assert set(chart.series()) == set(colour_of)
    chart.close()


def test_a_window_chart_keeps_a_key_named_and_coloured_after_others_are_forgotten() -> None:
    # renumbering the key codes of the state keeps each key's rows, name and colour
    first = pd.DataFrame({"k": ["b", 1, "1"], "window_start": BASE, "count": [100.0, 90.0, 80.0]})
    chart = WindowChart(first, value="count", key="k", max_keys=3, max_windows=1, auto_refresh=False)
    view = chart.widget
    before = {t["name"]: t.get("line") for t in view.figure["data"]}
    assert set(before) == {"b", "1", "'1'"}
    for w in range(1, 5):  # 1600 short-lived keys, each in one window; "b", 1 and "1" in all
        keys = [f"u{w}-{i}" for i in range(400)] + ["b", 1, "1"]
        counts = [1.0] * 400 + [100.0, 90.0, 80.0]
        start = BASE + pd.Timedelta(w, "min")
        frame = pd.DataFrame({"k": pd.Series(keys, dtype=object), "window_start": start, "count": counts})
        chart._buffer.append(frame)
        chart.refresh(force=True)
    assert len(chart._names) < 1000
    after = {t["name"]: t.get("line") for t in view.figure["data"]}
    assert after == before and len({line["color"] for line in after.values()}) == 3
    drawn = {name: s.tolist() for name, s in chart.series().items()}
    assert drawn == {"b": [100.0], "1": [90.0], "'1'": [80.0]}
    chart.close()
