"""Loading, checking and standardising the data to be clustered.

The data are an ``(N, D)`` array of finite float64 values: ``N`` observations (rows) of
``D`` features (columns). The modules, one concern each:

- :mod:`bgmm.data.tables`: reading a ``.npy`` or delimited text file (or standard input)
  into data (:func:`load_data`, :func:`load_table`), with :mod:`bgmm.data.npy` and
  :mod:`bgmm.data.delimited` parsing the two formats;
- :mod:`bgmm.data.checks`: the data against the model (components, features, value range)
  and the :class:`DataWarning` for features dominated by a few extreme values;
- :mod:`bgmm.data.standardize`: :class:`Standardizer`, between data units and the model's
  standardised units;
- :mod:`bgmm.data.errors`: :class:`DataError` and :class:`DataWarning`.

The memory check for the draws lives in :mod:`bgmm.plumbing.memory` (it concerns the run's options
and the machine, not the data) and is re-exported here, as are the names above.
"""

from bgmm.data.checks import (
    EXTREME_ROWS_FRACTION,
    EXTREME_VARIANCE_SHARE,
    MAX_FEATURES,
    SPREAD_LIMIT,
    VALUE_LIMIT,
    check_extreme_values,
    check_num_components,
    check_num_features,
    check_value_range,
)
from bgmm.data.delimited import MISSING_TOKENS
from bgmm.data.errors import DataError, DataWarning
from bgmm.data.standardize import Standardizer
from bgmm.data.tables import (
    STDIN_NAME,
    load_data,
    load_table,
    max_input_bytes,
    parse_table,
    read_input,
)
from bgmm.plumbing.memory import check_draws_memory, draws_memory_bytes, physical_memory_bytes

__all__ = [
    "EXTREME_ROWS_FRACTION",
    "EXTREME_VARIANCE_SHARE",
    "MAX_FEATURES",
    "MISSING_TOKENS",
    "SPREAD_LIMIT",
    "STDIN_NAME",
    "VALUE_LIMIT",
    "DataError",
    "DataWarning",
    "Standardizer",
    "check_draws_memory",
    "check_extreme_values",
    "check_num_components",
    "check_num_features",
    "check_value_range",
    "draws_memory_bytes",
    "load_data",
    "load_table",
    "max_input_bytes",
    "parse_table",
    "physical_memory_bytes",
    "read_input",
]
