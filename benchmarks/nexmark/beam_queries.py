"""Apache Beam's own Python Nexmark queries (``apache_beam.testing.benchmarks.nexmark``) on a frame of
Nexmark events, on the DirectRunner, and the normal form both engines' outputs are compared in.

Beam's package has no generator (its launcher reads events that Beam's Java generator wrote); the
events here come from :func:`streamlab.datasets.generate_nexmark`, turned into Beam's model objects
(``Person``, ``Auction``, ``Bid``) stamped with their ``date_time``, as Beam's launcher stamps them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .queries import NexmarkParams

BEAM_QUERIES = ("q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q11", "q12")
_COLLECTED: dict[str, list[Any]] = {}
_LOCK = threading.Lock()


def to_beam_events(events: pd.DataFrame, *, numeric_bid_times: bool = False) -> list[Any]:
    """Beam's model objects for the events, in arrival order (times in milliseconds, as Beam's JSON).

    ``numeric_bid_times`` gives bids their ``date_time`` as epoch milliseconds (an int) instead of a
    Beam ``Timestamp``: Beam's Python q6 negates bid times (``-bid.date_time``), which a ``Timestamp``
    does not support, so q6 as shipped fails on Beam's own model objects.
    """
    from apache_beam.testing.benchmarks.nexmark.models import nexmark_model as m
    from apache_beam.utils.timestamp import Timestamp

    def ts(ns: int) -> Timestamp:
        return Timestamp(micros=(ns // 1_000_000) * 1000)

    out: list[Any] = []
    cols = {c: events[c].tolist() for c in events.columns if c not in ("date_time", "expires")}
    times = events["date_time"].array.asi8.tolist()
    expires = events["expires"].array.asi8.tolist()
    for i, kind in enumerate(cols["event_type"]):
        t = ts(times[i])
        if kind == 0:
            out.append(
                m.Person(
                    cols["person_id"][i],
                    cols["name"][i],
                    cols["email_address"][i],
                    cols["credit_card"][i],
                    cols["city"][i],
                    cols["state"][i],
                    t,
                    cols["extra"][i],
                )
            )
        elif kind == 1:
            out.append(
                m.Auction(
                    cols["auction_id"][i],
                    cols["item_name"][i],
                    cols["description"][i],
                    cols["initial_bid"][i],
                    cols["reserve"][i],
                    t,
                    ts(expires[i]),
                    cols["seller"][i],
                    cols["category"][i],
                    cols["extra"][i],
                )
            )
        else:
            bt = times[i] // 1_000_000 if numeric_bid_times else t
            out.append(m.Bid(cols["auction"][i], cols["bidder"][i], cols["price"][i], bt, cols["extra"][i]))
    return out


def run_beam(
    names: Sequence[str], events: pd.DataFrame, params: NexmarkParams | None = None
) -> dict[str, list[Any]]:
    """Run Beam's Python queries ``names`` on the events with Beam's direct runners; their outputs by name.

    The queries share one pipeline per runner (a Beam pipeline's fixed cost is seconds). The portable
    DirectRunner cannot run ``WinningBids`` (q4, q6): encoding its merged windows raises a TypeError in
    ``AuctionOrBidWindowCoder`` ("Cannot convert _OpaqueWindow"); those run on the bundle-based
    DirectRunner, with bid times as numbers for q6 (see :func:`to_beam_events`). q12's processing-time
    trigger fails on both in batch mode (the trigger has no clock: ``'NoneType' object has no attribute
    'time'``); it runs on the bundle-based one in streaming mode.
    """
    params = params or NexmarkParams()
    winning = [n for n in names if n in ("q4", "q6")]
    streaming = [n for n in names if n == "q12"]
    rest = [n for n in names if n not in winning and n not in streaming]
    out: dict[str, list[Any]] = {}
    if rest:
        out.update(_run_pipeline(rest, to_beam_events(events), params, "DirectRunner"))
    if winning:
        objs = to_beam_events(events, numeric_bid_times=True)
        out.update(_run_pipeline(winning, objs, params, "BundleBasedDirectRunner"))
    if streaming:
        objs = to_beam_events(events)
        out.update(_run_pipeline(streaming, objs, params, "BundleBasedDirectRunner", streaming=True))
    return out


def _run_pipeline(
    names: list[str], beam_events: list[Any], params: NexmarkParams, runner: str, *, streaming: bool = False
) -> dict[str, list[Any]]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms import window

    class Query(beam.PTransform):  # type: ignore[misc]  # scopes each query's labels under its name
        def __init__(self, load: Any) -> None:
            super().__init__()
            self.load = load

        def expand(self, pcoll: Any) -> Any:
            return self.load(pcoll, metadata, None)

    metadata = dict(params.__dict__)
    tags = {name: f"{name}-{id(beam_events)}" for name in names}
    with _LOCK:
        _COLLECTED.update({t: [] for t in tags.values()})
    # q11's early trigger (AfterCount) is refused as "unsafe" by Beam unless allowed
    flags = ["--allow_unsafe_triggers", *(["--streaming"] if streaming else [])]
    options = PipelineOptions(flags=flags, runner=runner)
    with beam.Pipeline(options=options) as p:
        events = (
            p
            | beam.Create(beam_events, reshuffle=False)
            | beam.Map(lambda e: window.TimestampedValue(e, _event_time(e)))
        )
        for name, tag in tags.items():
            query = importlib.import_module(f"apache_beam.testing.benchmarks.nexmark.queries.query{name[1:]}")
            _ = events | name >> Query(query.load) | f"collect_{name}" >> beam.Map(_collect, tag)
    with _LOCK:
        return {name: _COLLECTED.pop(tag) for name, tag in tags.items()}


def _event_time(e: Any) -> Any:
    from apache_beam.utils.timestamp import Timestamp

    t = e.date_time
    return Timestamp(micros=t * 1000) if isinstance(t, int) else t


def _collect(x: Any, tag: str) -> None:
    # a module-level function: pickled by reference, so the in-process runner appends to this module's dict
    with _LOCK:
        _COLLECTED[tag].append(x)


def _ms(t: Any) -> int:
    return t if isinstance(t, int) else int(t.micros // 1000)


def normalize_beam(name: str, out: list[Any]) -> list[tuple[Any, ...]]:
    """Beam's outputs as sorted tuples, in the fields the streamlab query's output is compared on."""
    if name == "q0":
        rows = [_event_key(e) for e in out]
    elif name in ("q1", "q7"):
        rows = [(b.auction, b.bidder, round(float(b.price), 6), _ms(b.date_time)) for b in out]
    elif name == "q2":
        rows = [(r["auction_id"], r["price"]) for r in out]
    elif name == "q3":
        rows = [(r["name"], r["city"], r["state"], r["auction_id"]) for r in out]
    elif name == "q4":
        rows = [(r["category"], round(float(r["price"]), 6)) for r in out]
    elif name == "q5":
        rows = [(r["auction_id"], r["num"]) for r in out]
    elif name == "q6":
        rows = [(r["seller"], r["price"]) for r in out]
    elif name == "q8":
        rows = [(r["id"], r["name"], r["reserve"]) for r in out]
    elif name == "q11":
        rows = [(r["bidder_id"], r["bid_count"]) for r in out]
    elif name == "q12":  # panes end where Beam's processing-time trigger fired: compare each bidder's sum
        totals: dict[Any, int] = {}
        for r in out:
            totals[r["bidder_id"]] = totals.get(r["bidder_id"], 0) + r["bid_count"]
        rows = list(totals.items())
    else:
        raise ValueError(f"no normal form for {name}")
    return sorted(rows)


def _event_key(e: Any) -> tuple[Any, ...]:
    if hasattr(e, "bidder"):
        return (2, e.auction, e.bidder, e.price, _ms(e.date_time), e.extra)
    if hasattr(e, "seller"):
        return (1, e.id, e.seller, e.reserve, _ms(e.date_time), e.extra)
    return (0, e.id, e.name, e.email_address, _ms(e.date_time), e.extra)


def normalize_streamlab(name: str, out: pd.DataFrame) -> list[tuple[Any, ...]]:
    """streamlab's output frame of query ``name`` in the normal form of :func:`normalize_beam`."""

    if out.empty:
        return []

    def ms(col: str) -> list[int]:
        return (out[col].array.asi8 // 1_000_000).tolist()

    if name == "q0":
        rows = []
        for r, t in zip(out.to_dict("records"), ms("date_time")):
            k = r["event_type"]
            if k == 2:
                rows.append((2, r["auction"], r["bidder"], r["price"], t, r["extra"]))
            elif k == 1:
                rows.append((1, r["auction_id"], r["seller"], r["reserve"], t, r["extra"]))
            else:
                rows.append((0, r["person_id"], r["name"], r["email_address"], t, r["extra"]))
        return sorted(rows)
    if name == "q12":  # each bidder's bids over its processing-time windows, as normalize_beam sums them
        totals = out.groupby("bidder")["bid_count"].sum()
        return sorted(zip(totals.index.tolist(), totals.tolist()))
    if name in ("q1", "q7"):
        prices = [round(float(p), 6) for p in out["price"].tolist()]
        return sorted(zip(out["auction"].tolist(), out["bidder"].tolist(), prices, ms("date_time")))
    cols = {
        "q2": ["auction", "price"],
        "q3": ["name", "city", "state", "auction_id"],
        "q4": ["category", "price"],
        "q5": ["auction", "num"],
        "q6": ["seller", "price"],
        "q8": ["id", "name", "reserve"],
        "q11": ["bidder", "bid_count"],
    }[name]
    if name == "q6":
        # Beam's q6 on a bounded input fires one (accumulating) pane per seller, holding all its winning
        # bids; streamlab emits the running value on each winning bid: compare each seller's last
        out = out.drop_duplicates("seller", keep="last")
    data = [out[c].tolist() for c in cols]
    if name == "q4":
        data[1] = [round(float(v), 6) for v in data[1]]
    return sorted(zip(*data))


def q3_reference(events: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The specification's q3 in pandas, in q3's normal form: every auction of category 10 with its
    seller when the seller is in OR, ID or CA (an unbounded inner join)."""
    a = events[(events.event_type == 1) & (events.category == 10)]
    p = events[(events.event_type == 0) & events.state.isin(["OR", "ID", "CA"])]
    j = a.merge(p, left_on="seller", right_on="person_id", suffixes=("", "_p"))
    return sorted(zip(j.name_p, j.city_p, j.state_p, j.auction_id))
