"""What differs between the pandas versions streamlab runs on: pandas 3 (Python 3.11 and later) and
pandas 2.x (Python 3.10, whose newest pandas is 2.3). The rest of the package asks here, not
``pd.__version__``.

Examples
--------
>>> inferred_kind(pd.Series([1.5, None], dtype=object)), inferred_kind([1, 2.5, None])
('floating', 'mixed-integer-float')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PANDAS_3", "inferred_kind"]

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
"""pandas >= 3: strings are ``str`` columns, copy-on-write, date-times keep the unit they are read in."""


def inferred_kind(values: Any) -> str:
    """``pd.api.types.infer_dtype(values, skipna=True)`` as pandas 3 answers it.

    pandas 2 reads ``None`` beside floats as an int: ``[1.5, None]`` is ``"mixed-integer-float"`` there
    (``"floating"`` on pandas 3), the answer for ints and floats together, which must keep each value's
    type (``1`` and ``1.0`` are two keys). So on pandas 2 that answer is asked again of the present values.
    """
    kind: str = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "mixed-integer-float" and not PANDAS_3:
        present = np.asarray(values, dtype=object)
        kind = pd.api.types.infer_dtype(present[~pd.isna(present)], skipna=True)
    return kind
