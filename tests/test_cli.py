"""The command line: ``streamlab demo`` and ``streamlab run spec.yaml``."""

from __future__ import annotations

import json

import duckdb

from streamlab.cli import main


def test_demo_writes_tables_and_report(tmp_path, capsys):
    db, report = tmp_path / "demo.duckdb", tmp_path / "report.html"
    assert main(["demo", "--db", str(db), "--report", str(report), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "late events" in out and "dead letters" in out
    con = duckdb.connect(str(db))
    n_windows = con.execute("select count(*) from window_counts").fetchall()[0][0]
    n_dead = con.execute("select count(*) from dead_letters").fetchall()[0][0]
    reasons = {r[0].split(":")[0] for r in con.execute("select reason from dead_letters").fetchall()}
    con.close()
    assert n_windows > 100 and n_dead > 50
    assert "invalid JSON" in reasons
    html = report.read_text()
    assert "plotly" in html and "late events per window" in html
    # a second run upserts: the same rows, not twice as many
    assert main(["demo", "--db", str(db), "--report", str(report), "--quiet"]) == 0
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from window_counts").fetchall()[0][0] == n_windows
    con.close()


def test_run_spec(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(
                {
                    "event_id": str(i),
                    "event_type": "ab"[i % 2],
                    "user_id": "u",
                    "properties": {},
                    "timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                }
            )
            for i in range(300)
        )
        + "\nbroken\n"
    )
    db = tmp_path / "out.duckdb"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
streaming:
  name: spec-demo
  sources:
    - {{step_id: events, kind: replay, path: {events}, raw: true}}
  processing:
    - {{step_id: parse, kind: parse, input: events}}
    - step_id: counts
      kind: window
      input: parse
      window: {{kind: tumbling, size: 1m}}
      key: [event_type]
      aggregate: [{{kind: count}}]
  sinks:
    - {{step_id: out, kind: duckdb, input: counts, path: {db}, table: counts}}
""")
    assert main(["run", str(spec), "--quiet"]) == 0
    assert "parse.dead_letter: 1 rows" in capsys.readouterr().out
    con = duckdb.connect(str(db))
    assert con.execute("select sum(count) from counts").fetchall()[0][0] == 300
    con.close()


def test_run_spec_rejects_a_bad_duration_before_running(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("streaming:\n  sources: []\n")
    assert main(["run", str(spec), "--quiet", "--duration", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--duration" in err and "soon" in err
