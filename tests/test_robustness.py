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
    # Within the data's range, widened by 4 posterior sds of each mean: a component whose
    # column is near constant (next to a 1e12 outlier) has a mean that straddles its edge.
    spread = 4.0 * np.asarray(record["means_sd"])
    low, high = data.min(axis=0), data.max(axis=0)
    assert np.all((means >= low - spread) & (means <= high + spread)), (means, low, high)
    for c in cov:
        np.testing.assert_allclose(c, c.T, rtol=1e-9, atol=0)
        assert np.all(np.linalg.eigvalsh(c) > 0), c


# Recovery of the simulated centres and weights: z = (posterior mean - simulated value) /
# sqrt(posterior sd^2 + MCSE^2) (conftest.recovery_z), about N(0, 1) over data sets and runs,
# the error being mostly the data's noise (a posterior sd of about 0.1 cluster sds). |z| < 5:
# P(false failure) < 4e-6 over the (at most) 6 numbers of a test, 3e-5 over the file's 44.
Z_LIMIT = 5.0


def check_clusters(record: dict, recovery_z, record_moments, scale: float, offset=0.0) -> None:
    """Means and weights recover the simulated ones (z-test above) in data units, with labels
    that agree between the chains (bgmm's own per-chain |z| > 5 test, a false flag about
    once in 1e5 runs; the pooled draws of swapped chains would hide a swap behind a large
    posterior sd). Variances of the
    clusters' order (sd^2 = 1 in units of ``scale``): not a z-test but a units check, as
    the default Wishart prior pulls them up by more than their posterior sd."""
    assert record["chains_disagreeing_components"] == [], record["warnings"]
    means = np.asarray(record["means_mean"])
    order = np.argsort(means[:, 0])
    for var, truth in (("means", offset + scale * CENTRES), ("weights", 0.5)):
        mean, sd, mcse = (m[order] for m in record_moments(record, var))
        z = recovery_z(mean, sd, mcse, truth)
        assert np.all(np.abs(z) < Z_LIMIT), f"{var}: z = {np.round(z, 2)}"
    variances = np.diagonal(np.asarray(record["covariance_mean"]), axis1=-2, axis2=-1)
    variances = variances[order] / scale**2
    assert np.all((variances > 0.3) & (variances < 5.0)), variances


@pytest.mark.parametrize(
    ("scale", "offset"),
    [
        pytest.param(1e-6, 0.0, id="scale-1e-6"),
        pytest.param(1e6, 0.0, id="scale-1e6"),
        pytest.param(1.0, 1e9, id="offset-1e9"),
        pytest.param(1e-3, -1e6, id="scale-1e-3-offset-minus-1e6"),
    ],
)
def test_scales_and_offsets(tmp_path, capsys, recovery_z, record_moments, scale, offset):
    data = clusters() * scale + offset
    record, err = fit(tmp_path, capsys, data)
    assert err == []
    check_finite_in_data_units(record, data)
    check_clusters(record, recovery_z, record_moments, scale, offset)


def test_duplicated_rows(tmp_path, capsys, recovery_z, record_moments):
    data = np.repeat(clusters()[: N // 2], 2, axis=0)
    record, _ = fit(tmp_path, capsys, data)
    check_finite_in_data_units(record, data)
    # The first coordinate of each centre recovered (Z_LIMIT above, 2 numbers). Every row
    # counted twice halves the posterior variance but not the data's noise, which comes from
    # the 100 distinct rows: the posterior sd is scaled back up by sqrt(2).
    mean, sd, mcse = record_moments(record, "means")
    order = np.argsort(mean[:, 0])
    z = recovery_z(mean[order, 0], np.sqrt(2.0) * sd[order, 0], mcse[order, 0], CENTRES[:, 0])
    assert np.all(np.abs(z) < Z_LIMIT), f"z = {np.round(z, 2)}"


def test_one_outlier_of_1e12_warns_and_stays_finite(tmp_path, capsys):
    data = clusters()
    data[17, 1] = 1e12
    record, err = fit(tmp_path, capsys, data)
    check_finite_in_data_units(record, data)
    assert len(err) == 1, err
    assert err[0].startswith("warning: ")
    assert "column 2 ('b')" in err[0] and "row 18" in err[0] and "variance" in err[0]


def test_integer_data(tmp_path, capsys, recovery_z, record_moments):
    data = np.round(clusters() * 2).astype(np.int64)  # many ties
    record, _ = fit(tmp_path, capsys, data, name="data.npy")
    check_finite_in_data_units(record, data.astype(float))
    check_clusters(record, recovery_z, record_moments, scale=2.0)


@pytest.mark.parametrize("offset", [0.0, 1e9], ids=["plain", "offset-1e9"])
def test_float32(tmp_path, capsys, recovery_z, record_moments, offset):
    data = clusters() + offset
    record, _ = fit(tmp_path, capsys, data, "--dtype", "float32")
    assert record["dtype"] == "float32"
    check_finite_in_data_units(record, data)
    check_clusters(record, recovery_z, record_moments, scale=1.0, offset=offset)


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
