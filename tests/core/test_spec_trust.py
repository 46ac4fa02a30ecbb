"""A spec is data: code in it (function source, SQL with side effects, stdlib functions) runs only with
trust=True, and the refusal names what would run and where."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from streamlab import Pipeline
from streamlab.errors import SpecError, UntrustedSpecError


def spec(tmp_path: Path, step: str) -> str:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1", "x": 5, "timestamp": "2024-01-01T00:00:00Z"}\n')
    return f"""
streaming:
  sources:
    - {{step_id: events, kind: replay, path: {events}}}
  processing:
{step}
"""


def test_function_source_does_not_run_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"import pathlib\\npathlib.Path({str(marker)!r}).write_text('ran')\\ndef keep(batch):\\n    return batch['x'] > 1\\n"
    text = spec(tmp_path, f'    - {{step_id: f, kind: filter, input: events, fn: {{source: "{source}"}}}}')
    with pytest.raises(UntrustedSpecError) as e:
        Pipeline.from_yaml(text)
    msg = str(e.value)
    assert "streaming.processing[0] (step 'f').fn.source" in msg and "import pathlib" in msg
    assert "trust=True" in msg and "ref:" in msg
    assert not marker.exists()
    p = Pipeline.from_yaml(text, trust=True)
    assert marker.exists() and "f" in p.steps


def test_lambda_round_trip_needs_trust() -> None:
    from streamlab.functions import UserFunction

    f = UserFunction.of(lambda e: e["x"] > 1)
    with pytest.raises(ValueError, match="untrusted"):
        UserFunction.from_spec(f.spec())
    assert UserFunction.from_spec(f.spec(), trust=True)({"x": 2})


def test_functions_by_import_path_need_no_trust_but_stdlib_ones_do(tmp_path: Path) -> None:
    ok = spec(
        tmp_path,
        "    - {step_id: f, kind: filter, input: events, fn: {ref: 'tests.core.test_spec_trust:keep'}}",
    )
    assert "f" in Pipeline.from_yaml(ok).steps
    bad = spec(
        tmp_path, "    - {step_id: f, kind: map, input: events, per_event: true, fn: {ref: 'os:system'}}"
    )
    with pytest.raises(UntrustedSpecError, match=r"fn\.ref.*'os:system'"):
        Pipeline.from_yaml(bad)


def keep(batch):  # referenced by the spec above
    return batch["x"] > 1


@pytest.fixture
def ref_db(tmp_path: Path) -> Path:
    db = tmp_path / "ref.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table users as select 'u1' as user_id, 'gold' as tier")
    con.close()
    return db


@pytest.mark.parametrize(
    "query",
    [
        "copy (select 42) to '{out}'",
        "select 1; copy (select 42) to '{out}'",
        "attach '{out}' as other",
        "install httpfs",
        "create table t2 as select 1",
        "pragma version",
    ],
)
def test_enrich_sql_with_side_effects_is_refused_before_it_runs(
    tmp_path: Path, ref_db: Path, query: str
) -> None:
    out = tmp_path / "written.csv"
    table = f"duckdb:{ref_db}:{query.format(out=out)}"
    text = spec(
        tmp_path, f'    - {{step_id: e, kind: enrich, input: events, "on": [user_id], table: "{table}"}}'
    )
    with pytest.raises(UntrustedSpecError, match=r"processing\[0\] \(step 'e'\)\.table.*read-only SELECT"):
        Pipeline.from_yaml(text)
    assert not out.exists()


def test_read_only_select_runs_sandboxed_without_trust(tmp_path: Path, ref_db: Path) -> None:
    text = spec(
        tmp_path,
        f'    - {{step_id: e, kind: enrich, input: events, on: [user_id], table: "duckdb:{ref_db}:select * from users"}}',
    )
    p = Pipeline.from_yaml(text)
    assert p.steps["e"].params()["table"].endswith("select * from users")  # type: ignore[attr-defined]
    assert p.steps["e"].table["tier"].tolist() == ["gold"]  # type: ignore[attr-defined]
    # a SELECT that reads another file is stopped by the sandbox, and reported with its path
    secret = tmp_path / "other.csv"
    secret.write_text("a\n1\n")
    sneaky = spec(
        tmp_path,
        f"    - {{step_id: e, kind: enrich, input: events, on: [user_id], "
        f"table: \"duckdb:{ref_db}:select * from read_csv('{secret}')\"}}",
    )
    with pytest.raises(SpecError, match=r"processing\[0\] \(step 'e'\).*(Permission|disabled)"):
        Pipeline.from_yaml(sneaky)
    assert "tier" in Pipeline.from_yaml(text, trust=True).steps["e"].table  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "expr",
    ["x.to_csv('{out}') > 0", "x.__class__.__name__ == 'x'", "x.to_pickle('{out}') > 0"],
)
def test_expressions_that_could_do_more_than_compute_need_trust(tmp_path: Path, expr: str) -> None:
    out = tmp_path / "written"
    e = expr.format(out=out)
    for step in (
        f'    - {{step_id: f, kind: filter, input: events, expr: "{e}"}}',
        f'    - {{step_id: f, kind: map, input: events, columns: {{y: "{e}"}}}}',
    ):
        with pytest.raises(
            UntrustedSpecError, match=r"step 'f'\)\.(expr|columns\.y).*could do more than compute"
        ):
            Pipeline.from_yaml(spec(tmp_path, step))
    assert not out.exists()


def test_computing_expressions_need_no_trust(tmp_path: Path) -> None:
    text = spec(
        tmp_path,
        "    - {step_id: f, kind: filter, input: events, expr: \"x > 1 and user_id.str.startswith('u')\"}",
    )
    assert "f" in Pipeline.from_yaml(text).steps
