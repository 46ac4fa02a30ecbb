"""Synthetic event streams with ground-truth labels: clickstream, card transactions and IoT sensors.

Every stream is generated block by block (see ``_common.BLOCK``): block ``k`` depends only on the seed,
the knobs and, for the clickstream, the largest event time seen before it (``carry``). That makes a
frame of ``n`` events a prefix of the endless stream that :class:`~streamlab.datasets.SyntheticSource`
delivers, and lets the source resume from a snapshot without replaying what came before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamlab._time import parse_duration

from ._common import (
    BLOCK,
    INT_MIN,
    MS,
    NS,
    Rate,
    block_bounds,
    block_rng,
    check_count,
    check_share,
    check_span,
    labelled_ids,
    resolve_ms_duration,
    resolve_rate,
    resolve_start,
    utc_column,
)

__all__ = ["generate_clickstream", "generate_iot", "generate_transactions"]

_DEFAULT_START = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class StreamConfig:
    """Knobs every stream has, resolved: times in int ns, the rate in events per second."""

    seed: int
    start_ns: int
    rate: float
    disorder_ns: int


@dataclass(frozen=True)
class Block:
    """One generated block: rows in arrival order, their arrival (processing) times, and the carry."""

    frame: pd.DataFrame
    arrival_ns: np.ndarray
    carry: int


@dataclass(frozen=True)
class StreamKind:
    """How to build a config and the blocks of one kind of stream (used by the generators and the source)."""

    name: str
    make_config: Callable[..., StreamConfig]
    make_block: Callable[[Any, int, int], Block]
    columns: tuple[str, ...]


def take_rows(kind: StreamKind, config: StreamConfig, n: int) -> pd.DataFrame:
    """Concatenate the first ``n`` rows of the endless stream described by ``config``."""
    frames = []
    carry = INT_MIN
    remaining = n
    k = 0
    while remaining > 0:
        block = kind.make_block(config, k, carry)
        frames.append(block.frame.iloc[:remaining] if remaining < BLOCK else block.frame)
        remaining -= BLOCK
        carry = block.carry
        k += 1
    if not frames:
        frames.append(kind.make_block(config, 0, INT_MIN).frame.iloc[:0])
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _floor_ms(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.floor_divide(ns, MS) * MS


def _prev_running_max(values: np.ndarray, carry: int) -> np.ndarray:
    """For each row, the largest value among earlier rows (and ``carry``)."""
    out = np.empty(len(values), dtype=np.int64)
    if len(values) == 0:
        return out
    acc = np.maximum.accumulate(values)
    out[0] = carry
    out[1:] = np.maximum(acc[:-1], carry)
    return out


# --------------------------------------------------------------------------------------------------
# clickstream
# --------------------------------------------------------------------------------------------------

_CLICK_TYPES = np.array(["page_view", "click", "add_to_cart", "purchase", "login", "logout"], dtype=object)
_CLICK_WEIGHTS = np.array([0.55, 0.25, 0.07, 0.02, 0.06, 0.05])
_COUNTRIES = np.array(["US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "ES", "NL"], dtype=object)
_COUNTRY_WEIGHTS = np.array([0.30, 0.12, 0.11, 0.08, 0.10, 0.08, 0.07, 0.06, 0.04, 0.04])
_DEVICES = np.array(["desktop", "mobile", "tablet"], dtype=object)
_DEVICE_WEIGHTS = np.array([0.42, 0.50, 0.08])
_N_PRODUCTS = 300
_PRODUCTS = np.array([f"p{i:04d}" for i in range(_N_PRODUCTS)], dtype=object)
_PAGES = np.array(
    ["/", "/search", "/deals", "/account", "/help", "/cart"] + [f"/products/{p}" for p in _PRODUCTS],
    dtype=object,
)
_PAGE_WEIGHTS = np.concatenate(
    [[0.18, 0.14, 0.06, 0.03, 0.02, 0.05], np.full(_N_PRODUCTS, 0.52 / _N_PRODUCTS)]
)
# A burst is a traffic spike: this many events arriving this many times faster than the base rate.
_BURST_EVENTS = 400
_BURST_SPEEDUP = 20.0
# Retrying producers re-send soon after the original: the gap in events is geometric with this mean.
_DUP_MEAN_GAP = 20.0


@dataclass(frozen=True)
class ClickstreamConfig(StreamConfig):
    """Resolved knobs of the clickstream (all times in int ns)."""

    late_share: float
    lateness_ns: int
    duplicate_share: float
    burst_share: float
    n_users: int


def _clickstream_config(
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    disorder: str | float = "5s",
    late_share: float = 0.01,
    lateness: str | float = "2m",
    duplicate_share: float = 0.01,
    burst_share: float = 0.05,
    n_users: int = 5000,
) -> ClickstreamConfig:
    what = "generate_clickstream"
    if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
        raise ValueError(f"{what}: n_users must be a positive whole number, got {n_users!r}")
    return ClickstreamConfig(
        seed=int(seed),
        start_ns=resolve_start(start, what),
        rate=resolve_rate(rate, events_per_second, 100.0, what),
        disorder_ns=resolve_ms_duration(disorder, f"{what}(disorder=...)"),
        late_share=check_share(late_share, f"{what}(late_share=...)", upper=0.5),
        lateness_ns=resolve_ms_duration(lateness, f"{what}(lateness=...)", allow_zero=False),
        duplicate_share=check_share(duplicate_share, f"{what}(duplicate_share=...)", upper=0.5),
        burst_share=check_share(burst_share, f"{what}(burst_share=...)", upper=0.9),
        n_users=int(n_users),
    )


@functools.lru_cache(maxsize=8)
def _click_users(seed: int, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # A user keeps one country and mostly one device, as real sessions do.
    rng = np.random.default_rng([seed, 101])
    names = np.array([f"u{i:06d}" for i in range(n_users)], dtype=object)
    country = rng.choice(_COUNTRIES, size=n_users, p=_COUNTRY_WEIGHTS)
    device = rng.choice(_DEVICES, size=n_users, p=_DEVICE_WEIGHTS)
    return names, country, device


def _clickstream_block(cfg: ClickstreamConfig, k: int, carry: int) -> Block:
    rng = block_rng(cfg.seed, 1, k)
    t0, t1 = block_bounds(cfg.start_ns + cfg.disorder_ns, cfg.rate, k)
    span = t1 - t0
    pos = np.arange(BLOCK)

    # Arrivals: given the count, Poisson arrivals in an interval are sorted uniforms; bursts are
    # clusters of events squeezed into a short stretch of the block.
    u = rng.random(BLOCK)
    is_burst = np.zeros(BLOCK, dtype=bool)
    nb = int(rng.binomial(BLOCK, cfg.burst_share)) if cfg.burst_share > 0 else 0
    if nb:
        n_bursts = max(1, round(nb / _BURST_EVENTS))
        width = min(1.0, _BURST_EVENTS / (cfg.rate * _BURST_SPEEDUP) * NS / span)
        centers = rng.random(n_bursts) * (1.0 - width)
        u[:nb] = centers[rng.integers(0, n_bursts, nb)] + rng.random(nb) * width
        is_burst[:nb] = True
    order = np.argsort(u, kind="stable")
    u, is_burst = u[order], is_burst[order]
    arrival = np.minimum(t0 + np.floor(u * span).astype(np.int64), t1 - 1)

    # Duplicates point at an earlier row of the block; a duplicate of a duplicate re-sends the original.
    dup = rng.random(BLOCK) < cfg.duplicate_share
    target = pos - rng.geometric(1.0 / _DUP_MEAN_GAP, BLOCK)
    dup &= target >= 0
    orig = np.where(dup, target, pos)
    while True:
        nxt = orig[orig]
        if np.array_equal(nxt, orig):
            break
        orig = nxt

    # Normal events are delayed by at most `disorder`, so none is behind the running max by more.
    delay = (rng.random(BLOCK) * cfg.disorder_ns).astype(np.int64)
    ts = _floor_ms(arrival - delay)
    late = (rng.random(BLOCK) < cfg.late_share) & ~dup
    lag = rng.integers(1, cfg.lateness_ns // MS + 1, BLOCK) * MS
    prev = _prev_running_max(np.where(~dup & ~late, ts, INT_MIN), carry)
    if (late & (prev == INT_MIN)).any():
        # Nothing to be late against yet (very first rows of a stream): keep these on time.
        late &= prev != INT_MIN
        prev = _prev_running_max(np.where(~dup & ~late, ts, INT_MIN), carry)
    ts = np.where(late, prev - cfg.disorder_ns - lag, ts)

    kind_idx = rng.choice(len(_CLICK_TYPES), size=BLOCK, p=_CLICK_WEIGHTS)
    user_idx = np.minimum((cfg.n_users * rng.random(BLOCK) ** 2.5).astype(np.int64), cfg.n_users - 1)
    page_idx = rng.choice(len(_PAGES), size=BLOCK, p=_PAGE_WEIGHTS)
    product_idx = rng.integers(0, _N_PRODUCTS, BLOCK)
    amount = np.round(np.exp(rng.normal(3.4, 0.8, BLOCK)), 2)
    mobile_switch = rng.random(BLOCK) < 0.1

    # A duplicate re-sends the original event unchanged: same id, time, user and properties.
    ts, kind_idx, user_idx = ts[orig], kind_idx[orig], user_idx[orig]
    page_idx, product_idx, amount, mobile_switch = (
        page_idx[orig],
        product_idx[orig],
        amount[orig],
        mobile_switch[orig],
    )

    names, user_country, user_device = _click_users(cfg.seed, cfg.n_users)
    etype = _CLICK_TYPES[kind_idx]
    page = _PAGES[page_idx]
    page = np.where(kind_idx == 2, "/products/" + _PRODUCTS[product_idx], page)
    page = np.where(kind_idx == 3, "/checkout", page)
    page = np.where(kind_idx == 4, "/login", page)
    page = np.where(kind_idx == 5, "/account", page)
    device = np.where(mobile_switch, "mobile", user_device[user_idx])
    country = user_country[user_idx]
    props = [
        {"page": p, "device": d, "country": c}
        for p, d, c in zip(page.tolist(), device.tolist(), country.tolist())
    ]
    for i in np.flatnonzero(kind_idx == 2).tolist():
        props[i]["product_id"] = _PRODUCTS[product_idx[i]]
    for i in np.flatnonzero(kind_idx == 3).tolist():
        props[i]["product_id"] = _PRODUCTS[product_idx[i]]
        props[i]["amount"] = float(amount[i])
        props[i]["currency"] = "USD"

    prev_all = _prev_running_max(ts, carry)
    is_late = (prev_all != INT_MIN) & (ts < np.where(prev_all == INT_MIN, 0, prev_all) - cfg.disorder_ns)
    frame = pd.DataFrame(
        {
            "event_id": labelled_ids(f"clk-{cfg.seed}-", k * BLOCK + orig),
            "event_type": etype,
            "user_id": names[user_idx],
            "timestamp": utc_column(ts),
            "properties": pd.Series(props, dtype=object),
            "is_duplicate": dup,
            "is_late": is_late,
            "is_burst": is_burst,
        }
    )
    return Block(frame, arrival, int(max(carry, int(ts.max()))))


CLICKSTREAM = StreamKind(
    "clickstream",
    _clickstream_config,
    _clickstream_block,
    ("event_id", "event_type", "user_id", "timestamp", "properties", "is_duplicate", "is_late", "is_burst"),
)


def generate_clickstream(
    n: int,
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    disorder: str | float = "5s",
    late_share: float = 0.01,
    lateness: str | float = "2m",
    duplicate_share: float = 0.01,
    burst_share: float = 0.05,
    n_users: int = 5000,
) -> pd.DataFrame:
    """Generate clickstream events in arrival order, with disorder, late events, duplicates and bursts.

    Arrivals form a Poisson process at ``rate`` plus traffic bursts (400 events at 20 times the rate).
    Each event's time is its arrival minus a network delay of at most ``disorder``, so on-time events
    trail the running maximum event time by at most ``disorder``. Late events trail it by more than
    ``disorder`` and at most ``disorder + lateness``. A duplicate re-sends an earlier event unchanged
    (same ``event_id``), as a retrying producer does, usually within a few dozen events.

    Parameters
    ----------
    n
        Number of rows (duplicates included).
    seed
        Random seed; the same seed and knobs give an identical frame.
    start
        Earliest time of on-time events; arrivals begin ``disorder`` later.
    rate, events_per_second
        Mean arrival rate, as text (``"100/s"``, ``"6000/m"``) or a number; give at most one. Default 100/s.
    disorder
        Largest delay of on-time events (whole milliseconds).
    late_share
        Share of original events that arrive late.
    lateness
        How much further than ``disorder`` late events may lag behind the running maximum.
    duplicate_share
        Share of rows that re-send an earlier event.
    burst_share
        Share of rows that arrive inside traffic bursts.
    n_users
        Number of distinct users (activity is skewed: a few users are very active).

    Returns
    -------
    pandas.DataFrame
        ``event_id``, ``event_type``, ``user_id``, ``timestamp`` (UTC, whole ms), ``properties``
        (dict: ``page``, ``device``, ``country``; ``product_id`` for carts and purchases; ``amount`` and
        ``currency`` for purchases) and the labels ``is_duplicate``, ``is_late``, ``is_burst``.

    Examples
    --------
    >>> df = generate_clickstream(1000, seed=1)
    >>> list(df.columns[:5])
    ['event_id', 'event_type', 'user_id', 'timestamp', 'properties']
    >>> bool(df["timestamp"].is_monotonic_increasing)  # arrival order, not event-time order
    False
    >>> bool(df.loc[df["is_duplicate"], "event_id"].isin(df.loc[~df["is_duplicate"], "event_id"]).all())
    True
    """
    n = check_count(n, "generate_clickstream")
    cfg = _clickstream_config(
        seed=seed,
        start=start,
        rate=rate,
        events_per_second=events_per_second,
        disorder=disorder,
        late_share=late_share,
        lateness=lateness,
        duplicate_share=duplicate_share,
        burst_share=burst_share,
        n_users=n_users,
    )
    check_span(n, cfg.rate, cfg.start_ns, "generate_clickstream")
    return take_rows(CLICKSTREAM, cfg, n)


# --------------------------------------------------------------------------------------------------
# card transactions
# --------------------------------------------------------------------------------------------------

# name, category, relative amount scale, weight in normal spending
_MERCHANTS = [
    ("FreshMart", "grocery", 1.0, 0.20),
    ("QuickFuel", "fuel", 1.1, 0.10),
    ("CityCafe", "restaurant", 0.4, 0.14),
    ("Bistro Nord", "restaurant", 1.2, 0.06),
    ("ShopNow Online", "online", 1.4, 0.12),
    ("StreamFlix", "digital", 0.3, 0.05),
    ("AppStore Plus", "digital", 0.2, 0.05),
    ("RideNow", "transport", 0.5, 0.08),
    ("PharmaPlus", "pharmacy", 0.6, 0.06),
    ("HomeBase", "home", 2.0, 0.05),
    ("MegaElectro", "electronics", 4.0, 0.03),
    ("GoldLine Jewels", "jewelry", 6.0, 0.01),
    ("SkyHigh Air", "travel", 8.0, 0.02),
    ("TrendWear", "fashion", 1.8, 0.03),
]
_M_NAMES = np.array([m[0] for m in _MERCHANTS], dtype=object)
_M_CATEGORY = np.array([m[1] for m in _MERCHANTS], dtype=object)
_M_SCALE = np.array([m[2] for m in _MERCHANTS])
_M_WEIGHTS = np.array([m[3] for m in _MERCHANTS]) / sum(m[3] for m in _MERCHANTS)
_M_ONLINE = np.array([i for i, m in enumerate(_MERCHANTS) if m[1] in ("online", "digital")])
_M_PRICEY = np.array([i for i, m in enumerate(_MERCHANTS) if m[1] in ("electronics", "jewelry", "travel")])
_FRAUD_PATTERNS = np.array(["none", "velocity", "amount_spike", "geo_jump"], dtype=object)
_MINUTE = 60 * NS


@dataclass(frozen=True)
class TransactionsConfig(StreamConfig):
    """Resolved knobs of the transaction stream."""

    n_cards: int
    fraud_share: float
    pattern_weights: tuple[float, float, float]


def _transactions_config(
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    n_cards: int = 2000,
    fraud_share: float = 0.01,
    pattern_weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
    disorder: str | float = "1s",
) -> TransactionsConfig:
    what = "generate_transactions"
    if isinstance(n_cards, bool) or not isinstance(n_cards, (int, np.integer)) or n_cards < 2:
        raise ValueError(f"{what}: n_cards must be a whole number of at least 2, got {n_cards!r}")
    w = tuple(float(x) for x in pattern_weights)
    if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
        raise ValueError(
            f"{what}: pattern_weights must be three non-negative numbers (velocity, amount_spike, "
            f"geo_jump) with a positive sum, got {pattern_weights!r}"
        )
    total = sum(w)
    return TransactionsConfig(
        seed=int(seed),
        start_ns=resolve_start(start, what),
        rate=resolve_rate(rate, events_per_second, 10.0, what),
        n_cards=int(n_cards),
        fraud_share=check_share(fraud_share, f"{what}(fraud_share=...)", upper=0.3),
        pattern_weights=(w[0] / total, w[1] / total, w[2] / total),
        disorder_ns=resolve_ms_duration(disorder, f"{what}(disorder=...)"),
    )


@functools.lru_cache(maxsize=8)
def _cards(seed: int, n_cards: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 102])
    card_names = np.array([f"card-{i:06d}" for i in range(n_cards)], dtype=object)
    # Four in five cards have their own holder; the rest are second cards of those holders.
    n_users = max(1, int(n_cards * 0.8))
    owner = np.concatenate([np.arange(n_users), rng.integers(0, n_users, n_cards - n_users)])
    users = np.array([f"u{i:06d}" for i in owner.tolist()], dtype=object)
    home = rng.choice(len(_COUNTRIES), size=n_cards, p=_COUNTRY_WEIGHTS)
    scale = np.exp(rng.normal(3.0, 0.5, n_cards))
    activity = np.exp(rng.normal(0.0, 0.8, n_cards))
    return card_names, users, home, scale, activity / activity.sum()


def _incident_sizes(rng: np.random.Generator, target: int, low: int, high: int) -> np.ndarray:
    """Incident sizes drawn from [low, high] until they cover ``target`` events."""
    if target <= 0:
        return np.zeros(0, dtype=np.int64)
    sizes = rng.integers(low, high + 1, target // low + 1)
    stop = int(np.searchsorted(np.cumsum(sizes), target)) + 1
    return sizes[:stop]


def _transactions_block(cfg: TransactionsConfig, k: int, carry: int) -> Block:
    rng = block_rng(cfg.seed, 2, k)
    t0, t1 = block_bounds(cfg.start_ns, cfg.rate, k)
    span = t1 - t0
    card_names, users, home, scale, activity = _cards(cfg.seed, cfg.n_cards)
    n_countries = len(_COUNTRIES)

    target = int(rng.binomial(BLOCK, cfg.fraud_share)) if cfg.fraud_share > 0 else 0
    t_vel, t_amt, t_geo = (int(x) for x in rng.multinomial(target, cfg.pattern_weights))
    vel_sizes = _incident_sizes(rng, t_vel, 5, 12)
    geo_sizes = _incident_sizes(rng, t_geo, 1, 3)
    n_fraud = int(vel_sizes.sum() + t_amt + geo_sizes.sum())
    n_normal = BLOCK - n_fraud

    # Normal spending: each card shops in its home country at its own typical amount.
    n_ts = t0 + np.sort(np.floor(rng.random(n_normal) * span).astype(np.int64))
    n_card = rng.choice(cfg.n_cards, size=n_normal, p=activity)
    n_merch = rng.choice(len(_MERCHANTS), size=n_normal, p=_M_WEIGHTS)
    n_amount = scale[n_card] * _M_SCALE[n_merch] * np.exp(rng.normal(0.0, 0.6, n_normal))
    parts = [
        (n_ts, n_card, n_merch, n_amount, home[n_card], np.zeros(n_normal, np.int64), np.full(n_normal, -1))
    ]
    incident = 0

    # Velocity: many small online purchases on one card within a few minutes.
    for size in vel_sizes.tolist():
        dur = int(min(rng.uniform(2, 10) * _MINUTE, 0.9 * span))
        begin = t0 + int(rng.random() * (span - dur))
        card = int(rng.integers(0, cfg.n_cards))
        ts = begin + np.sort(np.floor(rng.random(size) * dur).astype(np.int64))
        merch = rng.choice(_M_ONLINE, size)
        amt = rng.uniform(5, 80, size)
        parts.append(
            (
                ts,
                np.full(size, card),
                merch,
                amt,
                np.full(size, home[card]),
                np.full(size, 1),
                np.full(size, incident),
            )
        )
        incident += 1

    # Amount spike: one purchase far above what the card usually spends.
    if t_amt:
        a_card = rng.integers(0, cfg.n_cards, t_amt)
        a_ts = t0 + np.floor(rng.random(t_amt) * span).astype(np.int64)
        a_merch = rng.choice(_M_PRICEY, t_amt)
        a_amt = np.maximum(500.0, scale[a_card] * rng.uniform(20, 50, t_amt))
        parts.append(
            (a_ts, a_card, a_merch, a_amt, home[a_card], np.full(t_amt, 2), incident + np.arange(t_amt))
        )
        incident += t_amt

    # Geo jump: after a normal purchase at home, the same card is used abroad within the hour.
    # Prefer anchors that leave minutes for the jump; at high rates a block spans less than that.
    eligible = np.flatnonzero(n_ts < t1 - 2 * _MINUTE)
    if len(eligible) == 0:
        eligible = np.flatnonzero(n_ts < t1 - 10 * MS)
    for size in geo_sizes.tolist():
        if len(eligible) == 0:
            break
        j = int(eligible[rng.integers(0, len(eligible))])
        card = int(n_card[j])
        window = min(50 * _MINUTE, t1 - 1 - MS - int(n_ts[j]))
        offsets = np.sort(rng.uniform(0.2, 1.0, size)) * (window - MS)
        # At least a millisecond after the anchor, so the purchase abroad is strictly later.
        ts = n_ts[j] + MS + offsets.astype(np.int64)
        abroad = (home[card] + 1 + rng.integers(0, n_countries - 1)) % n_countries
        merch = rng.choice(len(_MERCHANTS), size=size, p=_M_WEIGHTS)
        amt = scale[card] * _M_SCALE[merch] * np.exp(rng.normal(0.5, 0.5, size))
        parts.append(
            (
                ts,
                np.full(size, card),
                merch,
                amt,
                np.full(size, abroad),
                np.full(size, 3),
                np.full(size, incident),
            )
        )
        incident += 1

    ts_all, card_all, merch_all, amt_all, country_all, pattern_all, inc_all = (
        np.concatenate([p[i] for p in parts]) for i in range(7)
    )
    # A geo-jump incident skipped for lack of anchors leaves the block short; top up with normal rows.
    short = BLOCK - len(ts_all)
    if short > 0:
        extra_ts = t0 + np.floor(rng.random(short) * span).astype(np.int64)
        extra_card = rng.choice(cfg.n_cards, size=short, p=activity)
        extra_merch = rng.choice(len(_MERCHANTS), size=short, p=_M_WEIGHTS)
        extra_amt = scale[extra_card] * _M_SCALE[extra_merch] * np.exp(rng.normal(0.0, 0.6, short))
        ts_all = np.concatenate([ts_all, extra_ts])
        card_all = np.concatenate([card_all, extra_card])
        merch_all = np.concatenate([merch_all, extra_merch])
        amt_all = np.concatenate([amt_all, extra_amt])
        country_all = np.concatenate([country_all, home[extra_card]])
        pattern_all = np.concatenate([pattern_all, np.zeros(short, np.int64)])
        inc_all = np.concatenate([inc_all, np.full(short, -1)])

    ts_all = _floor_ms(ts_all.astype(np.int64))
    delay = (rng.random(BLOCK) * cfg.disorder_ns).astype(np.int64)
    arrival = np.clip(ts_all + delay, t0, t1 - 1)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order]
    ts_all, card_all, merch_all = ts_all[order], card_all[order], merch_all[order]
    amt_all, country_all, pattern_all, inc_all = (
        amt_all[order],
        country_all[order],
        pattern_all[order],
        inc_all[order],
    )

    burst_id = pd.array(np.where(inc_all >= 0, k * BLOCK + inc_all, 0), dtype="Int64")
    burst_id[inc_all < 0] = pd.NA
    frame = pd.DataFrame(
        {
            "event_id": labelled_ids(f"txn-{cfg.seed}-", k * BLOCK + np.arange(BLOCK)),
            "card_id": card_names[card_all],
            "user_id": users[card_all],
            "merchant": _M_NAMES[merch_all],
            "merchant_category": _M_CATEGORY[merch_all],
            "country": _COUNTRIES[country_all],
            "amount": np.round(np.maximum(amt_all, 0.5), 2),
            "timestamp": utc_column(ts_all),
            "is_fraud": pattern_all > 0,
            "fraud_pattern": _FRAUD_PATTERNS[pattern_all],
            "fraud_burst_id": burst_id,
        }
    )
    return Block(frame, arrival, int(max(carry, int(ts_all.max()))))


TRANSACTIONS = StreamKind(
    "transactions",
    _transactions_config,
    _transactions_block,
    (
        "event_id",
        "card_id",
        "user_id",
        "merchant",
        "merchant_category",
        "country",
        "amount",
        "timestamp",
        "is_fraud",
        "fraud_pattern",
        "fraud_burst_id",
    ),
)


def generate_transactions(
    n: int,
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    n_cards: int = 2000,
    fraud_share: float = 0.01,
    pattern_weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
    disorder: str | float = "1s",
) -> pd.DataFrame:
    """Generate card transactions in arrival order with labelled fraud patterns.

    Normal purchases happen in the card's home country at amounts typical for the card. Fraud comes in
    incidents, each with its own ``fraud_burst_id``:

    - ``velocity``: 5–12 small online purchases on one card within 2–10 minutes;
    - ``amount_spike``: one purchase of 20–50 times the card's typical amount (at least 500);
    - ``geo_jump``: 1–3 purchases abroad within 50 minutes after a purchase at home.

    Incidents are planned per block of 16 384 transactions, so ``n`` may cut the last ones short.
    At rates where a block spans less than 10 minutes, velocity bursts and geo jumps are squeezed
    into the block's time span.

    Parameters
    ----------
    n
        Number of transactions.
    seed
        Random seed; the same seed and knobs give an identical frame.
    start
        Time of the stream's beginning.
    rate, events_per_second
        Mean transaction rate (text such as ``"10/s"`` or a number); default 10 per second.
    n_cards
        Number of cards (owned by about ``0.8 * n_cards`` users).
    fraud_share
        Expected share of fraudulent transactions.
    pattern_weights
        Relative shares of fraudulent transactions per pattern: (velocity, amount_spike, geo_jump).
    disorder
        Largest delay between a transaction's time and its arrival.

    Returns
    -------
    pandas.DataFrame
        ``event_id``, ``card_id``, ``user_id``, ``merchant``, ``merchant_category``, ``country``,
        ``amount``, ``timestamp`` and the labels ``is_fraud``, ``fraud_pattern``
        (none/velocity/amount_spike/geo_jump) and ``fraud_burst_id`` (nullable integer, NA when legit).

    Examples
    --------
    >>> df = generate_transactions(5000, seed=3, fraud_share=0.02)
    >>> sorted(df.loc[df["is_fraud"], "fraud_pattern"].unique())
    ['amount_spike', 'geo_jump', 'velocity']
    >>> bool(df.loc[~df["is_fraud"], "fraud_burst_id"].isna().all())
    True
    """
    n = check_count(n, "generate_transactions")
    cfg = _transactions_config(
        seed=seed,
        start=start,
        rate=rate,
        events_per_second=events_per_second,
        n_cards=n_cards,
        fraud_share=fraud_share,
        pattern_weights=pattern_weights,
        disorder=disorder,
    )
    check_span(n, cfg.rate, cfg.start_ns, "generate_transactions")
    return take_rows(TRANSACTIONS, cfg, n)


# --------------------------------------------------------------------------------------------------
# IoT sensors
# --------------------------------------------------------------------------------------------------

# sensor kind: base temperature (°C), daily amplitude, base humidity (%), base vibration (mm/s)
_SENSORS = [
    ("freezer", -18.0, 1.0, 35.0, 0.8),
    ("hvac", 21.0, 2.5, 45.0, 1.5),
    ("pump", 40.0, 3.0, 55.0, 4.0),
    ("boiler", 70.0, 4.0, 30.0, 2.5),
    ("server_rack", 27.0, 1.5, 40.0, 1.0),
]
_S_NAMES = np.array([s[0] for s in _SENSORS], dtype=object)
_S_TEMP = np.array([s[1] for s in _SENSORS])
_S_AMP = np.array([s[2] for s in _SENSORS])
_S_HUM = np.array([s[3] for s in _SENSORS])
_S_VIB = np.array([s[4] for s in _SENSORS])
_ANOMALY_METRICS = np.array(["none", "temperature", "humidity", "vibration"], dtype=object)
_DAY_NS = 86_400 * NS


@dataclass(frozen=True)
class IotConfig(StreamConfig):
    """Resolved knobs of the IoT stream."""

    n_devices: int
    anomaly_share: float
    drift_at_ns: int | None
    drift_device_share: float
    drift_shift: float


def _resolve_drift_at(drift_at: object, start_ns: int, n: int | None, rate: float) -> int | None:
    what = "generate_iot(drift_at=...)"
    if drift_at is None:
        return None
    if isinstance(drift_at, (float, np.floating)) and not isinstance(drift_at, bool):
        if not 0.0 <= float(drift_at) <= 1.0:
            raise ValueError(f"{what}: a number means a fraction of the stream and must be in [0, 1]")
        if n is None:
            raise ValueError(
                f"{what}: a fraction needs a bounded stream (n=...); give a duration after start such as "
                "'30m' or a time such as '2024-01-01T06:00:00Z' instead"
            )
        return start_ns + int(float(drift_at) * n * NS / rate)
    if isinstance(drift_at, str):
        try:
            return start_ns + parse_duration(drift_at, what=what)
        except ValueError:
            pass
    try:
        return resolve_start(drift_at, what)  # type: ignore[arg-type]  # user input: it reports other types
    except ValueError:
        raise ValueError(
            f"{what}: cannot read {drift_at!r}; give a fraction of the stream (0.6), a duration after start "
            "('30m') or a time ('2024-01-01T06:00:00Z'), or None for no drift"
        ) from None


def _iot_config(
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    n_devices: int = 20,
    anomaly_share: float = 0.005,
    drift_at: float | str | pd.Timestamp | None = None,
    drift_device_share: float = 0.25,
    drift_shift: float = 5.0,
    disorder: str | float = "2s",
    _n: int | None = None,
) -> IotConfig:
    what = "generate_iot"
    if isinstance(n_devices, bool) or not isinstance(n_devices, (int, np.integer)) or n_devices < 1:
        raise ValueError(f"{what}: n_devices must be a positive whole number, got {n_devices!r}")
    start_ns = resolve_start(start, what)
    rate_v = resolve_rate(rate, events_per_second, 10.0, what)
    return IotConfig(
        seed=int(seed),
        start_ns=start_ns,
        rate=rate_v,
        n_devices=int(n_devices),
        anomaly_share=check_share(anomaly_share, f"{what}(anomaly_share=...)", upper=0.5),
        drift_at_ns=_resolve_drift_at(drift_at, start_ns, _n, rate_v),
        drift_device_share=check_share(drift_device_share, f"{what}(drift_device_share=...)"),
        drift_shift=float(drift_shift),
        disorder_ns=resolve_ms_duration(disorder, f"{what}(disorder=...)"),
    )


@functools.lru_cache(maxsize=8)
def _devices(seed: int, n_devices: int, drift_device_share: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([seed, 103])
    names = np.array([f"dev-{i:04d}" for i in range(n_devices)], dtype=object)
    sensor = np.arange(n_devices) % len(_SENSORS)
    offset = rng.normal(0.0, 1.0, n_devices)
    drifting = np.zeros(n_devices, dtype=bool)
    n_drift = round(n_devices * drift_device_share)
    if drift_device_share > 0:
        n_drift = max(1, n_drift)
    drifting[rng.permutation(n_devices)[:n_drift]] = True
    return names, sensor, offset, drifting


def _iot_block(cfg: IotConfig, k: int, carry: int) -> Block:
    rng = block_rng(cfg.seed, 3, k)
    names, sensor_of, offset, drifting = _devices(cfg.seed, cfg.n_devices, cfg.drift_device_share)
    g = k * BLOCK + np.arange(BLOCK, dtype=np.int64)
    device = g % cfg.n_devices
    # Devices report in turn; the arrival schedule depends on the row number only, so it is monotonic.
    arrival = cfg.start_ns + cfg.disorder_ns + np.floor(g * (NS / cfg.rate)).astype(np.int64)
    ts = _floor_ms(arrival - (rng.random(BLOCK) * cfg.disorder_ns).astype(np.int64))
    s = sensor_of[device]
    base_t = _S_TEMP[s] + offset[device]
    phase = (ts % _DAY_NS) / _DAY_NS
    temperature = base_t + _S_AMP[s] * np.sin(2 * np.pi * (phase - 0.25)) + rng.normal(0, 0.25, BLOCK)
    humidity = np.clip(_S_HUM[s] - 0.8 * (temperature - base_t) + rng.normal(0, 1.0, BLOCK), 0.0, 100.0)
    vibration = _S_VIB[s] * np.exp(rng.normal(0, 0.08, BLOCK))

    is_drift = np.zeros(BLOCK, dtype=bool)
    if cfg.drift_at_ns is not None:
        is_drift = drifting[device] & (ts >= cfg.drift_at_ns)
        temperature = temperature + np.where(is_drift, cfg.drift_shift, 0.0)

    is_anomaly = rng.random(BLOCK) < cfg.anomaly_share
    metric = np.where(is_anomaly, rng.integers(1, 4, BLOCK), 0)
    sign = np.where(rng.random(BLOCK) < 0.5, -1.0, 1.0)
    temperature = np.where(metric == 1, temperature + sign * rng.uniform(10, 25, BLOCK), temperature)
    humidity = np.where(metric == 2, np.where(sign > 0, 100.0, 0.0), humidity)
    vibration = np.where(metric == 3, vibration * rng.uniform(4, 8, BLOCK), vibration)

    frame = pd.DataFrame(
        {
            "event_id": labelled_ids(f"iot-{cfg.seed}-", g),
            "device_id": names[device],
            "sensor": _S_NAMES[s],
            "temperature": np.round(temperature, 2),
            "humidity": np.round(humidity, 1),
            "vibration": np.round(vibration, 3),
            "timestamp": utc_column(ts),
            "is_anomaly": is_anomaly,
            "anomaly_metric": _ANOMALY_METRICS[metric],
            "is_drift": is_drift,
        }
    )
    return Block(frame, arrival, int(max(carry, int(ts.max()))))


IOT = StreamKind(
    "iot",
    _iot_config,
    _iot_block,
    (
        "event_id",
        "device_id",
        "sensor",
        "temperature",
        "humidity",
        "vibration",
        "timestamp",
        "is_anomaly",
        "anomaly_metric",
        "is_drift",
    ),
)


def generate_iot(
    n: int,
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = _DEFAULT_START,
    rate: Rate | None = None,
    events_per_second: float | None = None,
    n_devices: int = 20,
    anomaly_share: float = 0.005,
    drift_at: float | str | pd.Timestamp | None = 0.6,
    drift_device_share: float = 0.25,
    drift_shift: float = 5.0,
    disorder: str | float = "2s",
) -> pd.DataFrame:
    """Generate sensor readings in arrival order with labelled point anomalies and a level-shift drift.

    Devices report in turn (each every ``n_devices / rate`` seconds); each reading carries a
    temperature with a daily cycle, a humidity that falls as temperature rises, and a vibration level,
    all depending on the device's ``sensor`` kind. Point anomalies push one metric far out (temperature
    by ±10–25 °C, humidity to 0 or 100 %, vibration 4–8 times higher). From ``drift_at`` on, a share of
    the devices runs ``drift_shift`` °C warmer (``is_drift``).

    Parameters
    ----------
    n
        Number of readings.
    seed
        Random seed; the same seed and knobs give an identical frame.
    start
        Time of the first reading.
    rate, events_per_second
        Total readings per second across all devices; default 10.
    n_devices
        Number of devices.
    anomaly_share
        Share of readings that are point anomalies.
    drift_at
        When the drift starts: a fraction of the stream (``0.6``, so it moves with ``n``), a duration
        after ``start`` (``"30m"``), a time, or ``None`` for no drift.
    drift_device_share
        Share of devices that drift.
    drift_shift
        Temperature shift of drifting devices (°C).
    disorder
        Largest delay between a reading's time and its arrival.

    Returns
    -------
    pandas.DataFrame
        ``event_id``, ``device_id``, ``sensor``, ``temperature``, ``humidity``, ``vibration``,
        ``timestamp`` and the labels ``is_anomaly``, ``anomaly_metric`` (none/temperature/humidity/
        vibration) and ``is_drift``.

    Examples
    --------
    >>> df = generate_iot(2000, seed=5, n_devices=4, drift_at=0.5)
    >>> df["device_id"].nunique()
    4
    >>> bool(df["is_drift"].iloc[:900].any()), bool(df["is_drift"].iloc[1100:].any())
    (False, True)
    """
    n = check_count(n, "generate_iot")
    cfg = _iot_config(
        seed=seed,
        start=start,
        rate=rate,
        events_per_second=events_per_second,
        n_devices=n_devices,
        anomaly_share=anomaly_share,
        drift_at=drift_at,
        drift_device_share=drift_device_share,
        drift_shift=drift_shift,
        disorder=disorder,
        _n=n,
    )
    check_span(n, cfg.rate, cfg.start_ns, "generate_iot")
    return take_rows(IOT, cfg, n)


STREAM_KINDS: dict[str, StreamKind] = {k.name: k for k in (CLICKSTREAM, TRANSACTIONS, IOT)}
