"""The notebooks' nbval hook (notebooks/conftest.py) fails a cell whose outputs a reader should not see.

The samples are outputs the notebooks showed on a run of the suite on a busy machine."""

from __future__ import annotations

import pathlib
from types import SimpleNamespace

import pytest

from streamlab.export.verify import load_module

CONFTEST = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "conftest.py"


hook = load_module(CONFTEST)

RUNTIME_WARNING = (
    "/work/streamlab/runtime/_run.py:92: RuntimeWarning: pipeline 'kinesis_counts' stopped with open state "
    "{'window': {'open_windows': 1}} and no checkpoint_dir: that state is only in memory\n"
    "  ex.finish(flush_windows=False)\n"
)
FUTURE_WARNING = (
    "/venv/lib/python3.11/site-packages/pyspark/testing/utils.py:127: FutureWarning: PySpark does not yet fully "
    "support pandas >= 3.0.0.\n  require_minimum_pandas_version()\n"
)
NOISY = {
    "a RuntimeWarning on stderr": [{"output_type": "stream", "name": "stderr", "text": RUNTIME_WARNING}],
    "a FutureWarning on stderr": [{"output_type": "stream", "name": "stderr", "text": FUTURE_WARNING}],
    "a tqdm widget with a total": [
        {
            "output_type": "display_data",
            "data": {"text/plain": "fraud: 100%|##########| 50.0k/50.0k [00:27<00:00, 1.84k events/s]"},
        }
    ],
    "a tqdm widget without a total": [
        {
            "output_type": "display_data",
            "data": {"text/plain": "graceful: 6.00k events [00:02, 2.96k events/s]"},
        }
    ],
    "a tqdm bar as text": [
        {
            "output_type": "stream",
            "name": "stderr",
            "text": "iot:   0%|          | 0.00/50.0k [00:00<?, ? events/s]\r",
        }
    ],
    "a Kafka client's log lines": [
        {
            "output_type": "stream",
            "name": "stderr",
            "text": "%6|1796484776.365|FAIL|rdkafka#producer-1| [thrd:127.0.0.1:51589/111]: 127.0.0.1:51589/111: "
            "Disconnected: connection closed by peer\n",
        }
    ],
    "a thread's traceback": [
        {
            "output_type": "stream",
            "name": "stderr",
            "text": 'Exception in thread x:\nTraceback (most recent call last):\n  File "a.py", line 1\n',
        }
    ],
}
CLEAN = [
    {"output_type": "stream", "name": "stdout", "text": "status=finished events=6000 late=62 windows=194\n"},
    {
        "output_type": "execute_result",
        "data": {"text/plain": "   window  count\n0  10:00     5", "text/html": "<div/>"},
    },
    {
        "output_type": "display_data",
        "data": {"application/vnd.plotly.v1+json": {"data": []}, "text/plain": "Figure({'data': []})"},
    },
    {
        "output_type": "stream",
        "name": "stdout",
        "text": "late events at 09:00:04 [00:01 behind]: 3 of 5,000 /s\n",
    },
]


@pytest.mark.parametrize("outputs", list(NOISY.values()), ids=list(NOISY))
def test_noise_is_found(outputs: list[dict[str, object]]) -> None:
    assert hook.output_noise(outputs)


def test_results_tables_and_charts_are_not_noise() -> None:
    assert hook.output_noise(CLEAN) == []


def test_the_warning_is_named_in_the_finding() -> None:
    assert hook.output_noise(NOISY["a RuntimeWarning on stderr"])[0].startswith("RuntimeWarning: pipeline")


def _run_hook(outputs: list[dict[str, object]] | None) -> None:
    """Drive the hook wrapper as pytest does around nbval's cell item."""
    item = SimpleNamespace(test_outputs=outputs)
    wrapper = hook.pytest_runtest_call(item)
    next(wrapper)
    with pytest.raises(StopIteration):
        wrapper.send(None)


def test_the_hook_fails_a_noisy_cell_and_passes_a_clean_one() -> None:
    with pytest.raises(pytest.fail.Exception, match="RuntimeWarning"):
        _run_hook(NOISY["a RuntimeWarning on stderr"])
    _run_hook(CLEAN)
    _run_hook(None)  # not an nbval cell
