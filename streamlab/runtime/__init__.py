"""The in-process runtime: runs a pipeline graph over micro-batches (``run``, ``start``).

Contract: a source batch is pushed through every step to the sinks; at each commit point (every
``commit_every`` of processing time, at the end, and on stop) every sink is flushed, the state snapshot
is saved (to ``checkpoint_dir`` when given), the sinks publish what they staged, and only then are the
sources told to commit their positions, so a restart neither loses nor repeats sink data.

Delivery details: upserting sinks are idempotent, and appending sinks (files, tables without a key) drop
on resume what was written after the checkpoint. A position is committed upstream (a Kafka offset, a
Pub/Sub ack, a Kinesis checkpoint file) only once everything derived from it is in a sink or in a saved
checkpoint: a run of such a source without ``checkpoint_dir`` keeps its checkpoints in a default
directory per pipeline (``streamlab._checkpoint.default_checkpoint_dir``). Outputs that no step reads
(for example a dead-letter output without a sink) are collected up to ``max_collect_rows`` rows each
(the newest), never saved in checkpoints; rows dropped are counted in the metrics.

Working ahead: when a source feeds alone a step that can work ahead (``Operator.works_ahead``: the parse
step) and batches are large, the run owns one worker thread in which the next batch is started while
the steps after it work on the previous batch. Batches are still delivered in order, and everything
read is delivered before a commit, a flush or a stop, so results and committed positions do not change;
the worker ends with the run.

The parts, one job each: ``options`` (:class:`RunOptions`), ``metrics`` (:class:`RunMetrics`),
``result`` (:class:`RunResult`, the collector), ``_commit`` (checkpoints and commit order),
``_router`` (delivery along the graph), ``_ahead`` (working ahead), ``_executor`` (one run's parts),
``_drive`` (the one drive loop), ``_run`` (``run``), ``handle`` (:class:`RunHandle`, ``start``),
``_shutdown`` (SIGTERM and exit hooks), ``_progress`` (the progress bar), ``_tail`` (a background run's
newest rows of each stream with a sink, which live views made late replay).

Examples
--------
>>> from streamlab import ManualClock, Pipeline
>>> from streamlab.testing import ListSource
>>> run(Pipeline(ListSource([{"x": 1}])), RunOptions(clock=ManualClock(0))).status
'finished'
"""

from streamlab.runtime._executor import Executor, open_runs
from streamlab.runtime._run import run
from streamlab.runtime.handle import RunHandle, start
from streamlab.runtime.metrics import RunMetrics, StepMetrics
from streamlab.runtime.options import RunOptions
from streamlab.runtime.result import RunResult

__all__ = [
    "Executor",
    "RunHandle",
    "RunMetrics",
    "RunOptions",
    "RunResult",
    "StepMetrics",
    "open_runs",
    "run",
    "start",
]
