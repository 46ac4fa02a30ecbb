"""Lambda export: the deployment package carries what the handler imports beyond the runtime's boto3.

main.tf used to say "build it with: zip lambda.zip handler.py", and the python3.12 runtime has no pandas,
which filter and with_columns expressions such as ``s.str.startswith('a')``, ``abs(n) > 1`` and
``s.str.len() > 1`` are evaluated by: deployed as documented, every row went to the filter's dead letters
("raised ModuleNotFoundError") while verify, which runs the handler in streamlab's environment, said
equal. Now the export writes ``build.sh`` (requirements.txt's packages installed next to handler.py, for
the runtime main.tf declares) and main.tf says to use it; a handler deployed without them fails its cold
start naming build.sh instead of dead-lettering every row.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda, verify
from streamlab.testing import ListSource

EXPRESSIONS = ("s.str.startswith('a')", "abs(n) > 1", "s.str.len() > 1")
ROWS = [  # (row, what each expression answers for it, as streamlab's filter reads it)
    ({"event_id": "e1", "s": "abc", "n": 4}, [True, True, True]),
    ({"event_id": "e2", "s": "b", "n": -1}, [False, False, False]),
    ({"event_id": "e3", "s": None, "n": -3}, [False, True, False]),
]

# what pip does for build.sh, from this environment: the distributions of requirements.txt (and theirs)
# copied into --target. boto3 is left out: the Lambda runtime has it and the handler imports it lazily.
FAKE_PIP = r"""
import shutil, sys
from importlib.metadata import distribution
from pathlib import Path
from packaging.requirements import Requirement

args = sys.argv[1:]
target = Path(args[args.index("--target") + 1])
todo = [Requirement(x).name for x in Path(args[args.index("-r") + 1]).read_text().split()]
done = set()
while todo:
    name = todo.pop()
    if name in done or name == "boto3":
        continue
    done.add(name)
    dist = distribution(name)
    for f in dist.files or []:
        if str(f).startswith(".."):
            continue
        dest = target / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.locate(), dest)
    for r in dist.requires or []:
        req = Requirement(r)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
"""

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
rows = json.loads(sys.argv[2])
print(json.dumps([[bool(handler.filter_keeps(e, row, handler.{c}_NUMERIC, handler.{c}_TYPED))
                   for e in {exprs!r}] for row in rows]))
"""


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="packaged")
    events = p.parse({"event_id": "string", "timestamp": "timestamp", "s": "string", "n": "int64"})
    kept = events
    for i, expr in enumerate(EXPRESSIONS):
        kept = kept.filter(expr, step_id=f"f{i}")
    kept.window(TumblingWindow("10s")).agg(agg.count())
    return p


def isolated(directory: Path, rows: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    """Import ``directory``'s handler.py in a Python without site-packages (as the Lambda runtime, but
    without boto3, which the handler imports when it writes) and ask its filter about ``rows``."""
    import json

    consts = re.search(r"^(\w+)_NUMERIC = ", (directory / "handler.py").read_text(), re.MULTILINE)
    assert consts is not None
    probe = PROBE.format(c=consts.group(1), exprs=EXPRESSIONS)
    cmd = [sys.executable, "-I", "-S", "-c", probe, str(directory), json.dumps(rows)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=directory)


def test_main_tf_and_build_sh_package_requirements_for_the_runtime(tmp_path: Path) -> None:
    out = to_lambda(pipeline(), tmp_path)
    assert "pandas>=2.0" in out.read("requirements.txt").split()
    tf = out.read("main.tf")
    assert "build it with: sh build.sh" in tf and "zip lambda.zip handler.py" not in tf
    runtime = re.search(r'runtime\s*=\s*"python(\d+\.\d+)"', tf)
    build = out.read("build.sh")
    assert runtime is not None and f"--python-version {runtime.group(1)}" in build
    assert "-r requirements.txt" in build and "cp handler.py build/" in build
    assert os.access(out.files["build.sh"], os.X_OK)


def test_the_zip_build_sh_makes_runs_the_expressions_without_an_installed_pandas(tmp_path: Path) -> None:
    """build.sh with pip standing in (no index here): the zip holds handler.py and pandas, and the
    handler, imported from the unpacked zip alone, answers the three expressions as streamlab."""
    out = to_lambda(pipeline(), tmp_path / "export")
    fake = tmp_path / "fake_pip.py"
    fake.write_text(FAKE_PIP)
    env = {**os.environ, "PIP": f"{sys.executable} {fake}"}
    done = subprocess.run(["sh", "build.sh"], cwd=out.directory, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out.directory / "lambda.zip") as z:
        assert "handler.py" in z.namelist() and "pandas/__init__.py" in z.namelist()
        z.extractall(unpacked)
    got = isolated(unpacked, [row for row, _ in ROWS])
    assert got.returncode == 0, got.stderr
    import json

    assert json.loads(got.stdout) == [answers for _, answers in ROWS]


def test_a_handler_zipped_alone_fails_its_cold_start_naming_build_sh(tmp_path: Path) -> None:
    out = to_lambda(pipeline(), tmp_path / "export")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "handler.py").write_text(out.read("handler.py"))  # zip lambda.zip handler.py, unpacked
    got = isolated(alone, [ROWS[0][0]])
    assert got.returncode != 0
    assert "ImportError: handler.py needs pandas" in got.stderr and "build.sh" in got.stderr


def test_verify_on_the_expressions_is_equal(tmp_path: Path) -> None:
    """The handler (in streamlab's environment, against moto) keeps what streamlab keeps."""
    lines = [
        b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01Z", "s": "abc", "n": 4}',
        b'{"event_id": "e2", "timestamp": "2024-01-01T00:00:02Z", "s": "b", "n": -1}',
        b'{"event_id": "e3", "timestamp": "2024-01-01T00:00:03Z", "n": -3}',
        b'{"event_id": "e4", "timestamp": "2024-01-01T00:00:04Z", "s": "ax", "n": -2}',
    ]
    report = verify(pipeline(), lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["window"] == {"streamlab": 1, "lambda": 1}
