"""Lines of a file go to arrow as the file's own bytes (no re-join): the outcome equals the checked
per-record path's on every record, for random mixes of good and bad lines, line endings and batch sizes."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streamlab import ReplaySource
from streamlab import _lines as lines_module
from streamlab import sources as sources_module
from streamlab._parse import FieldSpec, ParseOperator

from .test_parse_fuzz import CHECKED, FAST, good, record

# json/object fields beside arrow's: read by arrow, then each record decoded once more for its Python
# values (nested paths, a path through a value that is not an object, two fields under one object)
NESTED = {
    **FAST,
    "props": {"type": "object", "path": "properties"},
    "page": {"type": "json", "path": "properties.page"},
    "deep": {"type": "json", "path": "extra.a.b"},
}
SCHEMAS = {
    "typed": FAST,
    "checked": CHECKED,
    "nested": NESTED,
    "one object": {**FAST, "extra": "object"},
}

LINE_DAMAGE = [b"", b"   ", b"\t", b"{}", b"not json", b'{"a":1}{"b":2}', b"\x00", b"\xff\xfe", b" {}"]
# records that are JSON objects by shape but not valid UTF-8, or text of more than one byte a character
BAD_TEXT = [
    b'{"event_id":"\xff","timestamp":"2024-01-01T00:00:00Z"}',
    b'{"event_id":"\xc3\xa9\xc3"}',
    b'{"event_id":"\xc3\xa9"}',
]


def outcome(op: ParseOperator, frame: pd.DataFrame, batch: int) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The parse step over ``frame`` (with an ``i`` column) cut into batches as a replay reader cuts it."""
    oks, dead = [], []
    for lo in range(0, len(frame), batch):
        out = op.process(frame.iloc[lo : lo + batch].reset_index(drop=True))
        oks.append(out["out"])
        if "dead_letter" in out:
            dl = out["dead_letter"]
            dead += list(zip(dl["i"].tolist(), dl["reason"].tolist(), dl["raw"].tolist()))
    ok = pd.concat(oks, ignore_index=True)
    ok["event_type"] = ok["event_type"].astype(object)
    return ok, dead


def checked(op: ParseOperator, values: list[bytes]) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Every record through the checked per-record path (``streamlab._record``), none through arrow."""
    good_rows: list = []
    bad: list = []
    frame = pd.DataFrame({"value": pd.Series(values, dtype=object), "i": range(len(values))})
    op._python_rows(values, np.arange(len(values)), good_rows, bad)
    out = op._assemble(frame, len(values), frame["value"], good_rows, bad)
    ok = out["out"]
    ok["event_type"] = ok["event_type"].astype(object)
    dl = out.get("dead_letter")
    dead = [] if dl is None else list(zip(dl["i"].tolist(), dl["reason"].tolist(), dl["raw"].tolist()))
    return ok, dead


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(
    nasty=st.lists(st.one_of(record(), st.sampled_from(LINE_DAMAGE)), min_size=0, max_size=10),
    n_good=st.integers(60, 160),
    rnd=st.randoms(use_true_random=False),
    crlf=st.sampled_from(["none", "all", "some"]),
    final_newline=st.booleans(),
    batch=st.integers(1, 200),
    schema=st.sampled_from(sorted(SCHEMAS)),
)
def test_file_lines_parse_as_the_checked_path_does(
    tmp_path, nasty: list[bytes], n_good: int, rnd, crlf: str, final_newline: bool, batch: int, schema: str
) -> None:
    records = [good(i) for i in range(n_good)] + nasty
    rnd.shuffle(records)
    ends = [b"\r\n" if crlf == "all" or (crlf == "some" and rnd.random() < 0.3) else b"\n" for _ in records]
    data = b"".join(r + e for r, e in zip(records, ends))
    if not final_newline:
        data = data[: -len(ends[-1])]
    path = tmp_path / f"events-{rnd.random()}.jsonl"
    path.write_bytes(data)
    source = ReplaySource(path, raw=True)
    values = source.frame["value"].tolist()  # (equal to a plain split: tests/core/test_replay_lines.py)
    op = ParseOperator(
        "parse", [FieldSpec.of(n, s) for n, s in SCHEMAS[schema].items()], "value", ("timestamp",), 1 << 20
    )
    frame = source.frame.assign(i=np.arange(len(source.frame)))
    got_ok, got_dead = outcome(op, frame, batch)
    want_ok, want_dead = checked(op, values)
    pd.testing.assert_frame_equal(got_ok, want_ok)
    assert got_dead == want_dead


def streamed(
    op: ParseOperator, path, batch: int, min_read: int, start: int
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The parse step over a replay of ``path`` read block by block (clean blocks as the file's bytes,
    :class:`streamlab._lines.LineArray`), resumed at line ``start``, as the runtime feeds it."""
    reader = sources_module._LinesReader(sources_module.LineBlocks(path, start, min_read=min_read), batch)
    oks, dead, pos = [], [], start
    while (frame := reader.poll(batch)) is not None:
        out = op.process(frame.assign(i=np.arange(pos, pos + len(frame))))
        pos += len(frame)
        oks.append(out["out"])
        if "dead_letter" in out:
            dl = out["dead_letter"]
            dead += list(zip(dl["i"].tolist(), dl["reason"].tolist(), dl["raw"].tolist()))
    reader.close()
    ok = (
        pd.concat(oks, ignore_index=True)
        if oks
        else op.process(pd.DataFrame({"value": [b"{}"], "i": [0]}).iloc[:0])["out"]
    )
    ok["event_type"] = ok["event_type"].astype(object)
    return ok, dead


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(
    nasty=st.lists(st.one_of(record(), st.sampled_from(LINE_DAMAGE + BAD_TEXT)), min_size=0, max_size=10),
    n_good=st.integers(60, 160),
    rnd=st.randoms(use_true_random=False),
    crlf=st.sampled_from(["none", "none", "some"]),
    final_newline=st.booleans(),
    batch=st.integers(1, 200),
    min_read=st.sampled_from([1, 100, 4096, 1 << 20]),
    start=st.integers(0, 80),
    schema=st.sampled_from(sorted(SCHEMAS)),
)
def test_lines_streamed_as_file_bytes_parse_as_the_checked_path_does(
    tmp_path, nasty, n_good, rnd, crlf, final_newline, batch, min_read, start, schema
) -> None:
    """Blocks handed over unsplit (and, where a block has other control bytes, split): every batch size,
    block size and resume position gives the checked path's rows and dead letters (exact raw bytes)."""
    records = [good(i) for i in range(n_good)] + nasty
    rnd.shuffle(records)
    ends = [b"\r\n" if crlf == "some" and rnd.random() < 0.1 else b"\n" for _ in records]
    data = b"".join(r + e for r, e in zip(records, ends))
    if not final_newline:
        data = data[: -len(ends[-1])]
    path = tmp_path / f"events-{rnd.random()}.jsonl"
    path.write_bytes(data)
    values = ReplaySource(path, raw=True).frame["value"].tolist()
    op = ParseOperator(
        "parse", [FieldSpec.of(n, s) for n, s in SCHEMAS[schema].items()], "value", ("timestamp",), 1 << 20
    )
    start = min(start, len(values))
    got_ok, got_dead = streamed(op, path, batch, min_read, start)
    want_ok, want_dead = checked(op, values[start:])
    pd.testing.assert_frame_equal(got_ok, want_ok.assign(i=want_ok["i"] + start))
    assert got_dead == [(i + start, why, raw) for i, why, raw in want_dead]


def test_a_clean_file_goes_to_arrow_as_its_own_bytes_and_is_forgotten_with_its_source(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(good(i) for i in range(500)) + b"\n")
    source = ReplaySource(path, raw=True)
    slices: list[bool] = []
    real = lines_module.file_slice

    def spy(arr):
        found = real(arr)
        slices.append(found is not None)
        return found

    monkeypatch.setattr("streamlab._parse.file_slice", spy)
    op = ParseOperator(
        "parse", [FieldSpec.of(n, s) for n, s in FAST.items()], "value", ("timestamp",), 1 << 20
    )
    got, _ = outcome(op, source.frame.assign(i=np.arange(500)), 128)
    assert slices == [True] * 4 and got["event_id"].tolist() == [f"g{i}" for i in range(500)]
    lines = pa.array(source.frame["value"], pa.binary())
    key = (lines.buffers()[2].address, lines.buffers()[1].address)
    assert key in lines_module._FILES
    del source, lines
    gc.collect()
    # the file's bytes go with the source (other tests' sources may go in the same collection)
    assert key not in lines_module._FILES


def test_an_object_field_holding_something_else_is_a_dead_letter_in_a_large_batch() -> None:
    """Arrow reads the other fields of these records; the object field's rule (a JSON object or
    nothing) is still the checked path's, with its reason, for one field at a key and for nested ones."""
    odd = {5: b'"text"', 17: b"3", 33: b"[1]", 60: b"true", 70: b"null"}
    records = [
        b'{"event_id":"g%d","timestamp":"2024-01-01T00:00:00Z","extra":%s}'
        % (i, odd.get(i, b'{"a":{"b":1}}'))
        for i in range(100)
    ]
    frame = pd.DataFrame({"value": pd.Series(records, dtype=object), "i": range(100)})
    for schema in (
        {"event_id": "string", "timestamp": "timestamp", "extra": "object"},
        {
            "event_id": "string",
            "timestamp": "timestamp",
            "b": {"type": "object", "path": "extra.a"},
            "x": "json",
        },
    ):
        op = ParseOperator(
            "parse", [FieldSpec.of(n, s) for n, s in schema.items()], "value", ("timestamp",), 1 << 20
        )
        got = op.process(frame)
        dead = dict(zip(got["dead_letter"]["i"].tolist(), got["dead_letter"]["reason"].tolist()))
        if "extra" in schema:
            assert sorted(dead) == [5, 17, 33, 60] and "expected a JSON object, got str" in dead[5]
            assert len(got["out"]) == 96
        else:  # "extra.a" of a non-object: the path runs through it
            assert sorted(dead) == [5, 17, 33, 60] and "expected an object at 'a'" in dead[5]
            assert got["out"]["b"].tolist()[:2] == [{"b": 1}, {"b": 1}]
