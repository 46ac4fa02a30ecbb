"""The bundled datasets regenerate byte for byte whatever the Python version.

Python 3.13's ``gzip.compress`` writes 255 ("unknown") as the header's OS byte where 3.11 and 3.12 wrote
zlib's (3 on Linux), so on 3.13 every bundled file came out "out of date" by that one byte.
"""

from __future__ import annotations

import gzip

import streamlab.datasets as ds
from hypothesis import given
from hypothesis import strategies as st
from streamlab.datasets import _generate as gen

#: magic, deflate, no flags, mtime 0, extra flags 2 (level 9), OS 3: the bundled files' header
HEADER = bytes.fromhex("1f8b0800000000000203")


def test_every_bundled_dataset_checks_as_up_to_date() -> None:
    assert gen.main(["--check"]) == 0
    for name in ds.list_datasets():
        assert ds.dataset_path(name).read_bytes()[:10] == HEADER


@given(st.lists(st.binary().filter(lambda b: b"\n" not in b), max_size=20))
def test_compressed_lines_have_the_bundled_header_and_read_back(lines: list[bytes]) -> None:
    data = gen.compress_lines(lines)
    assert data[:10] == HEADER
    assert gzip.decompress(data) == b"".join(line + b"\n" for line in lines)
