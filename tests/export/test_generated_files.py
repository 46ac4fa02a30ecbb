"""Generated files: lint-clean, importable, credential-free modules; Terraform and metadata with the settings."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import BadRecordError, parse_record
from streamlab.export import export_main, to_beam, to_lambda
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._samples import BAD_RECORDS, FIXED_SAMPLE, SCHEMA
from ._tf import block, parse

RUFF = Path(sys.executable).parent / "ruff"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="shop-events")
    events = p.parse(SCHEMA).filter("amount > 0").with_columns(cents="amount * 100")
    events.dedup("event_id").window(TumblingWindow("1m"), key="event_type").agg(agg.count(), agg.sum("cents"))
    return p


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("generated")
    beam_files = to_beam(_pipeline(), base / "beam", sink="bigquery")
    lambda_files = to_lambda(_pipeline(), base / "lambda")
    return {"beam": beam_files.directory, "lambda": lambda_files.directory}


def test_generated_modules_pass_ruff_and_import(exported: dict[str, Path]) -> None:
    for directory in exported.values():
        # the project's own lint rules, applied to code that lives outside the project
        cmd = [str(RUFF), "check", "--config", str(PYPROJECT), str(directory)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
    beam_module = load_module(exported["beam"] / "shop_events_beam.py")
    assert callable(beam_module.build) and callable(beam_module.run)
    handler = load_module(exported["lambda"] / "handler.py")
    assert callable(handler.handler)
    for module in (beam_module, handler):
        assert "streamlab" not in {m.split(".")[0] for m in vars(module) if isinstance(m, str)}
        assert "import streamlab" not in Path(module.__file__).read_text()


@pytest.mark.parametrize("target", ["beam", "lambda", "spark", "flink"])
def test_a_module_carrying_the_detectors_code_names_only_what_it_defines_or_imports(
    target: str, tmp_path: Path
) -> None:
    """The per-record detector code a job carries (``streamlab._detector_record``) gained ``deque`` (the
    windowed LocalOutlierFactor): Beam, Lambda, Spark and Flink modules imported ``OrderedDict`` alone,
    so a job with that detector died with NameError. And a Spark module without user functions named
    ``USER_FUNCTIONS`` without defining it. ruff's undefined-name check over each module (F821)."""
    from streamlab.detectors import GaussianScorerDetector, LocalOutlierFactorDetector, ZScoreFeature
    from streamlab.export import to_flink, to_spark

    p = Pipeline(ListSource([b"{}"]), name="scores")
    iot = {"device_id": "string", "temperature": "float64", "timestamp": "timestamp"}
    scored = p.parse(iot).filter("temperature > -100").apply(ZScoreFeature("device_id", "temperature"))
    # (Lambda keeps no LocalOutlierFactor per key; its module carries the same code for any detector)
    model = GaussianScorerDetector() if target == "lambda" else LocalOutlierFactorDetector()
    detected = scored.detect(model, features=["temperature"], key="device_id", step_id="model")
    if target == "lambda":  # the handler's chain ends in one tumbling window
        detected.window(TumblingWindow("1m"), key="device_id").agg(agg.count())
    export = {"beam": to_beam, "lambda": to_lambda, "spark": to_spark, "flink": to_flink}[target]
    export(p, tmp_path)
    modules = sorted(str(f) for f in tmp_path.rglob("*.py"))
    assert modules
    lint = subprocess.run(
        [str(RUFF), "check", "--config", str(PYPROJECT), "--select", "F821", *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout[-3000:]


def test_no_credentials_in_generated_files(exported: dict[str, Path]) -> None:
    # files only: importing a generated module (the test above) leaves a __pycache__ directory beside it
    # unless PYTHONDONTWRITEBYTECODE is set, as it is on CI's machine but not on a fresh one
    text = "\n".join(f.read_text() for d in exported.values() for f in d.iterdir() if f.is_file())
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|private_key|password", text, re.I)
    assert not re.search(r"[\"']testing[\"']", text)  # the verifier's dummy credentials stay there


def test_beam_terraform_pubsub_bigquery_and_flex_template(exported: dict[str, Path]) -> None:
    tf = parse((exported["beam"] / "main.tf").read_text())
    res = tf["resource"]
    sub = res[("google_pubsub_subscription", "events")]
    dlp = block(sub, "dead_letter_policy")
    assert dlp["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dlp["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert block(sub, "retry_policy")["minimum_backoff"] == "10s"
    window_table = res[("google_bigquery_table", "window")]
    assert block(window_table, "time_partitioning") == {"type": "DAY", "field": "window_start"}
    assert window_table["clustering"] == ["event_type"]
    names = re.findall(r'"name"\s*[=:]\s*"([^"]+)"', window_table["schema"])
    assert names == ["event_type", "window_start", "window_end", "count", "sum_cents"]
    job = res[("google_dataflow_flex_template_job", "pipeline")]
    assert job["container_spec_gcs_path"] == "${var.template_gcs_path}"
    assert job["parameters"]["subscription"] == "${google_pubsub_subscription.events.id}"
    assert {"project", "region", "template_gcs_path", "temp_location"} <= set(tf["variable"])
    meta = json.loads((exported["beam"] / "metadata.json").read_text())
    assert [p["name"] for p in meta["parameters"]][:2] == ["subscription", "dead_letter_topic"]
    reqs = (exported["beam"] / "requirements.txt").read_text().split()
    assert reqs[0].startswith("apache-beam[gcp]==") and "pandas>=2.0" in reqs


def test_bigquery_tables_in_the_module(exported: dict[str, Path]) -> None:
    module = load_module(exported["beam"] / "shop_events_beam.py")
    schema, partition, clustering = module.BIGQUERY_TABLES["dedup_duplicates"]
    assert partition == "timestamp" and clustering == ("event_type", "user_id")
    assert {"name": "timestamp", "type": "TIMESTAMP", "mode": "NULLABLE"} in schema
    assert module.OUTPUTS["parse.dead_letter"] == "parse_dead_letter"


def test_cli_exports_a_yaml_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "events.jsonl"
    data.write_bytes(b"\n".join(x for x in FIXED_SAMPLE if x.startswith(b"{")) + b"\n")
    p = Pipeline(ReplaySource(data, raw=True), name="from-yaml")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    spec = tmp_path / "spec.yaml"
    p.to_yaml(str(spec))
    assert export_main(["beam", str(spec), "-o", str(tmp_path / "b")]) == 0
    assert export_main(["lambda", str(spec), "-o", str(tmp_path / "l")]) == 0
    printed = capsys.readouterr().out.split()
    assert (
        str(tmp_path / "b" / "from_yaml_beam.py") in printed and str(tmp_path / "l" / "handler.py") in printed
    )


def test_cli_reports_unsupported_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "events.jsonl"
    data.write_bytes(FIXED_SAMPLE[0] + b"\n")
    p = Pipeline(ReplaySource(data, raw=True), name="sessions")
    from streamlab import SessionWindow

    p.parse(SCHEMA).window(SessionWindow("5m"), key="user_id").agg(agg.count())
    p.to_yaml(str(tmp_path / "spec.yaml"))
    assert export_main(["lambda", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "out")]) == 2
    assert "step 'window' (window): cannot export to AWS Lambda: session windows" in capsys.readouterr().err


_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@example({"n": "2024-01-01T00:00:05Z", "timestamp": 9223372036855.0})  # just past 2**63 ns, as ms
@example({"properties": "x", "timestamp": 9223372036854.775})  # the last ms in range, as a float
@example({"n": "x", "timestamp": "3000-01-01T00:00:00Z"})  # an ISO time beyond 2262
@example({"timestamp": -9223372036.855, "n": 1})  # seconds before 1677
@given(
    st.dictionaries(
        st.sampled_from(["event_id", "event_type", "timestamp", "properties", "n"]),
        st.one_of(
            _json_values,
            st.sampled_from(
                ["2024-01-01T00:00:05Z", "2024-01-01T00:00:05.250+02:00", "3000-01-01T00:00:00Z"]
            ),
            st.dictionaries(st.just("amount"), _json_values, max_size=1),
        ),
    ),
)
def test_generated_parse_gives_streamlabs_rows_and_reasons(obj: dict) -> None:
    # fields are judged in schema order; a time beyond 64-bit nanoseconds is a bad time where it stands
    fields = [FieldSpec.of(n, s) for n, s in {**SCHEMA, "n": "int64"}.items()]
    op = ParseOperator("parse", fields, "value", ("timestamp",), 10_000)
    raw = json.dumps(obj).encode()
    import pandas as pd

    out = op.process(pd.DataFrame({"value": pd.Series([raw], dtype=object)}))  # bad input never raises
    spec = tuple((f.name, f.type, f.path) for f in fields)
    try:
        row = parse_record(raw, spec, ("timestamp",), 10_000)
    except BadRecordError as e:
        assert "dead_letter" in out and out["dead_letter"]["reason"].tolist() == [str(e)]
        return
    assert "dead_letter" not in out, out["dead_letter"]["reason"].tolist()
    got = out["out"].iloc[0]
    assert pd.Timestamp(row["timestamp"]) == got["timestamp"]
    for name in ("event_id", "event_type", "n"):
        assert (row[name] is None and pd.isna(got[name])) or row[name] == got[name]


@pytest.mark.parametrize("bad", BAD_RECORDS)
def test_bad_records_have_streamlabs_reasons(bad: bytes) -> None:
    import pandas as pd

    fields = [FieldSpec.of(n, s) for n, s in SCHEMA.items()]
    op = ParseOperator("parse", fields, "value", ("timestamp",), 1_000)
    reason = op.process(pd.DataFrame({"value": pd.Series([bad], dtype=object)}))["dead_letter"]["reason"][0]
    with pytest.raises(BadRecordError) as info:
        parse_record(bad, tuple((f.name, f.type, f.path) for f in fields), ("timestamp",), 1_000)
    assert str(info.value) == reason


def test_backfill_deployment_reads_files(tmp_path: Path) -> None:
    files = to_beam(_pipeline(), tmp_path, runner_source="file")
    meta = json.loads(files.read("metadata.json"))
    assert meta["parameters"][0]["name"] == "input" and meta["streaming"] is False
    tf = parse(files.read("main.tf"))
    job = tf["resource"][("google_dataflow_flex_template_job", "pipeline")]
    assert job["parameters"]["input"] == "${var.input}" and "subscription" not in job["parameters"]
    assert "input" in tf["variable"]


def _main_guard_last(path: Path) -> bool:
    """Whether a module's ``if __name__ == "__main__":`` guard is its last statement (or it has none)."""
    body = ast.parse(path.read_text()).body
    guards = [
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.If)
        and "__main__" in ast.unparse(node.test)
        and "__name__" in ast.unparse(node.test)
    ]
    return not guards or guards == [len(body) - 1]


def test_every_exported_program_defines_everything_before_it_runs(tmp_path: Path) -> None:
    # the Spark job's `if __name__ == "__main__": main()` came before `def build(...)`, so the job
    # failed as a program (spark-submit, python job.py --input ...) with NameError, while verify, which
    # imports the module and calls build itself, said equal
    from streamlab.export import to_flink, to_spark

    made = [
        to_beam(_pipeline(), tmp_path / "beam"),
        to_lambda(_pipeline(), tmp_path / "lambda"),
        to_spark(_pipeline(), tmp_path / "spark"),
        to_flink(_pipeline(), tmp_path / "flink"),
    ]
    modules = [f for files in made for f in Path(files.directory).glob("*.py")]
    assert len(modules) >= 4
    for module in modules:
        assert _main_guard_last(module), module.name


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.window(TumblingWindow("1m"), key="event_type").agg(agg.count()),
        lambda s: s.filter("amount > 0", step_id="positive"),
        lambda s: s.dedup("event_id").window(TumblingWindow("1m"), key="event_type").agg(agg.count()),
    ],
    ids=["window", "filter", "dedup"],
)
def test_every_generated_beam_module_passes_ruff(build: Any, tmp_path: Path) -> None:
    """A module without a stateful step kept its file-wide ``noqa: B008``, which ruff reports unused (RUF100)."""
    p = Pipeline(ListSource([b"{}"]), name="lint")
    build(p.parse(SCHEMA))
    directory = to_beam(p, tmp_path).directory
    result = subprocess.run(
        [str(RUFF), "check", "--config", str(PYPROJECT), str(directory)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def _docstrings(tree: ast.AST) -> list[str]:
    nodes = [
        tree,
        *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)),
    ]
    return [d for n in nodes if (d := ast.get_docstring(n, clean=False)) is not None]  # type: ignore[arg-type]


def test_every_generated_docstring_is_utf8_text(tmp_path: Path) -> None:
    # Python 3.13 dedents docstrings at compile time, through UTF-8: a lone surrogate in one (main.py's
    # said ``"\ud800"`` with one backslash, an escape) failed the import of every exported Flink job there
    from streamlab.export import to_flink, to_spark

    from .test_flink_export import every_case

    written = [
        to_beam(_pipeline(), tmp_path / "beam").directory,
        to_lambda(_pipeline(), tmp_path / "lambda").directory,
        to_spark(_pipeline(), tmp_path / "spark").directory,
        to_flink(every_case(), tmp_path / "flink-files", source="files").directory,
        to_flink(every_case(), tmp_path / "flink-kafka", source="kafka", sink="kafka").directory,
    ]
    files = [f for d in written for f in sorted(d.rglob("*.py"))]
    assert len(files) >= 5
    for f in files:
        for doc in _docstrings(ast.parse(f.read_text(encoding="utf-8"))):
            doc.encode("utf-8")  # raises on a lone surrogate
