"""The exporters copy top-level functions, classes and constants out of streamlab's modules by their
source segments (``streamlab.export._plan._segments``): the segments equal ``ast.get_source_segment``'s,
which splits the whole module's text on every call and made every export take seconds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamlab
from streamlab.export._plan import _SOURCE_LINE, source_segment

MODULES = sorted(Path(streamlab.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(Path(streamlab.__file__).parent)))
def test_every_top_level_statement_of_streamlab_gives_asts_segment(path: Path) -> None:
    text = path.read_text()
    lines = _SOURCE_LINE.findall(text)
    nodes = ast.parse(text).body
    assert [source_segment(lines, n) for n in nodes] == [ast.get_source_segment(text, n) for n in nodes]


NAMES = st.sampled_from(["x", "é", "变量", "𝔸"])
# no NUL: Python reads no source holding one (the comment below holds the text as it is)
TEXTS = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\\'\x00"), max_size=8)


@st.composite
def modules(draw: st.DrawFn) -> str:
    """Statements of one and several lines, with non-ASCII names and strings, ``;``, comments and every
    line end Python reads (the last line with or without one)."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        name, value = draw(NAMES), draw(TEXTS)
        end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        parts.append(
            draw(
                st.sampled_from(
                    [
                        f"{name} = {value!r}{end}",
                        f"{name} = 1; y = {value!r}  # {value}{end}",
                        f"def {name}():{end}    return ({value!r},{end}        2){end}",
                        f"class {name}:{end}    z = {value!r}{end}",
                    ]
                )
            )
        )
    text = "".join(parts)
    return text.rstrip("\r\n") if draw(st.booleans()) else text


@given(modules())
def test_generated_modules_give_asts_segments(text: str) -> None:
    lines = _SOURCE_LINE.findall(text)
    nodes = ast.parse(text).body
    assert [source_segment(lines, n) for n in nodes] == [ast.get_source_segment(text, n) for n in nodes]


def test_a_modules_segments_are_read_once_per_version_of_its_file(tmp_path: Path) -> None:
    import importlib.util
    import os

    from streamlab.export._plan import _segments

    path = tmp_path / "snippets_module.py"
    path.write_text("def f():\n    return 1\n")
    spec = importlib.util.spec_from_file_location("snippets_module", path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    first = _segments(module)
    assert _segments(module) is first  # the same version: not parsed again
    path.write_text("def f():\n    return 22\n\n\nX = 3\n")  # a new version (size and time)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert dict(_segments(module)) == {"f": "def f():\n    return 22", "X": "X = 3"}
    with pytest.raises(TypeError):  # one copy serves every export: read-only
        first["f"] = "changed"  # type: ignore[index]
