"""A robustness matrix: awkward but valid data give finite, sensible results or a clear error.

Short fits (2 chains, 150 warm-up steps and 150 draws, N = 200, K = 2, D = 2) through
``bgmm.cli.main`` in this process, so that the runs of one dtype and K share one compiled
sampler. Every result must be finite and in data units: weights summing to 1, component
means inside the data's range (and near the true centres where the data allow it),
positive-definite covariances of the right order of magnitude.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import bgmm.cli
from bgmm.data import DataWarning, check_extreme_values

N = 200
CENTRES = np.array([[0.0, 0.0], [6.0, 3.0]])
RUN = [
    "-k",
    "2",
    "--chains",
    "2",
    "--warmup",
    "150",
    "--draws",
    "150",
    "--quiet",
    "--json",
    "--no-plots",
]


def clusters(seed: int = 0) -> np.ndarray:
    """Two unit-variance clusters of N/2 rows each around CENTRES, shuffled."""
    rng = np.random.default_rng(seed)
    data = CENTRES[np.arange(N) % 2] + rng.standard_normal((N, 2))
    return data[rng.permutation(N)]


def write(path: Path, data: np.ndarray) -> Path:
    if path.suffix == ".npy":
        np.save(path, data)
    else:
        rows = [",".join(repr(v.item()) for v in row) for row in data]
        path.write_text("a,b\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def fit(tmp_path: Path, capsys, data: np.ndarray, *options: str, name: str = "data.csv"):
    """Run ``bgmm fit`` on ``data``; the JSON record and the stderr lines."""
    path = write(tmp_path / name, data)
    code = bgmm.cli.main(["fit", str(path), *RUN, "--out", str(tmp_path / "out"), *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    return json.loads(captured.out), captured.err.splitlines()


def check_finite_in_data_units(record: dict, data: np.ndarray, k: int = 2) -> None:
    weights = np.asarray(record["weights_mean"])
    means = np.asarray(record["means_mean"])
    cov = np.asarray(record["covariance_mean"])
    chol = np.asarray(record["chol_precision_mean"])
    assert weights.shape == (k,) and means.shape == (k, 2) and cov.shape == (k, 2, 2)
    for values in (weights, means, cov, chol):
        assert np.all(np.isfinite(values)), values
    assert weights.sum() == pytest.approx(1.0)
    low, high = data.min(axis=0), data.max(axis=0)
    assert np.all((means >= low) & (means <= high)), (means, low, high)
    for c in cov:
        np.testing.assert_allclose(c, c.T, rtol=1e-9, atol=0)
        assert np.all(np.linalg.eigvalsh(c) > 0), c


def check_clusters(record: dict, scale: float, offset: float = 0.0) -> None:
    """Means within 0.5 sd of the true centres; variances of the clusters' order (sd^2 = 1
    in units of ``scale``; the default Wishart prior pulls them up somewhat)."""
    means = (np.asarray(record["means_mean"]) - offset) / scale
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], CENTRES, atol=0.5)
    variances = np.diagonal(np.asarray(record["covariance_mean"]), axis1=-2, axis2=-1)
    variances = variances[order] / scale**2
    assert np.all((variances > 0.3) & (variances < 5.0)), variances
    np.testing.assert_allclose(np.asarray(record["weights_mean"]), 0.5, atol=0.15)


@pytest.mark.parametrize(
    ("scale", "offset"),
    [
        pytest.param(1e-6, 0.0, id="scale-1e-6"),
        pytest.param(1e6, 0.0, id="scale-1e6"),
        pytest.param(1.0, 1e9, id="offset-1e9"),
        pytest.param(1e-3, -1e6, id="scale-1e-3-offset-minus-1e6"),
    ],
)
def test_scales_and_offsets(tmp_path, capsys, scale, offset):
    data = clusters() * scale + offset
    record, err = fit(tmp_path, capsys, data)
    assert err == []
    check_finite_in_data_units(record, data)
    check_clusters(record, scale, offset)


def test_duplicated_rows(tmp_path, capsys):
    data = np.repeat(clusters()[: N // 2], 2, axis=0)
    record, _ = fit(tmp_path, capsys, data)
    check_finite_in_data_units(record, data)
    np.testing.assert_allclose(
        np.sort(np.asarray(record["means_mean"])[:, 0]), CENTRES[:, 0], atol=0.7
    )


def test_one_outlier_of_1e12_warns_and_stays_finite(tmp_path, capsys):
    data = clusters()
    data[17, 1] = 1e12
    record, err = fit(tmp_path, capsys, data)
    check_finite_in_data_units(record, data)
    assert len(err) == 1, err
    assert err[0].startswith("warning: ")
    assert "column 2 ('b')" in err[0] and "row 18" in err[0] and "variance" in err[0]


def test_integer_data(tmp_path, capsys):
    data = np.round(clusters() * 2).astype(np.int64)  # many ties
    record, _ = fit(tmp_path, capsys, data, name="data.npy")
    check_finite_in_data_units(record, data.astype(float))
    check_clusters(record, scale=2.0)


@pytest.mark.parametrize("offset", [0.0, 1e9], ids=["plain", "offset-1e9"])
def test_float32(tmp_path, capsys, offset):
    data = clusters() + offset
    record, _ = fit(tmp_path, capsys, data, "--dtype", "float32")
    assert record["dtype"] == "float32"
    check_finite_in_data_units(record, data)
    check_clusters(record, scale=1.0, offset=offset)


def test_largest_seed(tmp_path, capsys):
    data = clusters()
    record, _ = fit(tmp_path, capsys, data, "--seed", str(2**63 - 1))
    check_finite_in_data_units(record, data)


def test_one_component_has_no_spurious_rhat_warning(tmp_path, capsys):
    """K = 1: the weight is 1 in every draw, so its R-hat is undefined (NaN), which must
    not read as "R-hat above 1.01"."""
    data = np.random.default_rng(1).standard_normal((N, 2))
    record, _ = fit(tmp_path, capsys, data, "-k", "1")
    check_finite_in_data_units(record, data, k=1)
    assert record["weights_mean"] == [1.0]
    weight_row = next(p for p in record["parameters"] if p["name"] == "weights[0]")
    assert weight_row["r_hat"] is None  # NaN in JSON
    assert not any("weights" in w for w in record["warnings"]), record["warnings"]
    for warning in record["warnings"]:
        if warning.startswith("R-hat above"):
            assert "max nan" not in warning and "weights" not in warning


def test_extreme_value_check_is_quiet_on_ordinary_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert check_extreme_values(clusters(), ["a", "b"]) == []
        # A small real cluster of 1% of the rows, far out, is not "fewer than 1%".
        data = clusters()
        data[:2, 0] = 1e4
        assert check_extreme_values(data) == []


def test_constant_parameters_are_left_out_of_convergence_checks():
    from bgmm.diagnostics import constant_parameters, convergence_warnings

    draws = np.random.default_rng(0).normal(size=(2, 50, 3))
    draws[..., 0] = 1.0
    assert constant_parameters(draws).tolist() == [True, False, False]
    names = ["weights[0]", "means[0, a]", "means[0, b]"]
    nan = float("nan")
    # The constant's NaN R-hat and ESS say nothing; the others are fine.
    assert (
        convergence_warnings(names, draws, [nan, 1.0, 1.001], [nan, 500, 500], [nan, 450, 450])
        == []
    )
    # A non-constant parameter with NaN R-hat (non-finite draws) is still flagged.
    (line,) = convergence_warnings(names, draws, [nan, nan, 1.0], [nan, 500, 500], [nan, 500, 500])
    assert "for 1 parameter(s) (not computable, e.g. means[0, a])" in line
    lines = convergence_warnings(names, draws, [nan, 1.05, 1.0], [nan, 100, 500], [nan, 90, 500])
    assert "max 1.050, e.g. means[0, a]" in lines[0]
    assert "ESS below 400 for 1 parameter(s) (bulk min 100, tail min 90)" in lines[1]
