"""Figures for posterior draws of a Bayesian Gaussian mixture.

Two figures are provided:

* :func:`plot_location_kde` reproduces the TFP tutorial's "KDE of loc draws" figure: one filled
  2-D kernel density estimate per component of the posterior draws of its mean, drawn over a
  light scatter of the observed data.
* :func:`plot_trace` is a trace plot (per-chain densities on the left, traces on the right) built
  on :func:`arviz.plot_trace`, with one colour per mixture component.

Figures are built on :class:`matplotlib.figure.Figure` objects that are never registered with
``pyplot``, so no window is ever opened whatever the configured backend, and nothing has to be
closed by the caller. PNGs are written with the Agg renderer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bgmm.data.columns import resolve_features
from bgmm.data.subsample import subsample_rows

if TYPE_CHECKING:
    import xarray as xr
    from arviz import InferenceData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_location_kde", "plot_trace"]

_DPI = 100
_GRID_SIZE = 100  # grid points per axis for the 2-D KDE
_KDE_CUT = 3.0  # grid extends this many bandwidths beyond the draws (as seaborn's ``cut``)
_KDE_LEVELS = 10  # iso-proportion levels, as seaborn's default
_KDE_THRESH = 0.05  # lowest level is left unfilled (seaborn's ``shade_lowest=False``)
_MAX_KDE_DRAWS = 1000  # draws per component fed to the KDE (thinned deterministically)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _new_figure(figsize: tuple[float, float], constrained: bool = True) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained" if constrained else None)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI, format="png")
    fig.clear()
    return out


def _component_colors(k: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    if k <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(k)]
    if k <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(k)]
    cmap = colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, k)]


def _posterior(idata: InferenceData) -> xr.Dataset:
    try:
        return idata.posterior
    except AttributeError as err:
        raise ValueError("idata has no 'posterior' group") from err


def _coordinate_labels(values: xr.Dataset | xr.DataArray, dim: str, prefix: str) -> list[str]:
    """The labels along ``dim``: its coordinate's values as str, else ``prefix`` + index."""
    if dim in values.coords:
        return [str(v) for v in np.asarray(values.coords[dim].values)]
    return [f"{prefix}{i}" for i in range(values.sizes[dim])]


def _means_array(idata: InferenceData) -> tuple[np.ndarray, list[str]]:
    """Return (draws, feature_names): draws has shape (n_draws, K, D), chains pooled."""
    post = _posterior(idata)
    if "means" not in post:
        raise ValueError("posterior has no 'means' variable")
    means = post["means"]
    if means.ndim != 4 or means.dims[:2] != ("chain", "draw"):
        raise ValueError(
            f"posterior 'means' must have dims (chain, draw, component, feature); got {means.dims}"
        )
    names = _coordinate_labels(means, means.dims[3], "x")
    values = np.asarray(means.values, dtype=float)
    return values.reshape(-1, values.shape[2], values.shape[3]), names


def _mean_weights(idata: InferenceData, k: int) -> np.ndarray | None:
    """The posterior mean weight of each of the ``k`` components, shape (K,); None if absent."""
    post = _posterior(idata)
    if "weights" not in post:
        return None
    w = np.asarray(post["weights"].values, dtype=float)
    if w.ndim < 3 or w.shape[-1] != k:
        return None
    with np.errstate(invalid="ignore"):
        return np.nanmean(w.reshape(-1, k), axis=0)


def _observed(idata: InferenceData) -> np.ndarray | None:
    """The observed data as an (N, D) array; None if absent."""
    try:
        y = idata.observed_data["y"]
    except (AttributeError, KeyError):
        return None
    arr = np.asarray(y.values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr.reshape(arr.shape[0], -1)


def _thin(x: np.ndarray, max_n: int) -> np.ndarray:
    """At most ``max_n`` rows of ``x`` (n, ...), evenly spaced."""
    if x.shape[0] > max_n:
        idx = np.linspace(0, x.shape[0] - 1, max_n).round().astype(int)
        return x[idx]
    return x


def _kde(points: np.ndarray):
    """gaussian_kde on ``points`` of shape (n, d), or None when it is degenerate."""
    from scipy.stats import gaussian_kde

    if points.shape[0] < 2 or np.ptp(points, axis=0).min() <= 0:
        return None
    try:
        kde = gaussian_kde(points.T)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(kde.covariance)):
        return None
    return kde


def _binned_kde(points: np.ndarray, covariance: np.ndarray, gx: np.ndarray, gy: np.ndarray):
    """A 2-D Gaussian KDE with bandwidth matrix ``covariance`` on the grid ``gx`` x ``gy``,
    shape (len(gy), len(gx)).

    The points are counted in the grid's cells and the counts convolved with the kernel
    by FFT, far cheaper than evaluating scipy's exact KDE at every grid point. Binning
    widens the kernel by a cell's variance (h^2 + d^2 / 12), 0.3 % at our grids, where
    cells are about a quarter of a bandwidth.
    """
    dx, dy = gx[1] - gx[0], gy[1] - gy[0]
    counts, _, _ = np.histogram2d(
        points[:, 0],
        points[:, 1],
        bins=[np.append(gx - dx / 2, gx[-1] + dx / 2), np.append(gy - dy / 2, gy[-1] + dy / 2)],
    )
    nx, ny = counts.shape
    ox, oy = np.meshgrid(np.arange(1 - nx, nx) * dx, np.arange(1 - ny, ny) * dy, indexing="ij")
    offsets = np.stack([ox, oy], axis=-1)
    inverse = np.linalg.inv(covariance)
    quadratic = np.einsum("...i,ij,...j->...", offsets, inverse, offsets)
    kernel = np.exp(-0.5 * quadratic) / (2 * np.pi * np.sqrt(np.linalg.det(covariance)))
    shape = (counts.shape[0] + kernel.shape[0] - 1, counts.shape[1] + kernel.shape[1] - 1)
    full = np.fft.irfft2(np.fft.rfft2(counts, shape) * np.fft.rfft2(kernel, shape), shape)
    density = full[nx - 1 : 2 * nx - 1, ny - 1 : 2 * ny - 1] / len(points)
    return np.maximum(density, 0.0).T  # FFT rounding can leave tiny negatives


def _iso_proportion_levels(density: np.ndarray) -> np.ndarray:
    """Density levels enclosing proportions of mass, as seaborn's kdeplot does."""
    values = np.sort(density.ravel())[::-1]
    mass = np.cumsum(values)
    mass /= mass[-1]
    props = np.linspace(_KDE_THRESH, 1.0, _KDE_LEVELS)
    idx = np.searchsorted(mass, 1.0 - props)
    levels = np.take(values, idx, mode="clip")
    levels = np.unique(levels)
    return levels


def _weight_label(k: int, weights: np.ndarray | None) -> str:
    """The legend label of component ``k``, with its mean weight from ``weights`` (K,)."""
    if weights is None or not np.isfinite(weights[k]):
        return f"component {k}"
    return f"component {k} (weight ~ {weights[k]:.2f})"


# ----------------------------------------------------------------------------------------------
# KDE of location draws
# ----------------------------------------------------------------------------------------------


def _kde_2d(ax: Axes, pts: np.ndarray, color) -> None:
    """Filled iso-proportion contours of the KDE of ``pts`` (n, 2); markers if degenerate."""
    kde = _kde(pts)
    if kde is None:
        centre = pts.mean(axis=0)
        _scatter_draws(ax, pts, color)
        ax.scatter(
            [centre[0]], [centre[1]], marker="X", s=120, color=color, edgecolor="k", zorder=4
        )
        return
    bandwidth = np.sqrt(np.diag(kde.covariance))
    lo = pts.min(axis=0) - _KDE_CUT * bandwidth
    hi = pts.max(axis=0) + _KDE_CUT * bandwidth
    gx = np.linspace(lo[0], hi[0], _GRID_SIZE)
    gy = np.linspace(lo[1], hi[1], _GRID_SIZE)
    density = _binned_kde(pts, kde.covariance, gx, gy)
    levels = _iso_proportion_levels(density)
    if levels.size < 2 or not np.all(np.isfinite(levels)):
        _scatter_draws(ax, pts, color)
        return
    _filled_contours(ax, np.meshgrid(gx, gy), density, levels, color)


def _scatter_draws(ax: Axes, pts: np.ndarray, color) -> None:
    """The draws ``pts`` (n, 2) as points, where no density can be drawn."""
    ax.scatter(pts[:, 0], pts[:, 1], s=10, color=color, alpha=0.6, zorder=3)


def _filled_contours(
    ax: Axes, grid: list[np.ndarray], density: np.ndarray, levels: np.ndarray, color
) -> None:
    """Bands of ``density`` (G, G) on ``grid`` (the meshgrid's x and y, each (G, G)), more
    opaque towards the mode, and the outline of the lowest of the sorted ``levels``."""
    from matplotlib.colors import to_rgba

    xx, yy = grid
    # Fill from the lowest level upwards (the region below it stays unfilled).
    top = max(density.max(), levels[-1]) * (1 + 1e-9)
    fill_levels = np.append(levels, top) if top > levels[-1] else levels
    alphas = np.linspace(0.25, 0.9, max(len(fill_levels) - 1, 1))
    ax.contourf(
        xx, yy, density, levels=fill_levels, colors=[to_rgba(color, a) for a in alphas], zorder=2
    )
    ax.contour(xx, yy, density, levels=levels[:1], colors=[color], linewidths=1.0, zorder=3)


def _kde_1d(ax: Axes, x: np.ndarray, color, label: str) -> None:
    """The filled KDE of ``x`` (n,); a vertical line at its mean if degenerate."""
    kde = _kde(x[:, None])
    if kde is None:
        ax.axvline(float(np.mean(x)), color=color, lw=2, label=label)
        return
    bw = float(np.sqrt(kde.covariance[0, 0]))
    grid = np.linspace(x.min() - _KDE_CUT * bw, x.max() + _KDE_CUT * bw, 400)
    dens = kde(grid)
    ax.fill_between(grid, dens, color=color, alpha=0.4, linewidth=0)
    ax.plot(grid, dens, color=color, lw=1.5, label=label)


def plot_location_kde(
    idata: InferenceData,
    path: str | os.PathLike,
    features: Sequence[int | str] = (0, 1),
    max_points: int = 5000,
) -> Path:
    """Plot the KDE of the posterior draws of each component's mean (the tutorial's figure).

    For each component, the draws of its mean (all chains pooled) projected on the two chosen
    features are summarised by a filled 2-D Gaussian KDE (iso-proportion levels, lowest level
    unfilled), one colour per component, over a light scatter of the observed data (subsampled
    to ``max_points``). Components whose draws are degenerate (e.g. constant) are shown as point
    markers instead. With a single feature (D == 1), 1-D KDEs of the mean draws are drawn over
    a histogram of the data and ``features`` is ignored.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior.means`` (chain, draw, component, feature); ``posterior.weights`` and
        ``observed_data.y`` are used when present.
    path : str or PathLike
        Where to write the PNG (parent directories are created).
    features : pair of int or str
        The two features (indices 0..D-1 or names from the ``feature`` coordinate) to show.
    max_points : int
        At most this many observations are scattered.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``features`` is not two distinct valid features, or ``means`` is missing/misshapen.
    """
    draws, names = _means_array(idata)
    _, k, d = draws.shape
    weights = _mean_weights(idata, k)
    labels = [_weight_label(j, weights) for j in range(k)]
    colors = _component_colors(k)
    y = _observed(idata)
    if y is not None and y.shape[1] != d:
        y = None
    if max_points is not None and max_points < 0:
        raise ValueError(f"max_points must be non-negative; got {max_points}")
    if d == 1:
        fig = _location_kde_1d(draws[:, :, 0], names[0], y, labels, colors, max_points)
    else:
        fig = _location_kde_2d(
            draws, names, resolve_features(features, names), y, labels, colors, max_points
        )
    return _save(fig, path)


def _location_kde_1d(
    draws: np.ndarray,
    name: str,
    y: np.ndarray | None,
    labels: list[str],
    colors: list,
    max_points: int | None,
) -> Figure:
    """The figure for one feature: KDEs of the mean draws (n_draws, K) over a histogram of
    the observed data ``y`` (N, 1) on a twin axis."""
    fig = _new_figure((7.5, 5.0))
    ax = fig.add_subplot()
    data_ax = ax
    if y is not None:
        observed = subsample_rows(y, max_points)[:, 0]
        observed = observed[np.isfinite(observed)]
        if observed.size:
            ax.hist(observed, bins="auto", density=True, color="0.6", alpha=0.5, label="observed")
        ax.set_ylabel("data density")
        ax = ax.twinx()
    for j, (label, color) in enumerate(zip(labels, colors, strict=True)):
        x = draws[:, j]
        x = _thin(x[np.isfinite(x)], _MAX_KDE_DRAWS)
        if x.size:
            _kde_1d(ax, x, color, label)
    ax.set_ylabel("posterior density of mean")
    ax.set_ylim(bottom=0)
    handles, legend_labels = [], []
    for a in {id(data_ax): data_ax, id(ax): ax}.values():
        h, lab = a.get_legend_handles_labels()
        handles += h
        legend_labels += lab
    if handles:
        ax.legend(handles, legend_labels, loc="best", fontsize="small")
    data_ax.set_xlabel(name)
    data_ax.set_title("KDE of location draws")
    return fig


def _location_kde_2d(
    draws: np.ndarray,
    names: list[str],
    shown: tuple[int, int],
    y: np.ndarray | None,
    labels: list[str],
    colors: list,
    max_points: int | None,
) -> Figure:
    """The figure for two of the D features, indices ``shown``: 2-D KDEs of the mean draws
    (n_draws, K, D) over a scatter of the observed data ``y`` (N, D)."""
    from matplotlib.patches import Patch

    fig = _new_figure((7.5, 6.5))
    ax = fig.add_subplot()
    handles = []
    if y is not None:
        observed = subsample_rows(y[:, list(shown)], max_points)
        ax.scatter(
            observed[:, 0],
            observed[:, 1],
            s=6,
            color="0.45",
            alpha=0.25,
            linewidths=0,
            zorder=1,
            rasterized=True,
        )
        handles.append(Patch(facecolor="0.45", alpha=0.4, label=f"observed data (n={y.shape[0]})"))
    for j, (label, color) in enumerate(zip(labels, colors, strict=True)):
        pts = draws[:, j][:, list(shown)]
        pts = _thin(pts[np.all(np.isfinite(pts), axis=1)], _MAX_KDE_DRAWS)
        if pts.shape[0] == 0:
            continue
        _kde_2d(ax, pts, color)
        handles.append(Patch(facecolor=color, alpha=0.75, label=label))
    ax.set_xlabel(names[shown[0]])
    ax.set_ylabel(names[shown[1]])
    ax.set_title("KDE of location draws")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.85)
    return fig


# ----------------------------------------------------------------------------------------------
# trace plot
# ----------------------------------------------------------------------------------------------


def _trace_dataset(
    post: xr.Dataset, var_names: Sequence[str], feat_idx: list[int] | None
) -> xr.Dataset:
    """One (chain, draw[, component]) variable per row of the trace plot.

    Feature dimensions (``feature`` and ``feature_``) are restricted to ``feat_idx`` and split
    into separate rows, so each row's lines are coloured by component only. For matrix variables
    only the lower triangle (diagonal included) is kept.
    """
    import itertools

    import xarray as xr

    out = {}
    for name in var_names:
        da = post[name]
        feat_dims = [dim for dim in da.dims if dim in ("feature", "feature_")]
        if feat_idx is not None:
            da = da.isel({dim: feat_idx for dim in feat_dims})
        if not feat_dims:
            out[name] = da
            continue
        labels = [_coordinate_labels(da, dim, "") for dim in feat_dims]
        for combo in itertools.product(*[range(da.sizes[dim]) for dim in feat_dims]):
            if len(combo) == 2 and combo[0] < combo[1]:
                continue  # matrices are symmetric or lower-triangular: skip the upper triangle
            sub = da.isel(dict(zip(feat_dims, combo, strict=True)), drop=True)
            tag = ", ".join(lab[c] for lab, c in zip(labels, combo, strict=True))
            out[f"{name}[{tag}]"] = sub
    return xr.Dataset(out)


def plot_trace(
    idata: InferenceData,
    path: str | os.PathLike,
    var_names: Sequence[str] = ("weights", "means"),
    features: Sequence[int | str] = (0, 1),
) -> Path:
    """Trace plot of posterior variables: per-chain density (left) and trace (right).

    One row per variable; variables with feature dimensions (``means``, ``covariance``, ...)
    get one row per selected feature (or feature pair), with only ``features`` kept when
    D > 2. Lines are coloured by component (the same colours as :func:`plot_location_kde`) and
    chains are distinguished by line style.

    Parameters
    ----------
    idata : arviz.InferenceData
    path : str or PathLike
        Where to write the PNG (parent directories are created).
    var_names : sequence of str
        Posterior variables to show.
    features : pair of int or str
        Features kept for feature-indexed variables when D > 2 (validated whenever D >= 2).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    post = _posterior(idata)
    var_names = _checked_var_names(post, var_names)
    rows = _trace_dataset(post, var_names, _trace_features(post, var_names, features))
    num_components = post.sizes.get("component", 1)
    fig, axes = _trace_figure(len(rows.data_vars))
    _draw_traces(rows, axes, _component_colors(max(num_components, 1)), legend=num_components > 1)
    _keep_first_legend(axes[:, 0])
    return _save(fig, path)


def _checked_var_names(post: xr.Dataset, var_names: Sequence[str] | str) -> list[str]:
    """``var_names`` as a list, checked to name at least one variable of ``post``."""
    if isinstance(var_names, str):
        var_names = (var_names,)
    var_names = list(var_names)
    if not var_names:
        raise ValueError("var_names must name at least one posterior variable")
    missing = [v for v in var_names if v not in post]
    if missing:
        raise ValueError(
            f"unknown posterior variable(s) {missing}; available: {sorted(post.data_vars)}"
        )
    return var_names


def _trace_features(
    post: xr.Dataset, var_names: list[str], features: Sequence[int | str]
) -> list[int] | None:
    """The feature indices the trace keeps: ``features`` validated (in the given order when
    D > 2, sorted when D = 2); None when no variable has a feature dimension or D = 1."""
    has_feature = any("feature" in post[v].dims or "feature_" in post[v].dims for v in var_names)
    if not has_feature:
        return None
    dim = "feature" if any("feature" in post[v].dims for v in var_names) else "feature_"
    size = post.sizes[dim]
    if size < 2:
        return None
    fi, fj = resolve_features(features, _coordinate_labels(post, dim, "x"))
    return [fi, fj] if size > 2 else sorted([fi, fj])


def _trace_figure(n_rows: int) -> tuple[Figure, np.ndarray]:
    """A figure with ``n_rows`` x 2 axes (the axes array has that shape) at fixed margins."""
    width, height = 12.0, max(2.2 * n_rows, 3.0)
    # Fixed margins, in inches: the grid is regular, and a constrained layout would cost
    # a second drawing pass when saving.
    fig = _new_figure((width, height), constrained=False)
    fig.subplots_adjust(
        left=0.15 / width,
        right=1 - 0.15 / width,
        bottom=0.35 / height,
        top=1 - 0.3 / height,
        wspace=0.12,
        hspace=0.55 * n_rows / (height - 0.65 - 0.55 * (n_rows - 1)) if n_rows > 1 else 0.0,
    )
    return fig, fig.subplots(n_rows, 2, squeeze=False)


def _draw_traces(rows: xr.Dataset, axes: np.ndarray, colors: list, legend: bool) -> None:
    """:func:`arviz.plot_trace` of ``rows`` on ``axes`` (rows, 2), one colour per component."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz's import-time refactor notice
        import arviz as az

    with warnings.catch_warnings():
        # constant rows (e.g. zero off-diagonals) are fine: arviz just draws no density there
        warnings.filterwarnings("ignore", message=".*single value or no finite values.*")
        # arviz 0.23 + matplotlib 3.11 deprecation noise, not actionable here
        warnings.filterwarnings("ignore", message=".*alias_mapping to normalize_kwargs.*")
        az.plot_trace(
            rows,
            compact=True,
            compact_prop={"color": colors},
            chain_prop={"linestyle": ("solid", "dotted", "dashed", "dashdot")},
            legend=legend,
            axes=axes,
            show=False,
        )


def _keep_first_legend(density_axes: np.ndarray) -> None:
    """Keep one component legend (the first one) so the densities below stay visible."""
    seen = False
    for ax in density_axes:
        leg = ax.get_legend()
        if leg is not None:
            if seen:
                leg.remove()
            seen = True
