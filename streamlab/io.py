"""Source and sink contracts.

A :class:`Source` is frozen configuration; ``open()`` returns a :class:`SourceReader` that yields
``pandas.DataFrame`` micro-batches without blocking and can ``snapshot()`` its position. The runtime
calls ``commit(position)`` only after every sink has flushed the data derived from that position.
A :class:`Sink` is configuration too; ``open()`` returns a :class:`SinkWriter` taking
``write_batch(batch)``; data is durable once ``flush()`` returns. Writers that cannot upsert make each
commit exactly once with ``snapshot()`` (saved in the checkpoint), ``commit()`` (after the checkpoint)
and ``restore(state)`` (on resume: drop what was written after that checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from streamlab.clock import Clock, SystemClock
from streamlab.errors import closest

__all__ = ["Sink", "SinkWriter", "Source", "SourceReader", "Upstream"]


class SourceReader:
    """Runtime side of a source: an open connection or file position.

    Examples
    --------
    >>> from streamlab.sources import ListSource
    >>> reader = ListSource([{'x': 1}]).open()
    >>> reader.poll(10)['x'].tolist(), reader.done, reader.snapshot()
    ([1], True, {'position': 1})
    """

    def poll(self, max_events: int) -> pd.DataFrame | None:
        """Return up to ``max_events`` new events, or ``None`` when nothing is ready now.

        Must return within a short time (tens of milliseconds at most); never blocks indefinitely.
        """
        raise NotImplementedError

    @property
    def done(self) -> bool:
        """True once a bounded source has returned its last batch. Unbounded sources: always False."""
        return False

    def next_ready_ns(self) -> int | None:
        """Processing time (ns) at which the next events are due, when known (replays); else None."""
        return None

    def snapshot(self) -> Any:
        """Picklable position covering everything returned by ``poll`` so far."""
        return None

    def commit(self, position: Any) -> None:
        """Sinks hold all data derived from events up to ``position``: commit offsets / ack messages."""

    def lag(self) -> int | None:
        """Events known to be waiting upstream (consumer lag), when the source can tell."""
        return None

    def partitions(self) -> list[Any] | None:
        """The partitions this reader is assigned, as they appear in its batches' partition columns.

        A window step with per-partition watermarks holds its watermark back until each assigned
        partition has produced an event, as Flink's Kafka source does. ``None``: not known.
        """
        return None

    def set_speed(self, speed: float | None) -> None:
        """Replay at ``speed`` times event time from now on (``None``: as fast as possible).

        Called by ``RunHandle.set_speed``; sources that do not replay ignore it (the default).
        """

    def on_resume(self) -> None:
        """The run continues after ``RunHandle.pause``: a replay re-anchors its pace (default: nothing)."""

    def close(self) -> None:
        """Release connections. Called once, after the final commit."""


class Source:
    """Frozen description of where events come from.

    Examples
    --------
    >>> import pandas as pd
    >>> class CountingSource(Source):
    ...     def open(self, resume=None, clock=None):
    ...         class Reader(SourceReader):
    ...             n = resume or 0
    ...             def poll(self, max_events):
    ...                 self.n += 1
    ...                 return pd.DataFrame({'i': [self.n]})
    ...             def snapshot(self):
    ...                 return self.n
    ...         return Reader()
    >>> CountingSource().open(resume=41).poll(10)['i'].tolist()
    [42]
    """

    #: Column names and dtypes this source produces, when known (used to check steps early).
    columns: tuple[str, ...] | None = None

    @property
    def commits_upstream(self) -> bool:
        """True when ``commit`` stores positions outside this process (broker offsets, acks, a file).

        A run of such a source without ``checkpoint_dir`` keeps its checkpoints in a default directory,
        so that nothing is acknowledged while it lives only in memory (see ``streamlab.runtime``).
        """
        return False

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        """Start reading; ``resume`` is a value returned by ``SourceReader.snapshot()``."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """A YAML-ready description (``kind`` plus parameters) for ``Pipeline.to_yaml``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be written to YAML")


class SinkWriter:
    """Runtime side of a sink.

    Examples
    --------
    >>> from streamlab.sinks import ListSink
    >>> writer = ListSink().open()
    >>> writer.write_batch(pd.DataFrame({'x': [1]}))
    >>> writer.flush()
    """

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Take one batch. May buffer; the data must be durable after :meth:`flush`."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far durable."""

    def snapshot(self) -> Any:
        """Picklable position of the output after the last :meth:`flush`, saved in the checkpoint.

        Writers that append (files, tables without a key) return where the output ended, so that
        :meth:`restore` can drop what a commit wrote when its checkpoint never landed.
        """
        return None

    def commit(self) -> None:
        """The checkpoint covering everything flushed is saved: make it visible (publish staged data)."""

    def restore(self, state: Any) -> None:
        """Called once after ``open``: ``state`` is :meth:`snapshot` from the checkpoint resumed, or None.

        Drop whatever was written after that checkpoint (a crash between the flush and the checkpoint),
        so the replayed events are not written twice. ``None``: no checkpoint; discard staged leftovers.
        """

    def close(self) -> None:
        """Flush and release resources."""
        self.flush()

    def interrupt(self) -> None:
        """A stop was asked for (``handle.stop()``, an interrupt, SIGTERM), perhaps while this writer
        waits (to retry a service that is down, for a rate-limit slot): stop waiting, and let
        :meth:`flush` fail for what was not written (the sources are not committed past it; a restart
        writes it), so the stop returns soon. Called from another thread or a signal handler; by
        default nothing (a writer whose every wait is short and bounded)."""


@dataclass(frozen=True)
class Upstream:
    """What a sink's writer is told about the stream it writes (``Sink.open_for``), per pipeline.

    ``window_keys``: the window step's key columns when the stream is a window's results, else ``None``:
    the results themselves, or what follows them through steps that keep or drop rows and keep those
    columns and the window bounds (``filter``, ``with_columns``, ``select``, ...; see
    :func:`streamlab.pipeline.window_rows`), the keys under their names in the stream.
    ``window_reshaped_by``: when window results reach the stream through a step that may reshape rows
    (``map_one``, ``map_many``, ``detect``, a union...), that step's id; the window columns then do not
    identify a row, which a sink that upserts says at construction.
    ``json_columns``: the columns declared ``json`` or ``object`` by a parse upstream (any JSON value, or
    a JSON object), or a window's ``first``/``last`` of one: a sink with typed columns stores them as
    JSON whatever one batch's values look like.
    ``declared``: ``(column, type)`` of each column whose type is known (``"bool"``, ...): a parsed
    field, or a column a step adds whose type it declares (a window's results, a rule's ``rule``; see
    :func:`streamlab._coltypes.declared_type`), so a sink types a column the same when a batch holds
    none of its values.
    ``columns``: the stream's column names when known at construction (``None`` when a user function
    hides them), so a sink that received no rows can still show them.
    ``repeats_ids``: the stream may hold one event several times (a ``.duplicates``, ``.late`` or
    ``.dead_letter`` output, or downstream of an interval join, an enrich or a union of overlapping
    streams), so ``event_id`` does not identify its rows.

    Examples
    --------
    >>> Upstream(window_keys=("user_id",))
    Upstream(window_keys=('user_id',), window_reshaped_by=None, json_columns=(), declared=(), repeats_ids=False, columns=None)
    """

    window_keys: tuple[str, ...] | None = None
    window_reshaped_by: str | None = None
    json_columns: tuple[str, ...] = ()
    declared: tuple[tuple[str, str], ...] = ()
    repeats_ids: bool = False
    columns: tuple[str, ...] | None = None


class Sink:
    """Frozen description of where results go.

    Examples
    --------
    >>> class PrintSink(Sink):
    ...     def open(self, clock=None):
    ...         class Writer(SinkWriter):
    ...             def write_batch(self, batch):
    ...                 print(len(batch), 'rows')
    ...         return Writer()
    >>> PrintSink().open().write_batch(pd.DataFrame({'x': [1, 2]}))
    2 rows
    """

    def open(self, clock: Clock | None = None) -> SinkWriter:
        """Open the destination."""
        raise NotImplementedError

    def open_for(self, upstream: Upstream, clock: Clock | None = None) -> SinkWriter:
        """Open the destination for a run writing ``upstream``; the runtime calls this.

        The sink stays configuration: whatever a run learns about its input goes to the writer.
        The default ignores ``upstream`` and calls :meth:`open`.
        """
        return self.open(clock)

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """What is wrong with writing a stream of ``columns`` here, as ``(problem, fix)``, or None.

        ``Stream.to`` calls it when the stream's columns are known, so a sink that needs a column the
        stream does not have is a :class:`~streamlab.errors.PipelineConfigError` naming the sink step,
        not an error on the first batch. The default accepts any columns.

        Examples
        --------
        >>> Sink().columns_problem(["x"], Upstream()) is None
        True
        """
        return None

    def construction_warnings(self, columns: list[str] | None, upstream: Upstream) -> list[str]:
        """What ``Stream.to`` warns about when this sink is attached to a stream of ``columns`` (None
        when unknown) described by ``upstream``: something that works, but perhaps not as the user
        expects (a sink that upserts window results appending them instead). The default: nothing.

        Examples
        --------
        >>> Sink().construction_warnings(["x"], Upstream())
        []
        """
        return []

    def destinations(self) -> tuple[tuple[str, str | None], ...]:
        """Where the sink writes, as ``(path, table)`` pairs: a file or directory (its real path, see
        :func:`file_destination`) and a table in it, or ``None`` for the whole file or directory.

        A pipeline refuses two sink steps whose destinations meet (the same file, the same table of a
        database file, or one inside the other's directory, :func:`destinations_meet`): their writers
        would overwrite each other's files, or truncate them on resume. The default: none (a sink that
        only appends to a service, or keeps rows in memory).

        Examples
        --------
        >>> Sink().destinations()
        ()
        """
        return ()

    def spec(self) -> dict[str, Any]:
        """A YAML-ready description (``kind`` plus parameters)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be written to YAML")


def publish_now(writer: SinkWriter, batch: pd.DataFrame) -> None:
    """Write ``batch`` with ``writer`` and publish it at once (write, flush, commit), outside the runtime's
    checkpoints: how a sink hands the rows it refused to its dead-letter sink, and a source its bad
    records, before the position past them is committed.

    Examples
    --------
    >>> from streamlab.sinks import ListSink
    >>> sink = ListSink()
    >>> publish_now(sink.open(), pd.DataFrame({"reject_reason": ["too long"]}))
    >>> sink.frame()["reject_reason"].tolist()
    ['too long']
    """
    writer.write_batch(batch)
    writer.flush()
    writer.commit()


def file_destination(path: str | os.PathLike[str]) -> str:
    """``path`` as :meth:`Sink.destinations` gives it: absolute, symbolic links and ``..`` resolved, so two
    spellings of one file compare equal.

    Examples
    --------
    >>> import os
    >>> file_destination("out/../out/parts") == os.path.realpath("out/parts")
    True
    """
    return os.path.realpath(os.fspath(path))


def destinations_meet(a: tuple[str, str | None], b: tuple[str, str | None]) -> bool:
    """Whether two sink destinations (``(path, table)``, see :meth:`Sink.destinations`) overlap: the same
    path with the same table or a whole file, or one path inside the other (a directory).

    Examples
    --------
    >>> destinations_meet(("/d/db", "a"), ("/d/db", "b")), destinations_meet(("/d/db", "a"), ("/d/db", "a"))
    (False, True)
    >>> destinations_meet(("/d", None), ("/d/x.jsonl", None)), destinations_meet(("/d", None), ("/dx", None))
    (True, False)
    """
    (pa, ta), (pb, tb) = a, b
    if pa == pb:
        return ta is None or tb is None or ta == tb
    return pb.startswith(pa.rstrip(os.sep) + os.sep) or pa.startswith(pb.rstrip(os.sep) + os.sep)


def missing_columns_problem(
    what: str, needed: Iterable[str], columns: list[str], fix: str
) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``what`` needs columns of ``needed`` that ``columns`` lacks, else None;
    the problem names them and the stream's columns, the fix suggests close names first.

    Examples
    --------
    >>> missing_columns_problem("key_template='m:{evnt}'", ["evnt"], ["event", "n"], "name columns of the stream")
    ("key_template='m:{evnt}' names column(s) ['evnt'] that the stream does not have (its columns: ['event', 'n']); the first write would fail", "did you mean ['event']? name columns of the stream")
    >>> missing_columns_problem("fields=['n']", ["n"], ["n"], "") is None
    True
    """
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if not missing:
        return None
    near = [n for n in (closest(c, columns) for c in missing) if n is not None]
    return (
        f"{what} names column(s) {missing} that the stream does not have (its columns: {list(columns)}); "
        "the first write would fail",
        (f"did you mean {near}? " if near else "") + fix,
    )


def default_clock(clock: Clock | None) -> Clock:
    """The clock to use when none was injected.

    Examples
    --------
    >>> default_clock(None)
    SystemClock()
    """
    return clock if clock is not None else SystemClock()
