"""Figures for posterior draws of a Bayesian Gaussian mixture.

Two figures are provided, each as a :class:`~matplotlib.figure.Figure` (to inspect or adjust)
and as a PNG writer:

* :func:`location_figure` / :func:`plot_location_kde`: where each component lies and how far
  it spreads. The TFP tutorial's "KDE of loc draws" (one filled 2-D kernel density estimate
  per component of the posterior draws of its mean) with, around each posterior mean, the
  1 and 2 sd ellipses of the posterior mean covariance, over a light scatter of the observed
  data; empty components are left out and named in the legend.
* :func:`trace_figure` / :func:`plot_trace`: a trace plot (per-chain densities on the left,
  traces on the right) built on :func:`arviz.plot_trace`, one colour per mixture component,
  with the sampler's log density in a last row, a title naming the run and one legend above
  the axes.

Figures are built on :class:`matplotlib.figure.Figure` objects that are never registered with
``pyplot``, so no window is ever opened whatever the configured backend, and nothing has to be
closed by the caller. PNGs are written with the Agg renderer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bgmm.data.columns import resolve_features
from bgmm.data.subsample import subsample_rows

if TYPE_CHECKING:
    import xarray as xr
    from arviz import InferenceData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["location_figure", "plot_location_kde", "plot_trace", "trace_figure"]

_DPI = 100
_GRID_SIZE = 100  # grid points per axis for the 2-D KDE
_KDE_CUT = 3.0  # grid extends this many bandwidths beyond the draws (as seaborn's ``cut``)
_KDE_LEVELS = 10  # iso-proportion levels, as seaborn's default
_KDE_THRESH = 0.05  # lowest level is left unfilled (seaborn's ``shade_lowest=False``)
_MAX_KDE_DRAWS = 1000  # draws per component fed to the KDE (thinned deterministically)
# Spread ellipses: Mahalanobis radius and line style; a 2-D normal puts 1 - exp(-r^2 / 2) of
# its mass inside radius r, 39 % at 1 and 86 % at 2.
_ELLIPSE_RADII = ((1, "solid"), (2, "dashed"))
_ELLIPSE_MASS = ("39%", "86%")
# Trace figure: chains' line styles (repeated past the fourth chain), the colour of rows
# without components, the log-density row's name, and the layout in inches.
_CHAIN_STYLES = ("solid", "dotted", "dashed", "dashdot")
_NEUTRAL = "0.3"
_LP_ROW = "lp (sampler's log density)"
_LEGEND_COLUMNS = 6
_TITLE_PAD_IN = 0.1  # above the figure title
_TRACE_TITLE_IN = 0.45  # the figure title's band, padding included
_LEGEND_ROW_IN = 0.28  # one row of the legend under it
_ROW_TITLE_IN = 0.35  # the first row's axes titles
_AXES_HEIGHT_IN = 1.6
_ROW_GAP_IN = 0.95  # x label and tick labels of a row, then the next row's titles
_BOTTOM_IN = 0.65
_LEFT_IN = 0.85
_RIGHT_IN = 0.25
_COLUMN_GAP_IN = 1.0  # the trace column's y label and tick labels


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
    return f"component {k} (weight {weights[k]:.2g})"


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


class _Components(NamedTuple):
    """What the location figure shows of each of the K components.

    Attributes
    ----------
    labels : list of K str
        Legend labels, with the posterior mean weight when known.
    colors : list of K RGBA tuples
    shown : array of bool, shape (K,)
        False for empty components (posterior mean weight x N < 1 observation).
    centres : array, shape (K, D)
        Posterior mean of each component's mean.
    covariances : array, shape (K, D, D), or None
        Posterior mean of each component's covariance; None when the posterior has neither
        ``covariance`` nor ``chol_precision``.
    weights : array, shape (K,), or None
        Posterior mean weights.
    """

    labels: list[str]
    colors: list
    shown: np.ndarray
    centres: np.ndarray
    covariances: np.ndarray | None
    weights: np.ndarray | None


def _components(
    idata: InferenceData, draws: np.ndarray, num_observations: int | None
) -> _Components:
    """The :class:`_Components` of the location figure; ``draws`` (n_draws, K, D) of the
    means, ``num_observations`` the data's N (None: no component is called empty)."""
    _, k, d = draws.shape
    weights = _mean_weights(idata, k)
    shown = np.ones(k, dtype=bool)
    if weights is not None and num_observations:
        # An expected count below one observation: the component explains no data, and its
        # location and spread are the prior's, not the data's.
        shown = ~(np.nan_to_num(weights, nan=np.inf) * num_observations < 1.0)
    with np.errstate(invalid="ignore"):
        centres = np.nanmean(draws, axis=0)
    return _Components(
        labels=[_weight_label(j, weights) for j in range(k)],
        colors=_component_colors(k),
        shown=shown,
        centres=centres,
        covariances=_mean_covariances(idata, k, d),
        weights=weights,
    )


def _mean_covariances(idata: InferenceData, k: int, d: int) -> np.ndarray | None:
    """The posterior mean covariance of each component, shape (K, D, D), from ``covariance``
    or else ``chol_precision`` (as (L L')^-1); None when neither is there in that shape."""
    post = _posterior(idata)
    for name in ("covariance", "chol_precision"):
        if name not in post:
            continue
        values = np.asarray(post[name].values, dtype=float)
        if values.ndim != 5 or values.shape[2:] != (k, d, d):
            continue
        values = values.reshape(-1, k, d, d)
        if name == "chol_precision":
            with np.errstate(all="ignore"):
                values = np.linalg.inv(values @ np.swapaxes(values, -1, -2))
        with np.errstate(invalid="ignore"):
            return np.nanmean(values, axis=0)
    return None


def _observed_label(num_shown: int, num_observations: int) -> str:
    """The legend label of the data: how many of the N points are drawn."""
    if num_shown < num_observations:
        return f"observed data ({num_shown:,} of {num_observations:,} points shown)"
    return f"observed data ({num_observations:,} points)"


def _empty_label(shown: np.ndarray) -> str | None:
    """The legend line that names the components left out; None when all are shown."""
    empty = np.flatnonzero(~shown)
    if empty.size == 0:
        return None
    plural = "s" if empty.size > 1 else ""
    indices = ", ".join(str(j) for j in empty)
    return (
        f"{empty.size} empty component{plural} not shown "
        f"(component{plural} {indices}: weight x N < 1)"
    )


def location_figure(
    idata: InferenceData,
    features: Sequence[int | str] = (0, 1),
    max_points: int | None = 5000,
) -> Figure:
    """The figure :func:`plot_location_kde` writes, as a matplotlib Figure.

    Parameters and behaviour as :func:`plot_location_kde`; the figure is not registered
    with pyplot.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (two, a twin, for one feature) and its legend outside the plotting area.
    """
    draws, names = _means_array(idata)
    d = draws.shape[2]
    y = _observed(idata)
    if y is not None and y.shape[1] != d:
        y = None
    if max_points is not None and max_points < 0:
        raise ValueError(f"max_points must be non-negative; got {max_points}")
    components = _components(idata, draws, None if y is None else len(y))
    if d == 1:
        return _location_figure_1d(draws[:, :, 0], names[0], y, components, max_points)
    shown = resolve_features(features, names)
    return _location_figure_2d(draws, names, shown, y, components, max_points)


def plot_location_kde(
    idata: InferenceData,
    path: str | os.PathLike,
    features: Sequence[int | str] = (0, 1),
    max_points: int | None = 5000,
) -> Path:
    """Plot where each component lies and how far it spreads, over the data.

    For each component, the draws of its mean (all chains pooled) projected on the two chosen
    features are summarised by a filled 2-D Gaussian KDE (the tutorial's figure: where the
    mean lies), and its posterior mean covariance by the ellipses of 1 and 2 standard
    deviations around its posterior mean (39 % and 86 % of a 2-D normal's mass: how far its
    observations spread), one colour per component, over a light scatter of the observed data
    (subsampled to ``max_points``; the legend says how many of the N points are shown).
    Empty components, whose posterior mean weight times N is below one observation, are left
    out and the legend says so. Components whose draws are degenerate (e.g. constant) show
    their mean draws as markers. With a single feature (D == 1) the data's histogram is drawn
    with each component's weighted normal density, and 1-D KDEs of the mean draws on a twin
    axis; ``features`` is then ignored.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior.means`` (chain, draw, component, feature); ``posterior.weights``,
        ``posterior.covariance`` (or ``chol_precision``) and ``observed_data.y`` are used
        when present.
    path : str or PathLike
        Where to write the PNG (parent directories are created).
    features : pair of int or str
        The two features (indices 0..D-1 or names from the ``feature`` coordinate) to show.
    max_points : int or None
        At most this many observations are scattered (None: all).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``features`` is not two distinct valid features, or ``means`` is missing/misshapen.
    """
    return _save(location_figure(idata, features, max_points), path)


def _legend_outside(fig: Figure, handles: list) -> None:
    """The figure's legend to the right of its axes, outside them, so that it hides no data
    (the constrained layout makes room for it)."""
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


def _location_figure_1d(
    draws: np.ndarray,
    name: str,
    y: np.ndarray | None,
    components: _Components,
    max_points: int | None,
) -> Figure:
    """The figure for one feature: the data's histogram with each shown component's weighted
    normal density (posterior mean parameters), and KDEs of the mean draws (n_draws, K) on a
    twin axis; ``y`` (N, 1) the observed data."""
    fig = _new_figure((9.5, 5.0))
    data_ax = fig.add_subplot()
    handles = []
    if y is not None:
        observed = subsample_rows(y, max_points)[:, 0]
        finite = observed[np.isfinite(observed)]
        if finite.size:
            data_ax.hist(finite, bins="auto", density=True, color="0.6", alpha=0.5)
        handles.append(_data_handle(_observed_label(len(observed), len(y)), patch=True))
    handles += _component_densities_1d(data_ax, components)
    data_ax.set_ylabel("data density")
    data_ax.set_ylim(bottom=0)
    ax = data_ax.twinx()
    for j in np.flatnonzero(components.shown):
        x = draws[:, j]
        x = _thin(x[np.isfinite(x)], _MAX_KDE_DRAWS)
        if x.size:
            _kde_1d(ax, x, components.colors[j], components.labels[j])
    ax.set_ylabel("posterior density of the mean (filled)")
    ax.set_ylim(bottom=0)
    handles += _component_handles(components)
    _legend_outside(fig, handles)
    data_ax.set_xlabel(name)
    data_ax.set_title("Component locations (filled) and spread (dashed)")
    return fig


def _component_densities_1d(ax: Axes, components: _Components) -> list:
    """Each shown component's density theta_k N(x | mu_k, sigma_k^2) at its posterior mean
    parameters, a line on ``ax``; returns the legend handles of the line styles."""
    from matplotlib.lines import Line2D

    if components.covariances is None:
        return []
    sds = np.sqrt(components.covariances[:, 0, 0])
    k = len(sds)
    weights = components.weights if components.weights is not None else np.full(k, 1.0 / k)
    ok = components.shown & np.isfinite(sds) & (sds > 0) & np.isfinite(components.centres[:, 0])
    if not ok.any():
        return []
    low = np.min(components.centres[ok, 0] - 4 * sds[ok])
    high = np.max(components.centres[ok, 0] + 4 * sds[ok])
    grid = np.linspace(low, high, 400)
    for j in np.flatnonzero(ok):
        z = (grid - components.centres[j, 0]) / sds[j]
        density = weights[j] * np.exp(-0.5 * z**2) / (sds[j] * np.sqrt(2 * np.pi))
        ax.plot(grid, density, color=components.colors[j], lw=1.5, ls="--", gid=f"spread {j}")
    return [Line2D([], [], color="0.3", ls="--", label="weight x normal density (spread)")]


def _data_handle(label: str, patch: bool = False):
    """A grey legend entry for the observed data."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if patch:
        return Patch(facecolor="0.6", alpha=0.5, label=label)
    return Line2D([], [], ls="none", marker="o", color="0.45", alpha=0.6, label=label)


def _component_handles(components: _Components) -> list:
    """Legend entries: one per shown component, then the note on empty ones."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=components.colors[j], alpha=0.75, label=components.labels[j])
        for j in np.flatnonzero(components.shown)
    ]
    empty = _empty_label(components.shown)
    if empty:
        handles.append(Line2D([], [], ls="none", label=empty))
    return handles


def _location_figure_2d(
    draws: np.ndarray,
    names: list[str],
    shown: tuple[int, int],
    y: np.ndarray | None,
    components: _Components,
    max_points: int | None,
) -> Figure:
    """The figure for two of the D features, indices ``shown``: for each shown component the
    2-D KDE of its mean draws (n_draws, K, D) and its 1 and 2 sd ellipses, over a scatter of
    the observed data ``y`` (N, D)."""
    fig = _new_figure((9.5, 6.5))
    ax = fig.add_subplot()
    handles = []
    columns = list(shown)
    if y is not None:
        observed = subsample_rows(y[:, columns], max_points)
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
        handles.append(_data_handle(_observed_label(len(observed), len(y))))
    for j in np.flatnonzero(components.shown):
        pts = draws[:, j][:, columns]
        pts = _thin(pts[np.all(np.isfinite(pts), axis=1)], _MAX_KDE_DRAWS)
        if pts.shape[0]:
            _kde_2d(ax, pts, components.colors[j])
    handles += _spread_ellipses(ax, components, columns)
    handles += _component_handles(components)
    ax.set_xlabel(names[shown[0]])
    ax.set_ylabel(names[shown[1]])
    ax.set_title("Component locations (filled) and spread (ellipses)")
    ax.grid(True, alpha=0.3)
    _legend_outside(fig, handles)
    return fig


def _spread_ellipses(ax: Axes, components: _Components, columns: list[int]) -> list:
    """The 1 and 2 sd ellipses of every shown component's posterior mean covariance,
    projected on ``columns`` (its 2 x 2 block is the marginal covariance), centred on its
    posterior mean; returns the legend handles of the two line styles."""
    from matplotlib.lines import Line2D

    if components.covariances is None:
        return []
    drawn = False
    for j in np.flatnonzero(components.shown):
        block = components.covariances[j][np.ix_(columns, columns)]
        centre = components.centres[j, columns]
        for radius, style in _ELLIPSE_RADII:
            ellipse = _ellipse(centre, block, radius, components.colors[j], style)
            if ellipse is not None:
                ellipse.set_gid(f"component {j}, {radius} sd")
                ax.add_patch(ellipse)
                drawn = True
    if not drawn:
        return []
    return [
        Line2D([], [], color="0.3", ls=style, label=f"{radius} sd ellipse ({mass} of its mass)")
        for (radius, style), mass in zip(_ELLIPSE_RADII, _ELLIPSE_MASS, strict=True)
    ]


def _ellipse(centre: np.ndarray, covariance: np.ndarray, radius: float, color, style: str):
    """The Mahalanobis-``radius`` ellipse of ``covariance`` (2, 2) around ``centre`` (2,),
    as an unfilled patch; None when the covariance is not finite and positive definite."""
    from matplotlib.patches import Ellipse

    if not (np.all(np.isfinite(covariance)) and np.all(np.isfinite(centre))):
        return None
    values, vectors = np.linalg.eigh(0.5 * (covariance + covariance.T))
    if values[0] <= 0:
        return None
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))  # the major axis
    return Ellipse(
        tuple(centre),
        width=2 * radius * np.sqrt(values[1]),
        height=2 * radius * np.sqrt(values[0]),
        angle=angle,
        fill=False,
        edgecolor=color,
        linestyle=style,
        linewidth=1.6,
        zorder=4,
    )


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


def trace_figure(
    idata: InferenceData,
    var_names: Sequence[str] = ("weights", "means"),
    features: Sequence[int | str] = (0, 1),
    include_lp: bool = True,
    title: str | None = None,
) -> Figure:
    """The figure :func:`plot_trace` writes, as a matplotlib Figure.

    Parameters and behaviour as :func:`plot_trace`; the figure is not registered with
    pyplot.

    Returns
    -------
    matplotlib.figure.Figure
        Axes in rows x 2 (density, trace), a title and one legend above the axes.
    """
    post = _posterior(idata)
    var_names = _checked_var_names(post, var_names)
    rows = _trace_dataset(post, var_names, _trace_features(post, var_names, features))
    if include_lp:
        rows = _with_lp_row(rows, idata)
    num_components = post.sizes.get("component", 1)
    colors = _component_colors(max(num_components, 1))
    handles = _trace_handles(idata, colors, num_components, post.sizes.get("chain", 1))
    fig, axes = _trace_figure(len(rows.data_vars), _legend_rows(len(handles)))
    _draw_traces(rows, axes, colors, legend=False)
    _label_trace_axes(rows, axes)
    height = fig.get_figheight()
    fig.suptitle(
        title if title is not None else _trace_title(post),
        y=1 - _TITLE_PAD_IN / height,
        va="top",
        fontsize="large",
    )
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - _TRACE_TITLE_IN / height),
        ncol=min(len(handles), _LEGEND_COLUMNS),
        fontsize="small",
        frameon=False,
    )
    return fig


def plot_trace(
    idata: InferenceData,
    path: str | os.PathLike,
    var_names: Sequence[str] = ("weights", "means"),
    features: Sequence[int | str] = (0, 1),
    include_lp: bool = True,
    title: str | None = None,
) -> Path:
    """Trace plot of posterior variables: per-chain density (left) and trace (right).

    One row per variable; variables with feature dimensions (``means``, ``covariance``, ...)
    get one row per selected feature (or feature pair), with only ``features`` kept when
    D > 2; a last row traces the sampler's log density (``sample_stats.lp``), whose trends
    and chain disagreements show a run that has not converged whatever the labels. Lines
    are coloured by component (the same colours as :func:`plot_location_kde`; rows without
    components in grey) and chains are distinguished by line style. The title names the
    run (sampler, chains, draws); the legend sits in a row of its own above the axes, so
    that it hides no trace; every axes is labelled (value and density, draw and value).

    Parameters
    ----------
    idata : arviz.InferenceData
    path : str or PathLike
        Where to write the PNG (parent directories are created).
    var_names : sequence of str
        Posterior variables to show.
    features : pair of int or str
        Features kept for feature-indexed variables when D > 2 (validated whenever D >= 2).
    include_lp : bool
        Add the log-density row when ``sample_stats`` has ``lp`` laid out as (chain, draw).
    title : str, optional
        The figure's title; by default made from the run's attributes and sizes.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return _save(trace_figure(idata, var_names, features, include_lp, title), path)


def _with_lp_row(rows: xr.Dataset, idata: InferenceData) -> xr.Dataset:
    """``rows`` with the sampler's log density (``sample_stats.lp``, (chain, draw)) added
    as ``_LP_ROW``; unchanged when there is none in that layout."""
    try:
        lp = idata.sample_stats["lp"]
    except (AttributeError, KeyError):
        return rows
    if tuple(lp.dims) != ("chain", "draw") or any(
        rows.sizes.get(dim, size) != size for dim, size in lp.sizes.items()
    ):
        return rows
    # By position, not by coordinates: the two groups of one run hold the same draws.
    return rows.assign({_LP_ROW: (("chain", "draw"), np.asarray(lp.values))})


def _trace_title(post: xr.Dataset) -> str:
    """What run the trace shows: sampler, chains, draws and warm-up, from the attributes
    bgmm stores (docs/design.md section 3) and the posterior's sizes."""
    attrs = post.attrs
    chains, draws = post.sizes.get("chain", 1), post.sizes.get("draw", 0)
    sampler = str(attrs.get("sampler", ""))
    name = {"hmc": "HMC", "nuts": "NUTS", "gibbs": "Gibbs"}.get(sampler, sampler)
    text = f"Posterior draws: {name + ' sampler, ' if name else ''}"
    text += f"{chains} chain{'s' if chains != 1 else ''} x {draws:,} draws"
    if "num_warmup" in attrs:
        text += f" (after {int(attrs['num_warmup']):,} warm-up)"
    relabel = attrs.get("relabel")
    if relabel and relabel != "none":
        text += f", components relabelled ({relabel})"
    return text


def _trace_handles(idata: InferenceData, colors: list, num_components: int, num_chains: int):
    """Legend entries: one colour per component (with its mean weight), one line style per
    chain (chains past the fourth share the styles, as in :func:`_draw_traces`)."""
    from matplotlib.lines import Line2D

    weights = _mean_weights(idata, num_components)
    handles = []
    if num_components > 1:
        handles += [
            Line2D([], [], color=colors[j], lw=2, label=_weight_label(j, weights))
            for j in range(num_components)
        ]
    for i, style in enumerate(_CHAIN_STYLES[: max(num_chains, 1)]):
        chains = list(range(i, num_chains, len(_CHAIN_STYLES)))
        label = "chain " + ", ".join(map(str, chains[:3])) + (", ..." if len(chains) > 3 else "")
        handles.append(Line2D([], [], color="0.25", ls=style, label=label))
    return handles


def _legend_rows(num_handles: int) -> int:
    return -(-num_handles // _LEGEND_COLUMNS)


def _label_trace_axes(rows: xr.Dataset, axes: np.ndarray) -> None:
    """Axis labels on every row: value and density on the left, draw and value on the
    right; rows without a component dimension (the log density) in grey."""
    for (name, values), (density_ax, trace_ax) in zip(rows.data_vars.items(), axes, strict=True):
        quantity = str(name).split("[", 1)[0].split(" (", 1)[0]
        density_ax.set_xlabel(quantity)
        density_ax.set_ylabel("density")
        trace_ax.set_xlabel("draw")
        trace_ax.set_ylabel(quantity)
        if "component" not in values.dims:
            for ax in (density_ax, trace_ax):
                for line in ax.get_lines():
                    line.set_color(_NEUTRAL)


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


def _trace_figure(n_rows: int, legend_rows: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure with ``n_rows`` x 2 axes (the axes array has that shape) at fixed margins,
    with room above the axes for the title and ``legend_rows`` rows of legend."""
    width = 12.0
    top = _TRACE_TITLE_IN + legend_rows * _LEGEND_ROW_IN + _ROW_TITLE_IN
    height = top + _BOTTOM_IN + n_rows * _AXES_HEIGHT_IN + (n_rows - 1) * _ROW_GAP_IN
    # Fixed margins, in inches: the grid is regular, and a constrained layout would cost
    # a second drawing pass when saving.
    fig = _new_figure((width, height), constrained=False)
    axes_width = (width - _LEFT_IN - _RIGHT_IN - _COLUMN_GAP_IN) / 2
    fig.subplots_adjust(
        left=_LEFT_IN / width,
        right=1 - _RIGHT_IN / width,
        bottom=_BOTTOM_IN / height,
        top=1 - top / height,
        wspace=_COLUMN_GAP_IN / axes_width,
        hspace=_ROW_GAP_IN / _AXES_HEIGHT_IN,
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
            chain_prop={"linestyle": _CHAIN_STYLES},
            legend=legend,
            axes=axes,
            show=False,
        )
