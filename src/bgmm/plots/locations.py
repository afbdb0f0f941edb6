"""``locations.png``: where each component lies (the KDE of its mean draws, as the TFP
tutorial draws it) and how far it spreads (ellipses of its posterior mean covariance), over
the data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bgmm.data.columns import resolve_features
from bgmm.data.subsample import subsample_rows
from bgmm.plots.common import (
    _component_colors,
    _mean_weights,
    _means_array,
    _new_figure,
    _observed,
    _posterior,
    _save,
    _thin,
    _weight_label,
)

if TYPE_CHECKING:
    from arviz import InferenceData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_GRID_SIZE = 100  # grid points per axis for the 2-D KDE
_KDE_CUT = 3.0  # grid extends this many bandwidths beyond the draws (as seaborn's ``cut``)
_KDE_LEVELS = 10  # iso-proportion levels, as seaborn's default
_KDE_THRESH = 0.05  # lowest level is left unfilled (seaborn's ``shade_lowest=False``)
_MAX_KDE_DRAWS = 1000  # draws per component fed to the KDE (thinned deterministically)
# Spread ellipses: Mahalanobis radius and line style; a 2-D normal puts 1 - exp(-r^2 / 2) of
# its mass inside radius r, 39 % at 1 and 86 % at 2.
_ELLIPSE_RADII = ((1, "solid"), (2, "dashed"))
_ELLIPSE_MASS = ("39%", "86%")

__all__ = ["location_figure", "plot_location_kde"]


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
