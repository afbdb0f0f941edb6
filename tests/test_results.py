"""The printed summary: significant digits on any scale of the data, aligned columns."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bgmm.report import format_summary
from bgmm.results import build_inference_data, summarize

FLOAT = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
CHAINS, DRAWS, K = 2, 100, 2
# Body mass in grams (about 4200) beside a rate of about 1e-4: 4 fixed decimals would print
# the first with 8 digits and the second as 0.0001 or 0.0000.
CENTRES = np.array([[4213.7, 1.2345e-4], [3517.2, 2.7182e-4]])
SPREAD = np.array([350.0, 2.0e-5])  # each feature's sd within a component


def _idata(seed: int = 0):
    """A synthetic posterior, in data units, with the two features on those scales."""
    rng = np.random.default_rng(seed)
    d = CENTRES.shape[1]
    means = CENTRES + 1e-2 * SPREAD * rng.standard_normal((CHAINS, DRAWS, K, d))
    chol = np.broadcast_to(np.diag(1.0 / SPREAD), (CHAINS, DRAWS, K, d, d)).copy()
    draws = {
        "weights": rng.dirichlet([600.0, 400.0], size=(CHAINS, DRAWS)),
        "means": means,
        "chol_precision": chol,
        "lp": rng.normal(-12345.6, 1.0, (CHAINS, DRAWS)),
        "lp_target": rng.normal(-12345.6, 1.0, (CHAINS, DRAWS)),
        "diverging": np.zeros((CHAINS, DRAWS), dtype=bool),
    }
    data = CENTRES[rng.integers(0, K, 50)] + SPREAD * rng.standard_normal((50, d))
    return build_inference_data(draws, data, ["mass", "rate"], {})


@pytest.fixture(scope="module")
def printed():
    summary = summarize(_idata())
    return summary, format_summary(summary)


def _table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("parameter"))
    end = lines.index("", start)
    return lines[start:end]


def _row(table: list[str], name: str) -> list[float]:
    line = next(line for line in table if line.startswith(name + " "))
    return [float(v) for v in re.findall(FLOAT, line[len(name) :])]


@pytest.mark.parametrize("name", ["means[0, mass]", "means[1, rate]", "weights[0]"])
def test_table_prints_four_significant_digits(printed, name):
    summary, text = printed
    row = next(p for p in summary["parameters"] if p["name"] == name)
    mean, sd, mcse = _row(_table(text), name)[:3]
    for shown, value in ((mean, row["mean"]), (sd, row["sd"]), (mcse, row["mcse"])):
        assert value != 0.0
        # 4 significant digits: at most half a unit in the 4th digit.
        assert abs(shown - value) <= 5e-4 * abs(value), (name, shown, value)


def test_small_and_large_values_keep_their_digits(printed):
    _, text = printed
    table = _table(text)
    line = next(line for line in table if line.startswith("means[0, rate] "))
    assert "0.0001234" in line or "0.0001235" in line, line
    assert "0.0000 " not in text and " 0.0000\n" not in text
    assert "4214" in next(line for line in table if line.startswith("means[0, mass] "))
    assert "4213.7" not in text  # not more digits than asked for
    # The tutorial-style arrays: the locations with their digits, no exponents for them.
    locations = text.split("avg loc:\n", 1)[1].split("avg chol", 1)[0]
    values = [float(v) for v in re.findall(FLOAT, locations)]
    np.testing.assert_allclose(values, CENTRES.ravel(), rtol=1e-3)
    assert "e" not in locations


def test_columns_are_aligned(printed):
    _, text = printed
    table = _table(text)
    assert len({len(line) for line in table}) == 1
    header = table[0]
    for line in table[1:]:
        # Every number ends where its column's heading ends.
        for heading in ("mean", "sd", "mcse", "ess_bulk"):
            end = header.index(f" {heading} ") + len(heading) + 1
            assert line[end - 1] != " " and line[end] == " ", (heading, line)


def test_label_invariant_lines_keep_the_log_density_digits(printed):
    _, text = printed
    line = next(line for line in text.splitlines() if line.strip().startswith("lp:"))
    assert re.search(r"mean -1234\d\.\d", line), line


@pytest.mark.parametrize(
    ("structure", "expected"),
    [
        ("full", ["[0, mass, mass]", "[0, rate, mass]", "[0, rate, rate]", "[1, mass, mass]"]),
        ("diag", ["[0, mass, mass]", "[0, rate, rate]", "[1, mass, mass]", "[1, rate, rate]"]),
        ("tied", ["[tied, mass, mass]", "[tied, rate, mass]", "[tied, rate, rate]"]),
        ("spherical", ["[0, all]", "[1, all]"]),
    ],
)
def test_table_lists_each_free_precision_entry_once(structure, expected):
    """A structure's tied or repeated entries are one row each, named for what they are."""
    idata = _idata()
    idata.posterior.attrs["covariance_type"] = structure
    names = [p["name"] for p in summarize(idata)["parameters"]]
    precision = [n.removeprefix("chol_precision") for n in names if n.startswith("chol")]
    assert precision[: len(expected)] == expected
    assert len(precision) == {"full": 6, "diag": 4, "tied": 3, "spherical": 2}[structure]
