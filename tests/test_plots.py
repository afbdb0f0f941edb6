"""Tests for bgmm.plots: files are written as valid PNGs, bad inputs fail clearly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz's import-time refactor notice
    import arviz as az

from bgmm.plots import plot_location_kde, plot_trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHAINS, DRAWS, K, N = 2, 50, 3, 300


def make_idata(d: int, *, constant: bool = False, seed: int = 0, feature_names=None):
    """A small synthetic posterior with the dims bgmm produces."""
    rng = np.random.default_rng(seed)
    locs = np.array([[-1.0, -1.0, 0.5], [0.0, 1.0, -0.5], [1.0, -1.0, 1.5]])[:K, :d]
    z = rng.integers(0, K, N)
    y = locs[z] + 0.3 * rng.standard_normal((N, d))
    if constant:
        means = np.broadcast_to(locs, (CHAINS, DRAWS, K, d)).copy()
    else:
        means = locs + 0.05 * rng.standard_normal((CHAINS, DRAWS, K, d))
    weights = rng.dirichlet([50.0, 30.0, 20.0], size=(CHAINS, DRAWS))
    cov = np.broadcast_to(0.09 * np.eye(d), (CHAINS, DRAWS, K, d, d)).copy()
    prec = np.linalg.inv(cov)
    chol = np.linalg.cholesky(prec)
    lp = rng.standard_normal((CHAINS, DRAWS))
    names = feature_names or [f"x{i}" for i in range(d)]
    mat = ["component", "feature", "feature_"]
    return az.from_dict(
        posterior={
            "weights": weights,
            "means": means,
            "chol_precision": chol,
            "covariance": cov,
            "precision": prec,
            "lp": lp,
        },
        observed_data={"y": y},
        sample_stats={
            "acceptance_rate": rng.uniform(size=(CHAINS, DRAWS)),
            "step_size": np.full((CHAINS, DRAWS), 0.1),
            "diverging": np.zeros((CHAINS, DRAWS), dtype=bool),
            "energy": rng.standard_normal((CHAINS, DRAWS)),
            "lp": lp,
            "n_steps": np.full((CHAINS, DRAWS), 7),
        },
        coords={
            "component": np.arange(K),
            "feature": names,
            "feature_": names,
            "observation": np.arange(N),
        },
        dims={
            "weights": ["component"],
            "means": ["component", "feature"],
            "chol_precision": mat,
            "covariance": mat,
            "precision": mat,
            "y": ["observation", "feature"],
        },
    )


@pytest.fixture(scope="module")
def idata2():
    return make_idata(2)


@pytest.fixture(scope="module")
def idata3():
    return make_idata(3, feature_names=["sepal", "petal", "stem"])


def assert_png(path, min_bytes: int = 5_000):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes


def test_location_kde_2d(tmp_path, idata2):
    out = plot_location_kde(idata2, tmp_path / "nested" / "dir" / "kde.png")
    assert out == tmp_path / "nested" / "dir" / "kde.png"
    assert_png(out)


def test_location_kde_accepts_str_path_and_subsample(tmp_path, idata2):
    out = plot_location_kde(idata2, str(tmp_path / "kde.png"), max_points=20)
    assert_png(out)


@pytest.mark.parametrize("features", [(0, 1), (2, 0), ("stem", "sepal")])
def test_location_kde_3d_feature_choice(tmp_path, idata3, features):
    assert_png(plot_location_kde(idata3, tmp_path / "kde3.png", features=features))


def test_location_kde_1d(tmp_path):
    idata = make_idata(1)
    # features are ignored for a single feature
    assert_png(plot_location_kde(idata, tmp_path / "kde1.png"))


@pytest.mark.parametrize(
    "features", [(0, 3), (-1, 0), (1, 1), (0,), (0, 1, 2), ("x0", "nope"), "x0", (0.0, 1.0)]
)
def test_location_kde_bad_features(tmp_path, idata3, features):
    with pytest.raises(ValueError):
        plot_location_kde(idata3, tmp_path / "bad.png", features=features)
    assert not (tmp_path / "bad.png").exists()


def test_location_kde_bad_features_2d(tmp_path, idata2):
    with pytest.raises(ValueError, match="out of range"):
        plot_location_kde(idata2, tmp_path / "bad.png", features=(0, 2))


@pytest.mark.parametrize("d", [1, 2])
def test_location_kde_degenerate_draws(tmp_path, d):
    idata = make_idata(d, constant=True)
    assert_png(plot_location_kde(idata, tmp_path / "const.png"))


def test_location_kde_without_observed_data(tmp_path, idata2):
    bare = az.InferenceData(posterior=idata2.posterior)
    assert_png(plot_location_kde(bare, tmp_path / "bare.png"))


def test_location_kde_does_not_leak_pyplot_figures(tmp_path, idata2):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_location_kde(idata2, tmp_path / "a.png")
    plot_trace(idata2, tmp_path / "b.png")
    assert plt.get_fignums() == before


@pytest.mark.parametrize("d", [1, 2, 3])
def test_trace(tmp_path, d):
    idata = make_idata(d)
    out = plot_trace(idata, tmp_path / "sub" / f"trace{d}.png")
    assert out == tmp_path / "sub" / f"trace{d}.png"
    assert_png(out)


def test_trace_other_vars_and_features(tmp_path, idata3):
    out = plot_trace(
        idata3,
        tmp_path / "trace.png",
        var_names=("weights", "means", "covariance", "chol_precision", "lp"),
        features=("stem", 0),
    )
    assert_png(out)


def test_trace_bad_inputs(tmp_path, idata3):
    with pytest.raises(ValueError):
        plot_trace(idata3, tmp_path / "t.png", features=(0, 5))
    with pytest.raises(ValueError, match="unknown posterior variable"):
        plot_trace(idata3, tmp_path / "t.png", var_names=("nope",))
    # weights-only plots do not depend on features
    assert_png(plot_trace(idata3, tmp_path / "w.png", var_names=("weights",), features=(0, 5)))


def test_trace_degenerate_draws(tmp_path):
    idata = make_idata(2, constant=True)
    assert_png(plot_trace(idata, tmp_path / "const.png"))


def test_binned_kde_matches_scipy_exact_kde():
    """The FFT-binned KDE against scipy's exact one, for a correlated cloud; and it must
    move with the points (a kernel centred wrongly would leave the peak elsewhere)."""
    from scipy.stats import gaussian_kde

    from bgmm.plots import _binned_kde

    points = np.random.default_rng(1).multivariate_normal([0.0, 1.0], [[1, 0.8], [0.8, 1]], 1000)
    kde = gaussian_kde(points.T)
    bandwidth = np.sqrt(np.diag(kde.covariance))
    low, high = points.min(0) - 3 * bandwidth, points.max(0) + 3 * bandwidth
    gx, gy = np.linspace(low[0], high[0], 100), np.linspace(low[1], high[1], 80)
    xx, yy = np.meshgrid(gx, gy)
    exact = kde(np.vstack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    binned = _binned_kde(points, kde.covariance, gx, gy)
    assert binned.shape == exact.shape == (80, 100)
    # Binning error is second order in cell / bandwidth (about 0.28 here): 2 % of the peak.
    assert np.abs(binned - exact).max() < 0.04 * exact.max()
    cell_area = (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert abs(binned.sum() * cell_area - 1.0) < 0.01
