"""A live source of synthetic events, paced by an injected clock."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamlab.clock import Clock
from streamlab.io import Source, SourceReader, default_clock

from ._common import BLOCK, INT_MIN, NS, check_span, resolve_start
from ._generators import STREAM_KINDS, Block, StreamConfig, StreamKind

if TYPE_CHECKING:
    from streamlab.spec import SinkFactory, SourceFactory

__all__ = ["SyntheticSource", "SyntheticSourceReader", "register_spec_kinds"]

# The arrivals of these kinds begin `disorder` after `start` (see the generators).
_ARRIVAL_LEAD = {"clickstream": True, "iot": True, "transactions": False}
_RESERVED = ("seed", "start", "events_per_second", "_n")


def _knobs(kind: StreamKind) -> list[str]:
    return [p for p in inspect.signature(kind.make_config).parameters if p not in _RESERVED]


def _yaml_ready(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_yaml_ready(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


class SyntheticSource(Source):
    """Endless (or ``n``-bounded) synthetic events from the generators, arriving in real time.

    Events arrive as the generator schedules them (Poisson arrivals at ``events_per_second``, plus
    bursts for the clickstream); :meth:`SyntheticSourceReader.poll` returns those whose arrival time is
    at or before the clock's now. Frames have the typed columns of :func:`generate_clickstream`,
    :func:`generate_transactions` or :func:`generate_iot`, labels included, and the first ``n`` events
    equal ``generate_<kind>(n, seed=seed, start=start, events_per_second=...)``. (So an ``n``-bounded
    ``"iot"`` stream drifts from 60 % of it on, as ``generate_iot`` does; an endless one drifts only
    when given ``drift_at``, a duration after ``start`` or a time.)

    Parameters
    ----------
    kind
        ``"clickstream"``, ``"transactions"`` or ``"iot"``.
    n
        Number of events, or ``None`` for an endless stream.
    events_per_second
        Mean arrival rate; defaults to the generator's (100 for clickstream, 10 otherwise).
    seed
        Random seed.
    batch_size
        Most events one ``poll`` returns.
    start
        Event time of the stream's beginning; ``None`` means the clock's time when first opened.
    **params
        Further knobs of the generator, e.g. ``late_share=0.05`` or ``fraud_share=0.02``.

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> clock = ManualClock("2024-01-01T00:00:00Z")
    >>> reader = SyntheticSource("clickstream", n=300, events_per_second=100, seed=1).open(clock=clock)
    >>> clock.advance("1s")
    >>> batch = reader.poll(1000)
    >>> 50 < len(batch) < 200, reader.done
    (True, False)
    >>> clock.advance("10s")
    >>> len(batch) + len(reader.poll(1000)), reader.done
    (300, True)
    """

    def __init__(
        self,
        kind: str = "clickstream",
        *,
        n: int | None = None,
        events_per_second: float | None = None,
        seed: int = 0,
        batch_size: int = 1000,
        start: str | int | pd.Timestamp | None = None,
        **params: Any,
    ) -> None:
        if kind not in STREAM_KINDS:
            raise ValueError(
                f"SyntheticSource(kind={kind!r}): unknown kind; "
                f"choose one of {', '.join(sorted(STREAM_KINDS))}"
            )
        stream = STREAM_KINDS[kind]
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"SyntheticSource(n={n!r}): n must be None (endless) or a whole number >= 0")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                f"SyntheticSource(batch_size={batch_size!r}): batch_size must be a whole number >= 1"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SyntheticSource(seed={seed!r}): seed must be a whole number >= 0")
        unknown = sorted(set(params) - set(_knobs(stream)))
        if unknown:
            raise ValueError(
                f"SyntheticSource(kind={kind!r}): unknown parameter(s) {', '.join(unknown)}; "
                f"{kind} accepts {', '.join(_knobs(stream))}"
            )
        if kind == "iot" and n is not None and "drift_at" not in params:
            params = {**params, "drift_at": 0.6}  # generate_iot's default: a bounded stream drifts at 60 %
        start_ns = None if start is None else resolve_start(start, f"SyntheticSource(start={start!r})")
        extra = {"_n": None if n is None else int(n)} if kind == "iot" else {}
        # Build the config once now so that a bad knob fails here, not when the pipeline runs.
        config = stream.make_config(
            seed=int(seed),
            start=0 if start_ns is None else start_ns,
            events_per_second=events_per_second,
            **params,
            **extra,
        )
        if n is not None:  # (without a start, the run starts now)
            now = pd.Timestamp.now(tz="UTC").value
            check_span(
                int(n), config.rate, now if start_ns is None else start_ns, f"SyntheticSource(kind={kind!r})"
            )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "n", None if n is None else int(n))
        object.__setattr__(self, "events_per_second", float(config.rate))
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "batch_size", int(batch_size))
        object.__setattr__(self, "start", None if start_ns is None else pd.Timestamp(start_ns, tz="UTC"))
        # A rate given as text is kept as the number it resolved to, so the spec has one rate.
        object.__setattr__(self, "_params", tuple((k, v) for k, v in params.items() if k != "rate"))
        object.__setattr__(self, "columns", stream.columns)

    kind: str
    n: int | None
    events_per_second: float
    seed: int
    batch_size: int
    start: pd.Timestamp | None
    _params: tuple[tuple[str, Any], ...]

    @property
    def params(self) -> dict[str, Any]:
        """The generator knobs given beyond the common ones (a copy)."""
        return dict(self._params)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SyntheticSource is immutable; build a new one instead of setting {name!r}")

    def __repr__(self) -> str:
        args = [
            repr(self.kind),
            f"n={self.n!r}",
            f"events_per_second={self.events_per_second!r}",
            f"seed={self.seed}",
        ]
        if self.start is not None:
            args.append(f"start={self.start.isoformat()!r}")
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        return f"SyntheticSource({', '.join(args)})"

    def spec(self) -> dict[str, Any]:
        """A YAML-ready description: ``kind: synthetic``, the generator and its parameters.

        Examples
        --------
        >>> SyntheticSource("iot", n=10, seed=2, n_devices=3).spec()["n_devices"]
        3
        >>> spec = SyntheticSource("transactions", fraud_share=0.05).spec()
        >>> SyntheticSource.from_spec(spec).spec() == spec
        True
        """
        out: dict[str, Any] = {
            "kind": "synthetic",
            "generator": self.kind,
            "n": self.n,
            "events_per_second": self.events_per_second,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "start": None if self.start is None else self.start.isoformat(),
        }
        out.update({k: _yaml_ready(v) for k, v in self.params.items()})
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SyntheticSource:
        """Build the source a :meth:`spec` describes.

        Examples
        --------
        >>> SyntheticSource.from_spec({"kind": "synthetic", "generator": "iot", "n": 5}).n
        5
        """
        params = dict(spec)
        if params.pop("kind", "synthetic") != "synthetic":
            raise ValueError(
                f"SyntheticSource.from_spec: expected kind 'synthetic', got {spec.get('kind')!r}"
            )
        if "pattern_weights" in params and isinstance(params["pattern_weights"], list):
            params["pattern_weights"] = tuple(params["pattern_weights"])
        return cls(params.pop("generator", "clickstream"), **params)

    def open(self, resume: Any = None, clock: Clock | None = None) -> SyntheticSourceReader:
        """Start (or, given a snapshot, continue) the stream.

        Parameters
        ----------
        resume
            A value returned by :meth:`SyntheticSourceReader.snapshot` of a reader of an equal source.
        clock
            Processing-time clock that paces arrivals; defaults to the system clock.

        Returns
        -------
        SyntheticSourceReader

        Examples
        --------
        >>> from streamlab.clock import ManualClock
        >>> reader = SyntheticSource("iot", n=5).open(clock=ManualClock(0))
        >>> reader.next_ready_ns()  # the first event is due at once
        0
        """
        return SyntheticSourceReader(self, default_clock(clock), resume)


def _position_spec(spec: Any) -> Any:
    """What a snapshot's position means: the source's spec without its batch size (the events come in
    the same order whatever the batches, so a position resumes with another batch size).

    Examples
    --------
    >>> _position_spec({"generator": "iot", "batch_size": 5})
    {'generator': 'iot'}
    """
    if not isinstance(spec, dict):
        return spec
    return {k: v for k, v in spec.items() if k != "batch_size"}


class SyntheticSourceReader(SourceReader):
    """Open :class:`SyntheticSource`: hands out the events that have arrived by the clock's now.

    The position is the number of events returned so far plus what is needed to regenerate the
    current block, so :meth:`snapshot` is small and a resumed reader continues with exactly the events
    an uninterrupted one would have returned. Events that fell due while the reader was stopped are
    returned at once on resume, as a broker's backlog would be.

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> clock = ManualClock("2024-01-01T00:00:00Z")
    >>> source = SyntheticSource("transactions", n=100, events_per_second=10, seed=4)
    >>> reader = source.open(clock=clock)
    >>> clock.advance("5s")
    >>> first = reader.poll(20)
    >>> resumed = source.open(resume=reader.snapshot(), clock=clock)
    >>> clock.advance("20s")
    >>> bool((reader.poll(100)["event_id"].to_numpy() == resumed.poll(100)["event_id"].to_numpy()).all())
    True
    """

    def __init__(self, source: SyntheticSource, clock: Clock, resume: Any) -> None:
        self._source = source
        self._clock = clock
        self._stream = STREAM_KINDS[source.kind]
        if resume is None:
            if source.start is not None:
                start_ns = int(source.start.value)
            else:
                lead = self._make_config(0)
                start_ns = clock.now_ns() - (lead.disorder_ns if _ARRIVAL_LEAD[source.kind] else 0)
            self._next = 0
            self._carry = INT_MIN
        else:
            if not isinstance(resume, dict) or _position_spec(resume.get("source")) != _position_spec(
                source.spec()
            ):
                raise ValueError(
                    "SyntheticSource.open(resume=...): the snapshot belongs to a different source; "
                    f"expected one taken from {source!r}"
                )
            start_ns, self._next, self._carry = (
                int(resume["start_ns"]),
                int(resume["next"]),
                int(resume["carry"]),
            )
        self._start_ns = start_ns
        self._config = self._make_config(start_ns)
        self._block: Block | None = None
        self._block_k = -1

    def _make_config(self, start_ns: int) -> StreamConfig:
        src = self._source
        extra = {"_n": src.n} if src.kind == "iot" else {}
        return self._stream.make_config(
            seed=src.seed, start=start_ns, events_per_second=src.events_per_second, **src.params, **extra
        )

    def _current_block(self) -> tuple[Block, int]:
        k = self._next // BLOCK
        if self._block is None or self._block_k != k:
            self._block = self._stream.make_block(self._config, k, self._carry)
            self._block_k = k
        return self._block, self._next - k * BLOCK

    @property
    def done(self) -> bool:
        """True once all ``n`` events were returned; always False for an endless stream."""
        return self._source.n is not None and self._next >= self._source.n

    def poll(self, max_events: int) -> pd.DataFrame | None:
        """Return up to ``max_events`` events (and at most ``batch_size``) that have arrived, else None."""
        if self.done or max_events < 1:
            return None
        block, local = self._current_block()
        limit = min(int(max_events), self._source.batch_size, BLOCK - local)
        if self._source.n is not None:
            limit = min(limit, self._source.n - self._next)
        now = self._clock.now_ns()
        count = int(np.searchsorted(block.arrival_ns[local : local + limit], now, side="right"))
        if count == 0:
            return None
        out = block.frame.iloc[local : local + count].reset_index(drop=True)
        self._next += count
        if self._next % BLOCK == 0:
            # The carry (largest event time so far) is what the next block needs to label late events.
            self._carry = block.carry
            self._block = None
        return out

    def next_ready_ns(self) -> int | None:
        """Processing time at which the next event arrives; None when done."""
        if self.done:
            return None
        block, local = self._current_block()
        return int(block.arrival_ns[local])

    def snapshot(self) -> dict[str, Any]:
        """Picklable position: events returned so far, the stream's start and the block's carry."""
        return {
            "source": self._source.spec(),
            "start_ns": self._start_ns,
            "next": self._next,
            "carry": self._carry,
        }

    def lag(self) -> int | None:
        """Events that have arrived but were not returned yet (estimated beyond the current block)."""
        if self.done:
            return 0
        now = self._clock.now_ns()
        block, local = self._current_block()
        due = int(np.searchsorted(block.arrival_ns[local:], now, side="right"))
        if due == BLOCK - local:
            block_end = int(block.arrival_ns[-1])
            due += max(0, int((now - block_end) * self._source.events_per_second / NS))
        if self._source.n is not None:
            due = min(due, self._source.n - self._next)
        return due

    def close(self) -> None:
        """Drop the cached block."""
        self._block = None


def register_spec_kinds(
    register_source: Callable[[str, SourceFactory], None], register_sink: Callable[[str, SinkFactory], None]
) -> None:
    """Teach ``Pipeline.from_yaml`` the ``synthetic`` source kind (called by ``streamlab.spec``).

    Parameters
    ----------
    register_source
        ``register_source(kind, factory)``; ``factory(**params)`` returns a source.
    register_sink
        The same for sinks (this package has none).

    Examples
    --------
    >>> kinds = {}
    >>> register_spec_kinds(kinds.__setitem__, kinds.__setitem__)
    >>> kinds["synthetic"](generator="iot", n=3).spec()["n"]
    3
    """
    register_source("synthetic", lambda **params: SyntheticSource.from_spec({"kind": "synthetic", **params}))
