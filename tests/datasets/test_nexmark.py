"""The Nexmark generator: the reference generator's proportions, ids, hot keys, prices and times; seeds
and disorder; the source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.datasets import NexmarkConfig, NexmarkSource, generate_nexmark
from streamlab.datasets._nexmark import COLUMNS

from streamlab import ListSink, ManualClock, Pipeline


def _kinds(ev: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return tuple(ev[ev.event_type == k] for k in (0, 1, 2))  # type: ignore[return-value]


def test_proportions_ids_and_fields() -> None:
    ev = generate_nexmark(50_000, rate=1000, seed=5)
    assert tuple(ev.columns) == COLUMNS
    persons, auctions, bids = _kinds(ev)
    assert (len(persons), len(auctions), len(bids)) == (1_000, 3_000, 46_000)
    # ids are dense from 1000, in creation order
    assert persons.person_id.tolist() == list(range(1000, 2000))
    assert auctions.auction_id.tolist() == list(range(1000, 4000))
    # every event is stamped base_time + i / rate
    t = ev.date_time.array.asi8
    assert t[0] == pd.Timestamp("2015-07-15", tz="UTC").value
    assert (np.diff(t) == 1_000_000).all()
    # fields of other kinds are empty
    assert persons.auction.eq(-1).all() and bids.name.isna().all() and auctions.email_address.isna().all()
    assert persons.state.isin(["AZ", "CA", "ID", "OR", "WA", "WY"]).all()
    assert persons.email_address.str.fullmatch(r"[a-z]{3,6}@[a-z]{3,4}\.com").all()
    assert persons.credit_card.str.fullmatch(r"\d{4} \d{4} \d{4} \d{4}").all()
    assert auctions.category.between(10, 14).all()
    # prices in cents, log-uniform between $1 and $1M; the reserve is above the initial bid
    assert bids.price.between(100, 100_000_000).all()
    assert (np.log10(bids.price) - 2).mean() == pytest.approx(3.0, abs=0.05)
    assert (auctions.reserve > auctions.initial_bid).all()
    cfg = NexmarkConfig(rate=1000)
    length = (auctions.expires - auctions.date_time).dt.total_seconds() * 1000
    assert (length >= 1).all() and (length <= cfg.max_auction_length_ms).all()
    # extra pads each kind to about its average size
    assert bids.extra.str.len().mean() == pytest.approx(100 - 32, rel=0.05)


def test_hot_keys_and_references() -> None:
    ev = generate_nexmark(100_000, seed=2)
    _, auctions, bids = _kinds(ev)
    last_person = np.maximum.accumulate(ev.person_id.to_numpy())
    last_auction = np.maximum.accumulate(ev.auction_id.to_numpy())
    b = bids.index.to_numpy()
    # bids go to existing auctions or up to ten ahead, bidders likewise among people
    assert (bids.auction.to_numpy() <= last_auction[b] + 10).all()
    assert (bids.bidder.to_numpy() <= last_person[b] + 10).all()
    # hot auctions: (1 - 1/2) of the bids go to the block's hot auction (plus random hits)
    hot_auction = (last_auction[b] - 1000) // 100 * 100 + 1000
    assert (bids.auction.to_numpy() == hot_auction).mean() == pytest.approx(0.5, abs=0.03)
    hot_bidder = (last_person[b] - 1000) // 100 * 100 + 1001
    assert (bids.bidder.to_numpy() == hot_bidder).mean() == pytest.approx(0.75, abs=0.03)
    a = auctions.index.to_numpy()
    hot_seller = (last_person[a] - 1000) // 100 * 100 + 1000
    assert (auctions.seller.to_numpy() == hot_seller).mean() == pytest.approx(0.75, abs=0.03)


def test_seed_decides_the_events() -> None:
    a, b = generate_nexmark(2_000, seed=1), generate_nexmark(2_000, seed=1)
    pd.testing.assert_frame_equal(a, b)
    c = generate_nexmark(2_000, seed=2)
    assert not a.price.equals(c.price)
    assert a.auction_id.equals(c.auction_id)  # ids follow from event numbers, not from the seed


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 3_000),
    rate=st.sampled_from([10, 1_000, 50_000]),
    disorder_ms=st.integers(0, 5_000),
    group=st.sampled_from([1, 7, 50]),
    seed=st.integers(0, 100),
)
def test_disorder_is_bounded_and_only_reorders(
    n: int, rate: int, disorder_ms: int, group: int, seed: int
) -> None:
    cfg = NexmarkConfig(rate=rate, seed=seed, disorder=f"{disorder_ms}ms", out_of_order_group_size=group)
    ev = generate_nexmark(n, cfg)
    t = ev.date_time.array.asi8
    # out of order by at most the disorder plus one out-of-order group's span
    lag = np.maximum.accumulate(t) - t
    assert lag.max() <= disorder_ms * 1_000_000 + group * cfg.inter_event_ns
    # the same events as without disorder, in another order
    plain = generate_nexmark(n, NexmarkConfig(rate=rate, seed=seed, out_of_order_group_size=group))
    key = ["date_time", "event_type", "person_id", "auction_id", "auction", "price"]
    assert sorted(map(tuple, ev[key].astype(str).values)) == sorted(map(tuple, plain[key].astype(str).values))
    if group == 1 and disorder_ms == 0:
        assert (np.diff(t) >= 0).all()


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        NexmarkConfig(rate=0)
    with pytest.raises(ValueError, match="out_of_order_group_size"):
        NexmarkConfig(out_of_order_group_size=0)


def test_source_replays_the_events() -> None:
    src = NexmarkSource(1_000, seed=4, batch_size=128)
    sink = ListSink()
    p = Pipeline(src, time="date_time")
    p.filter("event_type == 0").to(sink)
    p.run(clock=ManualClock(0))
    assert sink.frame().person_id.tolist() == list(range(1000, 1020))
    assert "NexmarkSource(1000" in repr(src)
