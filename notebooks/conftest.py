"""Notebook outputs are for readers: a cell that runs but shows noise fails under nbval.

nbval (``--nbval-lax``, the README's test command) fails a cell on an exception and compares only the
outputs of cells marked ``# NBVAL_CHECK_OUTPUT``. A cell whose outputs hold a Python warning, a progress
bar, a traceback printed by a thread or a Kafka client's log lines passes it, although the rendered
notebook then shows a wall of red text, or a bar whose rate and elapsed time belong to one machine and
one run. This hook fails such a cell after nbval ran it, naming what it found.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping
from typing import Any

import pytest

# the warnings module's format: "<file>:<line>: <Category>Warning: <message>"
_WARNING = re.compile(r"^.*?:\d+: (\w*Warning): (.*)$", re.M)
# tqdm's status, with or without a total: "50.0k/50.0k [00:27<00:00, 1.84k events/s]", "6.00k events [00:02, 2.96k events/s]"
_PROGRESS = re.compile(r"\[\d+:\d\d(?::\d\d)?(?:<[^,\]]*)?, [^\]]*/s\]")
_TRACEBACK = "Traceback (most recent call last):"
# librdkafka's own log lines (a client whose log_level was left on): "%3|1796484776.366|FAIL|rdkafka#producer-1| ..."
_RDKAFKA = re.compile(r"^%\d\|[\d.]+\|\w+\|(rdkafka#[\w-]+)\|.*$", re.M)


def output_noise(outputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """What in a cell's outputs (nbformat output dicts) a reader should not see, one line per finding."""
    found: list[str] = []
    for out in outputs:
        if out.get("output_type") == "stream":
            texts = [str(out.get("text", ""))]
        else:
            texts = [str(out.get("data", {}).get("text/plain", ""))]
        for text in texts:
            found += [f"{category}: {message[:120]}" for category, message in _WARNING.findall(text)]
            found += [f"progress bar: {m.group(0)}" for m in _PROGRESS.finditer(text)]
            found += [f"librdkafka log ({m.group(1)}): {m.group(0)[:120]}" for m in _RDKAFKA.finditer(text)]
            if _TRACEBACK in text:
                found.append("a traceback: " + text[text.index(_TRACEBACK) :][:200])
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    outputs = getattr(item, "test_outputs", None)  # set by nbval's cell item once the cell ran
    if outputs:
        noise = output_noise(outputs)
        if noise:
            pytest.fail(
                "the cell ran, but its outputs show a reader noise (silence the cause, e.g. run(progress=False), "
                "or handle what the warning says):\n  " + "\n  ".join(noise),
                pytrace=False,
            )
    return result
