"""The Nexmark benchmark's event generator (persons, auctions, bids), columnar.

Follows the logic of the reference generator (Beam's Java ``NexmarkGenerator``, which Flink's nexmark
repository ports): events come in epochs of 50, one person, three auctions and 46 bids, identified by
their event id; person and auction ids follow from the event id; auctions are sold mostly by "hot"
sellers and bids go mostly to hot auctions and come from hot bidders; prices are log-uniform between
$1 and $1M (in cents); an auction expires after a random length whose mean is the time until
``n_in_flight_auctions`` more auctions have been created; ``extra`` pads each event to its average
size. Event ``i`` (in generation order) is stamped ``base_time + i / rate``.

The random draws use numpy's generator seeded by ``seed``, one array per field, not Java's
``java.util.Random`` seeded by each event id: the distributions are the reference's, the values are not
bit-identical to the Java generator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from streamlab._time import parse_duration, to_utc_ns
from streamlab.sources import ReplaySource

__all__ = ["NexmarkConfig", "NexmarkSource", "generate_nexmark"]

PERSON_PROPORTION, AUCTION_PROPORTION, BID_PROPORTION = 1, 3, 46
PROPORTION_DENOMINATOR = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10
HOT_SELLER_RATIO = 100
HOT_AUCTION_RATIO = 100
HOT_BIDDER_RATIO = 100
US_STATES = ["AZ", "CA", "ID", "OR", "WA", "WY"]
US_CITIES = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
]
FIRST_NAMES = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"]
LAST_NAMES = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"]
PERSON, AUCTION, BID = 0, 1, 2
#: the columns of the event frame, in order
COLUMNS = (
    "event_type",
    "date_time",
    "person_id",
    "name",
    "email_address",
    "credit_card",
    "city",
    "state",
    "auction_id",
    "item_name",
    "description",
    "initial_bid",
    "reserve",
    "expires",
    "seller",
    "category",
    "auction",
    "bidder",
    "price",
    "extra",
)


@dataclass(frozen=True)
class NexmarkConfig:
    """Knobs of the Nexmark generator; the defaults are the reference's (Beam's ``NexmarkConfiguration``).

    Parameters
    ----------
    rate
        Events per second of event time (``firstEventRate``).
    seed
        Seed of the random draws.
    base_time
        Event time of the first event.
    out_of_order_group_size
        The reference's disorder: within each group of this many events, ids and times are permuted.
    disorder
        Largest arrival delay (out-of-orderness), e.g. ``"2s"``: a ``delayed_share`` of the events
        arrives up to this much event time after its place; ``0`` keeps event-time order.
    delayed_share
        Share of events delayed when ``disorder`` is set.
    extra
        Generate the string fields (names, e-mails, descriptions, ``extra`` padding); ``False`` leaves
        them empty, for runs that measure the queries alone.

    Examples
    --------
    >>> NexmarkConfig(rate=1000).inter_event_ns
    1000000
    """

    rate: int = 10_000
    seed: int = 0
    base_time: str = "2015-07-15T00:00:00Z"
    out_of_order_group_size: int = 1
    disorder: str | int = 0
    delayed_share: float = 0.1
    n_active_people: int = 1000
    n_in_flight_auctions: int = 100
    hot_auction_ratio: int = 2
    hot_sellers_ratio: int = 4
    hot_bidders_ratio: int = 4
    avg_person_byte_size: int = 200
    avg_auction_byte_size: int = 500
    avg_bid_byte_size: int = 100
    extra: bool = True
    first_event_id: int = 0
    _ns: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(
                f"NexmarkConfig(rate={self.rate}): the rate must be a positive number of events/s"
            )
        if self.out_of_order_group_size < 1:
            raise ValueError("NexmarkConfig: out_of_order_group_size must be at least 1 (1 = in order)")
        if not 0.0 <= self.delayed_share <= 1.0:
            raise ValueError("NexmarkConfig: delayed_share must be within [0, 1]")
        self._ns["base"] = int(to_utc_ns([self.base_time])[0])
        self._ns["disorder"] = parse_duration(self.disorder, what="NexmarkConfig disorder")

    @property
    def inter_event_ns(self) -> int:
        """Event time between consecutive events, in nanoseconds."""
        return 1_000_000_000 // self.rate

    def timestamp_ms(self, event_number: np.ndarray) -> np.ndarray:
        """Event time in epoch milliseconds of the events with these (adjusted) numbers."""
        return self._ns["base"] // 1_000_000 + (event_number * 1000) // self.rate

    @property
    def max_auction_length_ms(self) -> int:
        """Upper bound of an auction's length: twice the time until ``n_in_flight_auctions`` more auctions."""
        n_events = (self.n_in_flight_auctions * PROPORTION_DENOMINATOR) // AUCTION_PROPORTION
        return 2 * ((n_events + self.out_of_order_group_size) * 1000 // self.rate + 1) + 1

    @property
    def max_bid_lead_ms(self) -> int:
        """How much earlier than its auction a bid can be (bids go to up to 10 auctions ahead)."""
        n_events = (
            AUCTION_ID_LEAD + 1
        ) * PROPORTION_DENOMINATOR // AUCTION_PROPORTION + PROPORTION_DENOMINATOR
        return (n_events + 2 * self.out_of_order_group_size) * 1000 // self.rate + 1

    @property
    def disorder_ns(self) -> int:
        """``disorder`` in nanoseconds."""
        return self._ns["disorder"]


def _last_person(eid: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    epoch, offset = np.divmod(eid, PROPORTION_DENOMINATOR)
    return epoch * PERSON_PROPORTION + np.minimum(offset, PERSON_PROPORTION - 1)


def _last_auction(eid: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    epoch, offset = np.divmod(eid, PROPORTION_DENOMINATOR)
    before = offset < PERSON_PROPORTION
    epoch = epoch - before
    off = np.where(
        before | (offset >= PERSON_PROPORTION + AUCTION_PROPORTION),
        AUCTION_PROPORTION - 1,
        offset - PERSON_PROPORTION,
    )
    return epoch * AUCTION_PROPORTION + off


def _next_person(
    eid: npt.NDArray[np.int64], rng: np.random.Generator, cfg: NexmarkConfig
) -> npt.NDArray[np.int64]:
    n_people = _last_person(eid) + 1
    active: npt.NDArray[np.int64] = np.minimum(n_people, cfg.n_active_people)
    return n_people - active + (rng.random(len(eid)) * (active + PERSON_ID_LEAD)).astype(np.int64)


def _next_auction(
    eid: npt.NDArray[np.int64], rng: np.random.Generator, cfg: NexmarkConfig
) -> npt.NDArray[np.int64]:
    hi = _last_auction(eid)
    lo = np.maximum(hi - cfg.n_in_flight_auctions, 0)
    return lo + (rng.random(len(eid)) * (hi - lo + 1 + AUCTION_ID_LEAD)).astype(np.int64)


def _price(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.floor(10.0 ** (rng.random(n) * 6.0) * 100.0 + 0.5).astype(np.int64)


def _string_column(n: int, rows: np.ndarray, values: pa.Array) -> pd.Series:
    """A string column of ``n`` rows holding ``values`` at ``rows`` and nulls elsewhere."""
    values = values.take(np.arange(len(values))) if values.offset else values  # rebase a slice
    lengths = np.zeros(n, dtype=np.int64)
    lengths[rows] = pc_lengths(values)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    present = np.zeros(n, dtype=bool)
    present[rows] = True
    valid = pa.py_buffer(np.packbits(present, bitorder="little"))
    data = values.buffers()[2] or pa.py_buffer(b"")
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), data, valid, n - len(rows))
    return pd.Series(pd.array(arr, dtype=pd.StringDtype("pyarrow")))


def _random_strings(rng: np.random.Generator, lengths: np.ndarray, space_share: float = 1 / 13) -> pa.Array:
    """Random lower-case strings of these lengths (with some spaces), built in one buffer.

    The buffer repeats a random pool of 65,521 characters (a prime, so consecutive strings start at
    unrelated places in it): drawing every character would cost more than the rest of the generator.
    """
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pool = rng.integers(97, 123, 65_521, dtype=np.uint8)
    pool[rng.random(len(pool)) < space_share] = 32
    chars = np.resize(pool, int(offsets[-1]))
    return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(chars))


def _templated_strings(rng: np.random.Generator, parts: list[np.ndarray | bytes]) -> pa.Array:
    """Concatenate random letter runs (given as lengths) and fixed texts (bytes), row by row."""
    n = next(len(p) for p in parts if isinstance(p, np.ndarray))
    lens = [p if isinstance(p, np.ndarray) else np.full(n, len(p), dtype=np.int64) for p in parts]
    total = np.sum(lens, axis=0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(total, out=offsets[1:])
    chars = rng.integers(97, 123, int(offsets[-1]), dtype=np.uint8)
    pos = offsets[:-1].copy()
    for p, ln in zip(parts, lens):
        if not isinstance(p, np.ndarray):
            for j, b in enumerate(p):
                chars[pos + j] = b
        pos += ln
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def _extra_lengths(rng: np.random.Generator, current: np.ndarray, average: int) -> np.ndarray:
    want = np.maximum(average - current, 0)
    delta = np.floor(want * 0.2 + 0.5).astype(np.int64)
    spread = (rng.random(len(want)) * (2 * delta)).astype(np.int64)
    return np.where(current > average, 0, want - delta + spread)


def generate_nexmark(n: int, config: NexmarkConfig | None = None, **knobs: Any) -> pd.DataFrame:
    """Generate ``n`` Nexmark events as one frame in arrival order.

    ``event_type`` says which columns an event fills: 0 a person (``person_id``, ``name``,
    ``email_address``, ``credit_card``, ``city``, ``state``), 1 an auction (``auction_id``,
    ``item_name``, ``description``, ``initial_bid``, ``reserve``, ``expires``, ``seller``, ``category``),
    2 a bid (``auction``, ``bidder``, ``price``); all have ``date_time`` and ``extra``. Ids and prices are
    int64 (``-1`` where the kind has no such field), prices in cents, times UTC.

    Parameters
    ----------
    n
        Number of events.
    config
        A :class:`NexmarkConfig`; or pass its fields as keywords (``rate=``, ``seed=``, ``disorder=``...).

    Examples
    --------
    >>> ev = generate_nexmark(100, seed=1)
    >>> ev["event_type"].value_counts().sort_index().tolist()   # 1 : 3 : 46
    [2, 6, 92]
    >>> ev.loc[ev.event_type == 0, "person_id"].tolist()
    [1000, 1001]
    >>> ev["date_time"].is_monotonic_increasing
    True
    """
    cfg = config if config is not None else NexmarkConfig(**knobs)
    if config is not None and knobs:
        raise TypeError("generate_nexmark: pass either config or its fields as keywords, not both")
    rng = np.random.default_rng([cfg.seed, 0x4E58])
    g = cfg.out_of_order_group_size
    number = np.arange(n, dtype=np.int64)
    adjusted = (number // g) * g + (number * 953) % g
    eid = cfg.first_event_id + adjusted
    ts_ms = cfg.timestamp_ms(adjusted)
    rem = eid % PROPORTION_DENOMINATOR
    kind = np.where(
        rem < PERSON_PROPORTION, PERSON, np.where(rem < PERSON_PROPORTION + AUCTION_PROPORTION, AUCTION, BID)
    ).astype(np.int8)
    p_rows, a_rows, b_rows = (np.flatnonzero(kind == k) for k in (PERSON, AUCTION, BID))

    def ints(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.full(n, -1, dtype=np.int64)
        out[rows] = values
        return out

    # persons
    pe = eid[p_rows]
    person_id = _last_person(pe) + FIRST_PERSON_ID
    # auctions
    ae = eid[a_rows]
    hot_seller = rng.integers(0, cfg.hot_sellers_ratio, len(ae)) > 0
    seller = np.where(
        hot_seller, (_last_person(ae) // HOT_SELLER_RATIO) * HOT_SELLER_RATIO, _next_person(ae, rng, cfg)
    )
    category = FIRST_CATEGORY_ID + rng.integers(0, NUM_CATEGORIES, len(ae))
    initial_bid = _price(rng, len(ae))
    reserve = initial_bid + _price(rng, len(ae))
    n_future = (cfg.n_in_flight_auctions * PROPORTION_DENOMINATOR) // AUCTION_PROPORTION
    a_ts = ts_ms[a_rows]
    horizon = cfg.timestamp_ms(adjusted[a_rows] + n_future) - a_ts
    expires = a_ts + 1 + (rng.random(len(ae)) * np.maximum(horizon * 2, 1)).astype(np.int64)
    # bids
    be = eid[b_rows]
    hot_auction = rng.integers(0, cfg.hot_auction_ratio, len(be)) > 0
    auction = np.where(
        hot_auction, (_last_auction(be) // HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO, _next_auction(be, rng, cfg)
    )
    hot_bidder = rng.integers(0, cfg.hot_bidders_ratio, len(be)) > 0
    bidder = np.where(
        hot_bidder, (_last_person(be) // HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1, _next_person(be, rng, cfg)
    )
    price = _price(rng, len(be))

    expires_ns = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    expires_ns[a_rows] = expires * 1_000_000
    frame = pd.DataFrame(
        {
            "event_type": kind,
            "date_time": pd.DatetimeIndex(ts_ms * 1_000_000, tz="UTC"),
            "person_id": ints(p_rows, person_id),
            "auction_id": ints(a_rows, _last_auction(ae) + FIRST_AUCTION_ID),
            "initial_bid": ints(a_rows, initial_bid),
            "reserve": ints(a_rows, reserve),
            "expires": pd.DatetimeIndex(expires_ns, tz="UTC"),
            "seller": ints(a_rows, seller + FIRST_PERSON_ID),
            "category": ints(a_rows, category),
            "auction": ints(b_rows, auction + FIRST_AUCTION_ID),
            "bidder": ints(b_rows, bidder + FIRST_PERSON_ID),
            "price": ints(b_rows, price),
        }
    )
    frame = frame.assign(**_strings(rng, cfg, n, p_rows, a_rows, b_rows))[list(COLUMNS)]
    if cfg.disorder_ns and cfg.delayed_share:
        delayed = rng.random(n) < cfg.delayed_share
        delay = np.where(delayed, rng.integers(0, cfg.disorder_ns + 1, n), 0)
        order = np.argsort(ts_ms * 1_000_000 + delay, kind="stable")
        frame = frame.take(order).reset_index(drop=True)
    return frame


def _strings(
    rng: np.random.Generator,
    cfg: NexmarkConfig,
    n: int,
    p_rows: np.ndarray,
    a_rows: np.ndarray,
    b_rows: np.ndarray,
) -> dict[str, pd.Series]:
    np_, na, nb = len(p_rows), len(a_rows), len(b_rows)
    combos = pa.array([f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES], type=pa.large_string())
    name_idx = rng.integers(0, len(combos), np_)
    city_idx = rng.integers(0, len(US_CITIES), np_)
    state_idx = rng.integers(0, len(US_STATES), np_)
    cols = {
        "name": _string_column(n, p_rows, combos.take(name_idx)),
        "city": _string_column(n, p_rows, pa.array(US_CITIES, type=pa.large_string()).take(city_idx)),
        "state": _string_column(n, p_rows, pa.array(US_STATES, type=pa.large_string()).take(state_idx)),
    }
    if not cfg.extra:
        empty = pa.array([""], type=pa.large_string())
        for c, rows in (
            ("email_address", p_rows),
            ("credit_card", p_rows),
            ("item_name", a_rows),
            ("description", a_rows),
        ):
            cols[c] = _string_column(n, rows, empty.take(np.zeros(len(rows), dtype=np.int64)))
        cols["extra"] = pd.Series(
            pd.array(empty.take(np.zeros(n, dtype=np.int64)), dtype=pd.StringDtype("pyarrow"))
        )
        return cols
    local, domain = 3 + rng.integers(0, 4, np_), 3 + rng.integers(0, 2, np_)
    email = _templated_strings(rng, [local, b"@", domain, b".com"])
    card = 48 + rng.integers(0, 10, (np_, 19), dtype=np.uint8)
    card[:, [4, 9, 14]] = 32
    card_arr = pa.LargeStringArray.from_buffers(
        np_, pa.py_buffer(np.arange(0, 19 * np_ + 1, 19, dtype=np.int64)), pa.py_buffer(card.tobytes())
    )
    item_len, desc_len = 3 + rng.integers(0, 17, na), 3 + rng.integers(0, 97, na)
    cols["email_address"] = _string_column(n, p_rows, email)
    cols["credit_card"] = _string_column(n, p_rows, card_arr)
    cols["item_name"] = _string_column(n, a_rows, _random_strings(rng, item_len))
    cols["description"] = _string_column(n, a_rows, _random_strings(rng, desc_len))
    name_len = np.asarray(pc_lengths(combos))[name_idx]
    city_len = np.array([len(c) for c in US_CITIES])[city_idx]
    extra_len = np.zeros(n, dtype=np.int64)
    extra_len[p_rows] = _extra_lengths(
        rng, 8 + name_len + (local + domain + 5) + 19 + city_len + 2, cfg.avg_person_byte_size
    )
    extra_len[a_rows] = _extra_lengths(rng, 8 + item_len + desc_len + 40, cfg.avg_auction_byte_size)
    extra_len[b_rows] = _extra_lengths(rng, np.full(nb, 32, dtype=np.int64), cfg.avg_bid_byte_size)
    cols["extra"] = pd.Series(pd.array(_random_strings(rng, extra_len), dtype=pd.StringDtype("pyarrow")))
    return cols


def pc_lengths(arr: pa.Array) -> np.ndarray:
    """Byte lengths of a large-string array's values."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1 + arr.offset)[arr.offset :]
    return np.diff(offsets)


class NexmarkSource(ReplaySource):
    """Nexmark events (:func:`generate_nexmark`) as a source, replayed on their ``date_time``.

    Parameters
    ----------
    n
        Number of events.
    config
        A :class:`NexmarkConfig`, or its fields as keywords.
    speed
        Replay speed against event time (``1.0`` = the configured ``rate`` in real time); ``None`` (the
        default) as fast as possible.
    batch_size
        Largest number of events per batch.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> p = Pipeline(NexmarkSource(500, seed=3), time="date_time")
    >>> bids = p.filter("event_type == 2")
    >>> len(p.head(500)[bids.step_id])
    460
    """

    def __init__(
        self,
        n: int,
        config: NexmarkConfig | None = None,
        *,
        speed: float | None = None,
        batch_size: int | None = None,
        **knobs: Any,
    ) -> None:
        self.config = config if config is not None else NexmarkConfig(**knobs)
        self.n = n
        super().__init__(
            generate_nexmark(n, self.config), time="date_time", speed=speed, batch_size=batch_size
        )

    def spec(self) -> dict[str, Any]:
        """Refused: the events are generated in memory, which a YAML spec cannot carry.

        Examples
        --------
        >>> NexmarkSource(10, seed=1).spec()
        Traceback (most recent call last):
        ...
        ValueError: NexmarkSource(10, ...) generates its events in memory, which a YAML spec cannot carry; write them to a file (generate_nexmark(n, config).to_parquet('nexmark.parquet')) and use ReplaySource('nexmark.parquet', time='date_time')
        """
        raise ValueError(
            f"NexmarkSource({self.n}, ...) generates its events in memory, which a YAML spec cannot carry; "
            "write them to a file (generate_nexmark(n, config).to_parquet('nexmark.parquet')) and use "
            "ReplaySource('nexmark.parquet', time='date_time')"
        )

    def __repr__(self) -> str:
        return f"NexmarkSource({self.n}, {self.config!r})"
