"""Tests for bgmm.plots: files are written as valid PNGs, bad inputs fail clearly, and the
figures say what they show (titles, axis labels, legends, ellipses, subsample notes)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz's import-time refactor notice
    import arviz as az

from bgmm.plots import location_figure, plot_location_kde, plot_trace, trace_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHAINS, DRAWS, K, N = 2, 50, 3, 300


def make_idata(
    d: int,
    *,
    constant: bool = False,
    seed: int = 0,
    feature_names=None,
    n: int = N,
    concentration=(50.0, 30.0, 20.0),
):
    """A small synthetic posterior with the dims bgmm produces."""
    rng = np.random.default_rng(seed)
    locs = np.array([[-1.0, -1.0, 0.5], [0.0, 1.0, -0.5], [1.0, -1.0, 1.5]])[:K, :d]
    z = rng.integers(0, K, n)
    y = locs[z] + 0.3 * rng.standard_normal((n, d))
    if constant:
        means = np.broadcast_to(locs, (CHAINS, DRAWS, K, d)).copy()
    else:
        means = locs + 0.05 * rng.standard_normal((CHAINS, DRAWS, K, d))
    weights = rng.dirichlet(concentration, size=(CHAINS, DRAWS))
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
            "observation": np.arange(n),
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

    from bgmm.plots.locations import _binned_kde

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


# ---------------------------------------------------------------------------------------------
# What the figures show, read off their objects
# ---------------------------------------------------------------------------------------------


def _legend_texts(fig) -> list[str]:
    assert len(fig.legends) == 1
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _ellipses(ax):
    from matplotlib.patches import Ellipse

    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _legend_hides_no_axes(fig) -> bool:
    fig.draw_without_rendering()
    legend = fig.legends[0].get_window_extent()
    return not any(_overlaps(legend, ax.get_window_extent()) for ax in fig.axes)


def test_location_figure_draws_each_components_spread(idata2):
    fig = location_figure(idata2)
    (ax,) = fig.axes
    assert "spread" in ax.get_title()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")
    ellipses = _ellipses(ax)
    assert len(ellipses) == 2 * K  # 1 and 2 sd for each component
    # make_idata's covariance is 0.09 I: sd 0.3, so circles of diameter 0.6 and 1.2,
    # centred on the posterior mean of each component's mean.
    centres = idata2.posterior["means"].values.mean(axis=(0, 1))
    for ellipse in ellipses:
        j, radius = map(int, re.fullmatch(r"component (\d+), (\d) sd", ellipse.get_gid()).groups())
        assert ellipse.width == pytest.approx(2 * radius * 0.3)
        assert ellipse.height == pytest.approx(2 * radius * 0.3)
        np.testing.assert_allclose(ellipse.center, centres[j])
    texts = _legend_texts(fig)
    assert "observed data (300 points)" in texts
    assert any(t.startswith("1 sd ellipse (39%") for t in texts)
    assert any(t.startswith("2 sd ellipse (86%") for t in texts)
    for j in range(K):
        assert any(t.startswith(f"component {j} (weight ") for t in texts)
    assert not any("empty" in t for t in texts)
    assert _legend_hides_no_axes(fig)


@pytest.mark.parametrize("num_empty", [1, 2])
def test_location_figure_leaves_out_empty_components(num_empty):
    # Concentration 0.01 over 300 observations: a mean weight near 1e-5, 0.003 observations.
    concentration = [50.0, 30.0, 20.0][: K - num_empty] + [0.01] * num_empty
    idata = make_idata(2, concentration=concentration)
    fig = location_figure(idata)
    assert len(_ellipses(fig.axes[0])) == 2 * (K - num_empty)
    texts = _legend_texts(fig)
    plural = "s" if num_empty > 1 else ""
    assert any(t.startswith(f"{num_empty} empty component{plural} not shown") for t in texts)
    empty = range(K - num_empty, K)
    assert not any(t.startswith(f"component {j} ") for t in texts for j in empty)


def test_location_figure_says_how_many_points_it_shows():
    idata = make_idata(2, n=12_000)
    fig = location_figure(idata, max_points=5000)
    assert "observed data (5,000 of 12,000 points shown)" in _legend_texts(fig)
    (scatter,) = [c for c in fig.axes[0].collections if len(c.get_offsets()) >= 1000]
    assert len(scatter.get_offsets()) == 5000
    assert not any("n=" in t or "n = " in t for t in _legend_texts(fig))
    assert "observed data (12,000 points)" in _legend_texts(location_figure(idata, max_points=None))


def test_location_figure_1d_draws_each_components_density():
    fig = location_figure(make_idata(1), max_points=100)
    data_ax = fig.axes[0]
    assert data_ax.get_xlabel() == "x0"
    assert "spread" in data_ax.get_title()
    spread = [line for line in data_ax.get_lines() if (line.get_gid() or "").startswith("spread")]
    assert len(spread) == K
    texts = _legend_texts(fig)
    assert "observed data (100 of 300 points shown)" in texts
    assert any("normal density" in t for t in texts)
    assert _legend_hides_no_axes(fig)


def test_location_figure_without_covariances_or_data_still_draws(idata2):
    import xarray as xr

    bare = az.InferenceData(posterior=xr.Dataset({"means": idata2.posterior["means"]}))
    fig = location_figure(bare)
    assert _ellipses(fig.axes[0]) == []
    assert [t for t in _legend_texts(fig) if t.startswith("component")] == [
        f"component {j}" for j in range(K)
    ]


def test_trace_figure_names_the_run_and_labels_every_axes():
    idata = make_idata(2)
    idata.posterior.attrs.update(sampler="nuts", num_warmup=500, relabel="pivot")
    fig = trace_figure(idata)
    title = fig.get_suptitle()
    for fragment in ("NUTS", "2 chains", "50 draws", "500 warm-up"):
        assert fragment in title, title
    axes = np.array(fig.axes).reshape(-1, 2)
    # weights, means[x0], means[x1] and the log density
    assert [ax.get_title() for ax in axes[:, 1]] == [
        "weights",
        "means[x0]",
        "means[x1]",
        "lp (sampler's log density)",
    ]
    for density_ax, trace_ax in axes:
        assert trace_ax.get_xlabel() == "draw"
        assert trace_ax.get_ylabel() and density_ax.get_xlabel()
        assert density_ax.get_ylabel() == "density"
        assert density_ax.get_legend() is None and trace_ax.get_legend() is None
    texts = _legend_texts(fig)
    assert texts[:K] == [f"component {j} (weight {w:.2g})" for j, w in enumerate(_weights(idata))]
    assert texts[K:] == ["chain 0", "chain 1"]
    assert _legend_hides_no_axes(fig)


def _weights(idata) -> np.ndarray:
    return idata.posterior["weights"].values.mean(axis=(0, 1))


def test_trace_figure_log_density_row_is_the_sample_stats_lp(idata3):
    fig = trace_figure(idata3, var_names=("weights",))
    density_ax, trace_ax = fig.axes[-2:]
    assert trace_ax.get_title() == "lp (sampler's log density)"
    assert (density_ax.get_xlabel(), trace_ax.get_ylabel()) == ("lp", "lp")
    lines = trace_ax.get_lines()
    assert len(lines) == CHAINS
    np.testing.assert_array_equal(lines[0].get_ydata(), idata3.sample_stats["lp"].values[0])
    assert len({line.get_color() for line in lines}) == 1  # not a component's colour
    without = trace_figure(idata3, var_names=("weights",), include_lp=False, title="my run")
    assert len(without.axes) == 2 and without.get_suptitle() == "my run"
    bare = az.InferenceData(posterior=idata3.posterior)
    assert len(trace_figure(bare, var_names=("weights",)).axes) == 2


def test_the_assignments_figure_shows_uncertain_points_larger(tmp_path):
    from bgmm.plots import assignments_figure, plot_assignments

    data = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    probabilities = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]])
    fig = assignments_figure(data, probabilities, ["a", "b"])
    ax = fig.axes[0]
    points = ax.collections[0]
    sizes = dict(zip(map(tuple, points.get_offsets()), points.get_sizes(), strict=True))
    assert sizes[(0.0, 0.0)] == sizes[(3.0, 3.0)] < sizes[(1.0, 1.0)] < sizes[(2.0, 2.0)]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["0: 3", "1: 1", "1 with uncertainty > 0.1"]  # the tie goes to 0
    assert "4 observations" in ax.get_title()
    many = np.random.default_rng(0).normal(size=(300, 3))
    fig = assignments_figure(many, np.full((300, 3), 1 / 3), ["x", "y", "z"], ("z", 0), 100)
    assert "100 of 300 observations" in fig.axes[0].get_title()
    assert fig.axes[0].get_xlabel() == "z" and len(fig.axes[0].collections[0].get_offsets()) == 100
    out = plot_assignments(many[:, :1], np.full((300, 1), 1.0), tmp_path / "a.png", ["x"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
