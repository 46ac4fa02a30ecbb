"""Detector, feature, rule and drift steps (and ``with_columns``) in the Spark export.

Each such step runs streamlab's own per-record state machine (``make_step``: the code of
``streamlab._detector_record``, carried into the generated module) inside ``applyInPandasWithState``:
rows are grouped by the step's state key (:func:`streamlab.export._detectors.state_key`; one group
for a step whose state spans all keys), each group's rows of a micro-batch are **sorted by their
arrival sequence** and fed to the machine one by one, and the machine is pickled into the key's
``GroupState`` after every micro-batch.

Arrival sequence: Spark does not keep the order of rows within a micro-batch once it shuffles them
(every ``groupBy`` does), while streamlab's score-then-learn models, windows and LRUs depend on it. The
parse step therefore stamps each row with two columns that travel with it and are dropped before
writing: ``_src`` (where it came from) and ``_seq`` (its place there). For files, ``_src`` is the file's
modification time and path (the order the file source reads files in) and ``_seq`` the line number;
for Kafka, ``_src`` is the partition and ``_seq`` the offset (Kafka orders a partition, not a topic:
a step whose state spans partitions sees each micro-batch partition by partition); for Kinesis the
shard and sequence number; Pub/Sub has no order (publish time is used).

Each step's output has a declared schema derived from its definition (the input's columns plus the
score, flag, feature or count columns it adds: :func:`streamlab.export._detectors.output_types`); one
``applyInPandasWithState`` returns every output of the step tagged with ``_output``, and the step's
``out``, ``dead_letter`` and ``drift`` streams select their rows from it.

Examples
--------
>>> types = {"a": "float64", "ok": "bool"}
>>> with_columns_types(types, (("b", "a * 2"), ("both", "ok & ok"), ("a2", "a")))
{'a': 'float64', 'ok': 'bool', 'b': 'float64', 'both': 'bool', 'a2': 'float64'}
"""

from __future__ import annotations

from streamlab.export._plan import with_columns_types  # shared with every exporter

__all__ = ["GROUP_FUNCTIONS", "SEMANTICS", "with_columns_types"]

SEMANTICS = """* Detectors, features, rules and drift run streamlab's own per-record state machine (``make_step``:
  the code of ``streamlab._detector_record``, copied below) in ``applyInPandasWithState``, grouped by
  the step's state key: a step whose state splits by key (features, a detect step with ``key`` and a
  fixed or per-key threshold) per key, the others (an unkeyed detect step, one whose quantile
  threshold learns from every key, a drift detector) in one group. Split by key, a key's history is
  kept against its own newest event (streamlab: the whole stream's), so results differ only for events
  later than ``allowed_lateness`` behind the stream; ``max_keys`` and ``key_ttl`` bound each key alone.
* Order: rows carry their arrival sequence (``_src``, ``_seq``: file and line, Kafka partition and
  offset) and each group's rows of a micro-batch are sorted by it before the machine sees them, so a
  key is scored in arrival order although Spark shuffles rows. Micro-batches follow each other in
  order. Kafka orders partitions, not topics: a one-group step sees a micro-batch partition by
  partition (key the topic by the step's key, or give it one partition, for streamlab's order).
* State: the machine (river models, histories, thresholds) is pickled into the group's state after
  each micro-batch, checkpointed in Spark's state store with the query. A state value is held in
  memory as one row: there is no per-item limit as in DynamoDB, but a large model is copied on every
  micro-batch that touches its key, and a one-group step holds every key's model in one row (use
  the RocksDB state store provider, ``spark.sql.streaming.stateStore.providerClass``, for many keys).
* Spark allows one ``applyInPandasWithState`` per query, so a run of these steps (with the
  with_columns, filter and select steps after them) shares one, and one query writes all its outputs
  (``write_tagged``: each micro-batch split by ``_output``). A window, dedup, join or pattern after
  such a step is refused at export time. The end-of-input row stops before these steps.
* ``with_columns`` evaluates its expressions with pandas on each Arrow batch (``mapInArrow``, as
  streamlab does on its batches); a batch it fails on is evaluated row by row and the failing rows go
  to its ``dead_letter``. The end-of-input row passes it unevaluated, so a window after it closes.
  An expression that reads a ``json`` or ``object`` field (held as JSON text) is evaluated row by row on
  the field's values read back, as streamlab computes each row of such a field, and a column computed
  from one is held as JSON text (``json_reads``).
"""

GROUP_FUNCTIONS = '''

def spark_rows(frame, timestamps):
    """Rows of a pandas frame from Spark as the per-record code takes them: times as aware UTC datetimes
    (Spark hands them without a zone), missing times None, in arrival order (``_src``, ``_seq``)."""
    import pandas as pd

    if "_src" in frame.columns:
        frame = frame.sort_values(["_src", "_seq"], kind="stable")
    for c in timestamps:
        if c in frame.columns:
            frame[c] = pd.to_datetime(frame[c], utc=True).astype(object).where(frame[c].notna(), None)
    return frame.to_dict("records")


def spark_frame(rows, columns, timestamps):
    """Output rows as a frame of the declared columns (times as UTC datetimes; a column without a value
    as Python None).

    pandas infers float NaN for a column without a value (a ``with_columns`` batch without dead letters
    has no ``reason``), and PySpark's pandas-to-Arrow conversion (``mapInPandas``,
    ``applyInPandasWithState``) of such a column declared STRING fails the query with ``TypeError:
    Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array``; None of dtype object it converts to
    nulls of any type."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    for c in timestamps:
        frame[c] = pd.to_datetime(frame[c], utc=True)
    for c in frame.columns:
        if c not in timestamps and not frame[c].notna().any():
            frame[c] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame


def json_text(value):
    """A value computed from a json or object field as the job holds it: its JSON text (None when missing:
    None, NaN, pandas' NA)."""
    if value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType":
        return None
    return json.dumps(value)


def eval_columns(rows, exprs, what, step_id, numeric=(), typed=(), decode=(), encode=(), apart=False):
    """``with_columns`` on rows: the expressions with pandas on all of them, one after the other (as
    streamlab on a batch); if that fails, row by row as streamlab reads one row (``eval_expr``, with
    ``numeric`` and ``typed`` columns: a text joined with ``+`` to a string constant, say, which pandas'
    ``eval`` refuses on a column). Returns (rows, dead letters).

    Row by row only (``apart``) where the rows hold an int64 field with a missing value (Python ints and
    None, which pandas would make floats, rounded beyond 2**53; streamlab evaluates such rows apart and
    gives each the type of its column), and for expressions that read a json or object field
    (``decode``: the job holds them as JSON text), as streamlab computes each row of such a field, on
    the field's values read back; the columns computed from them (``encode``) are written as JSON text."""
    import pandas as pd

    def apply(part):
        frame = pd.DataFrame.from_records(part)
        for name, expr in exprs:
            frame[name] = frame.eval(expr, engine="python")
        return frame.to_dict("records")

    def apply_one(row):
        values = json_values(row, decode)
        for name, expr in exprs:
            values[name] = eval_expr(expr, values, numeric, typed)
        return [{**row, **{name: json_text(values[name]) if name in encode else values[name] for name, _ in exprs}}]

    if not rows:
        return [], []
    if not (decode or encode or apart):
        try:
            return apply(rows), []
        except Exception:
            pass
    out, dead = [], []
    for row in rows:
        try:
            out += apply_one(row)
        except Exception as e:
            dead.append({**row, "reason": f"{what} raised {type(e).__name__}: {e}", "step_id": step_id})
    return out, dead


def filter_rows(rows, expr, fn, what, step_id, numeric=(), typed=(), decode=()):
    """A filter on rows: an expression row by row as streamlab's filter reads it (``filter_keeps``: a
    missing string is a missing value of its type, a missing answer drops the row; json and object fields,
    ``decode``, read back from their JSON text), or a per-row function ``fn``; rows it fails on are dead
    letters. Returns (rows, dead letters)."""
    if not rows:
        return [], []
    predicate = fn
    if expr is not None:
        # a text column without a value in its group reaches here from pandas as NaN: it is a missing string
        texts = [c for c, kind in typed if kind in ("string", "category")]

        def predicate(row):
            missing = {c: None for c in texts if isinstance(row.get(c), float) and row[c] != row[c]}
            return filter_keeps(expr, json_values({**row, **missing} if missing else row, decode), numeric, typed)

    out, dead = [], []
    for row in rows:
        try:
            if bool(predicate(row)):
                out.append(row)
        except Exception as e:
            dead.append({**row, "reason": f"{what} raised {type(e).__name__}: {e}", "step_id": step_id})
    return out, dead


def run_segment(plan, wanted, columns, timestamps, state, frames):
    """``applyInPandasWithState`` body of a run of detector, feature, rule, drift, with_columns, filter
    and select steps, for one group: the group's rows of the micro-batch in arrival order through the
    steps in order (streamlab's per-record machines for the stateful ones, ``make_step``), the
    machines pickled into the group state after it. Rows of the ``wanted`` streams are returned, tagged
    with their stream in ``_output`` (drift rows' columns prefixed ``_drift_``)."""
    import base64

    import pandas as pd
    from pyspark import cloudpickle

    machines = cloudpickle.loads(base64.b64decode(state.get[0])) if state.exists else {}
    for machine in machines.values():
        machine.bind(eval_expr, to_ns, from_ns)
    streams = {"": spark_rows(pd.concat(list(frames), ignore_index=True), timestamps)}
    for sid, kind, source, conf in plan:
        rows = streams.get(source, [])
        if kind == "row":
            machine = machines.get(sid)
            if machine is None:
                machine = machines[sid] = make_step(conf, eval_expr, to_ns, from_ns)
            for name in ("out", "dead_letter", "drift"):
                streams[sid if name == "out" else f"{sid}.{name}"] = []
            for row in rows:
                for name, out in machine.process(row):
                    if name == "dead_letter":
                        out = {**out, "step_id": sid}
                    elif name == "drift":
                        out = {f"_drift_{k}": v for k, v in out.items()}
                        out.update(_src=row.get("_src"), _seq=row.get("_seq"))
                    streams[sid if name == "out" else f"{sid}.{name}"].append(out)
            continue
        dead = []
        if kind == "map":
            rows, dead = eval_columns(rows, **conf, step_id=sid)
        elif kind == "filter":
            fn = USER_FUNCTIONS[sid] if conf["expr"] is None else None
            rows, dead = filter_rows(rows, fn=fn, step_id=sid, **conf)
        elif kind == "select":
            rows = [{**{new: r.get(old) for old, new in conf}, "_src": r["_src"], "_seq": r["_seq"]} for r in rows]
        streams[sid], streams[sid + ".dead_letter"] = rows, dead
    state.update((base64.b64encode(cloudpickle.dumps(machines)).decode("ascii"),))
    tagged = [{**row, "_output": ref} for ref in wanted for row in streams.get(ref, [])]
    yield spark_frame(tagged, columns, timestamps)


def map_columns(batches, step_id, what, exprs, timestamps, columns, schema, time, **keywords):
    """``mapInArrow`` body of ``with_columns`` (not after a detector step): rows tagged ``_output``, as
    Arrow batches of ``schema`` (``keywords``: ``eval_columns``' ``numeric``, ``typed`` and, for
    expressions that read a json or object field, ``decode`` and ``encode``).

    END_OF_INPUT rows (``time`` at END_TIME) pass unevaluated, so that the watermark behind the step
    moves and a window after it closes its last windows at the end of a bounded input. Arrow, not
    ``mapInPandas``: Spark's conversion to pandas holds times in nanoseconds, which cannot reach
    END_TIME (the year 3000), so the row could not pass a ``mapInPandas`` step."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in batches:
        ends = []
        if time is not None and time in batch.schema.names:
            times = batch.column(time)
            is_end = pc.fill_null(pc.greater_equal(times, pa.scalar(END_TIME, type=times.type)), False)
            ends = batch.filter(is_end).to_pylist()
            batch = batch.filter(pc.invert(is_end))
        # the other rows through pandas, as Spark's mapInPandas would hand them (a missing number NaN);
        # an integer column with a missing value comes through pandas as float64, which rounds beyond
        # 2**53 (and fails the conversion back at 2**63 - 1): such a batch's rows hold the column's own
        # values (ints and None) and are evaluated row by row, as streamlab evaluates them, and its
        # integer columns go back to Arrow as those Python ints
        exact = {
            f.name: batch.column(f.name).to_pylist()
            for f in batch.schema
            if pa.types.is_integer(f.type) and batch.column(f.name).null_count
        }
        given = batch.to_pandas()
        for name, values in exact.items():
            given[name] = pd.Series(values, index=given.index, dtype=object)
        given = spark_rows(given, timestamps)
        rows, dead = eval_columns(given, exprs, what, step_id, apart=bool(exact), **keywords)
        tagged = [{**r, "_output": "out"} for r in rows] + [{**r, "_output": "dead_letter"} for r in dead]
        frame = spark_frame(tagged, columns, timestamps)
        if exact:
            for f in schema:
                if pa.types.is_integer(f.type) and f.name in frame.columns:
                    kept = [r.get(f.name) for r in tagged]
                    frame[f.name] = pd.Series(kept, index=frame.index, dtype=object)
        yield pa.RecordBatch.from_pandas(frame, schema=schema, preserve_index=False)
        if ends:  # straight to Arrow: pandas 2 holds times in nanoseconds, which cannot reach END_TIME
            yield pa.RecordBatch.from_pylist([{**r, "_output": "out"} for r in ends], schema=schema)
'''
