"""Dedup is one rule (``streamlab._record.Dedup``): the runtime, the Beam module and the Lambda handler
pass and drop the same rows, with ``ttl`` and ``max_ids``, on disordered streams with repeats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._record import Dedup
from streamlab.export import to_beam, to_lambda
from streamlab.export.verify import load_module, run_beam, run_local
from streamlab.testing import ListSource

from ._samples import BASE_MS, iso

SCHEMA = {"event_id": "string", "n": "int64", "timestamp": "timestamp"}


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], str, int]:
    """Records ``{event_id, n, timestamp}`` with few ids (many repeats) and disorder."""
    count = draw(st.integers(1, 40))
    ids = draw(st.lists(st.sampled_from("abcdefg"), min_size=count, max_size=count))
    times = draw(st.lists(st.integers(0, 120), min_size=count, max_size=count))
    lines = []
    for n, (i, t) in enumerate(zip(ids, times)):
        event: dict[str, Any] = {"event_id": i, "n": n, "timestamp": iso(BASE_MS + t * 1000)}
        lines.append(json.dumps(event).encode())
    ttl = draw(st.sampled_from(["5s", "20s", "1m"]))
    max_ids = draw(st.integers(1, 6))
    return lines, ttl, max_ids


def pipeline(ttl: str, max_ids: int) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="dedup_parity")
    events = p.parse(SCHEMA, required=["event_id", "n"]).dedup("event_id", ttl=ttl, max_ids=max_ids)
    # one count per passed row: the window's keys name it; nothing is late within a day's delay
    events.window(TumblingWindow("1d"), key=["event_id", "n"], delay="1d").agg(agg.count())
    return p


_HANDLERS: dict[tuple[str, int], Any] = {}


def handler(p: Pipeline, ttl: str, max_ids: int, base: Path) -> Any:
    """The generated Lambda module of ``pipeline(ttl, max_ids)``, exported once per setting."""
    if (ttl, max_ids) not in _HANDLERS:
        _HANDLERS[ttl, max_ids] = load_module(to_lambda(p, base / f"{ttl}-{max_ids}").module)
    return _HANDLERS[ttl, max_ids]


def passed(frame: Any) -> list[int]:
    return sorted(int(n) for n in frame["n"]) if len(frame) else []


def lambda_passed(module: Any, lines: list[bytes], per_invocation: int) -> tuple[list[int], int]:
    """The handler's per-record path over invocations of ``per_invocation`` records, its state carried
    through JSON between them as Lambda carries it."""
    import base64

    state = module.load_state(None)
    for i in range(0, len(lines), per_invocation):
        records = [
            {"kinesis": {"data": base64.b64encode(x).decode(), "sequenceNumber": str(i + j)}}
            for j, x in enumerate(lines[i : i + per_invocation])
        ]
        state, side = module.run_records(records, state)
        assert side == []
        state = module.load_state(json.loads(json.dumps(module.dump_state(state))))
    closed = module.close_windows(state, True)
    return sorted(json.loads(key)[1] for _, key, _ in closed), state["counts"].get("dedup.duplicates", 0)


@settings(max_examples=30, deadline=None)
@given(stream=streams(), batch=st.integers(1, 7))
def test_runtime_and_lambda_drop_the_same_rows(
    stream: tuple[list[bytes], str, int], batch: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lines, ttl, max_ids = stream
    p = pipeline(ttl, max_ids)
    local = run_local(p, lines, batch_size=batch)
    module = handler(p, ttl, max_ids, tmp_path_factory.getbasetemp())
    rows, duplicates = lambda_passed(module, lines, batch)
    assert rows == passed(local["window"])
    assert duplicates == len(local.get("dedup.duplicates", []))
    # and the rule alone, record by record, is the oracle for both
    rule = Dedup(p.steps["dedup"].ttl_ns, max_ids)  # type: ignore[attr-defined]
    events = [json.loads(x) for x in lines]
    expected = [e["n"] for e in events if not rule.is_duplicate(e["event_id"], _ns(e["timestamp"]))]
    assert rows == sorted(expected)


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(stream=streams())
def test_runtime_beam_and_lambda_drop_the_same_rows(
    stream: tuple[list[bytes], str, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lines, ttl, max_ids = stream
    p = pipeline(ttl, max_ids)
    local = run_local(p, lines)
    beam_out = run_beam(load_module(to_beam(p, tmp_path_factory.mktemp("beam")).module), lines)
    lambda_rows, _ = lambda_passed(
        load_module(to_lambda(p, tmp_path_factory.mktemp("lambda")).module), lines, 3
    )
    assert passed(beam_out["window"]) == passed(local["window"]) == lambda_rows
    assert passed(beam_out.get("dedup.duplicates", [])) == passed(local.get("dedup.duplicates", []))


def test_a_forgotten_id_passes_again_and_max_ids_forgets_the_oldest(tmp_path: Path) -> None:
    lines = [
        json.dumps({"event_id": i, "n": n, "timestamp": iso(BASE_MS + t * 1000)}).encode()
        for n, (i, t) in enumerate(
            [("a", 0), ("a", 4), ("b", 10), ("a", 11), ("c", 12), ("d", 13), ("b", 14)]
        )
    ]
    p = pipeline("5s", 2)
    # a@4 repeats a@0; b@10 moves the watermark past a's ttl, so a@11 passes; c and d push b out
    assert passed(run_local(p, lines)["window"]) == [0, 2, 3, 4, 5, 6]
    module = load_module(to_lambda(p, tmp_path).module)
    assert lambda_passed(module, lines, 2) == ([0, 2, 3, 4, 5, 6], 1)


def _ns(text: str) -> int:
    from streamlab._record import iso_to_ns

    value = iso_to_ns(text)
    assert value is not None
    return value
