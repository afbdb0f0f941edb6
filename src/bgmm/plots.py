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

import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


def _new_figure(figsize: tuple[float, float], constrained: bool = True):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained" if constrained else None)


def _save(fig, path: str | os.PathLike) -> Path:
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


def _posterior(idata):
    try:
        return idata.posterior
    except AttributeError as err:
        raise ValueError("idata has no 'posterior' group") from err


def _means_array(idata):
    """Return (draws, feature_names): draws has shape (n_draws, K, D), chains pooled."""
    post = _posterior(idata)
    if "means" not in post:
        raise ValueError("posterior has no 'means' variable")
    means = post["means"]
    if means.ndim != 4 or means.dims[:2] != ("chain", "draw"):
        raise ValueError(
            f"posterior 'means' must have dims (chain, draw, component, feature); got {means.dims}"
        )
    feat_dim = means.dims[3]
    if feat_dim in means.coords:
        names = [str(v) for v in np.asarray(means.coords[feat_dim].values)]
    else:
        names = [f"x{i}" for i in range(means.shape[3])]
    values = np.asarray(means.values, dtype=float)
    return values.reshape(-1, values.shape[2], values.shape[3]), names


def _mean_weights(idata, k: int) -> np.ndarray | None:
    post = _posterior(idata)
    if "weights" not in post:
        return None
    w = np.asarray(post["weights"].values, dtype=float)
    if w.ndim < 3 or w.shape[-1] != k:
        return None
    with np.errstate(invalid="ignore"):
        return np.nanmean(w.reshape(-1, k), axis=0)


def _observed(idata) -> np.ndarray | None:
    try:
        y = idata.observed_data["y"]
    except (AttributeError, KeyError):
        return None
    arr = np.asarray(y.values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr.reshape(arr.shape[0], -1)


def _resolve_features(features: Any, names: Sequence[str]) -> tuple[int, int]:
    """Validate ``features`` (two distinct indices or feature names) against ``names``."""
    n = len(names)
    if isinstance(features, (str, bytes)):
        features = None
    elif not isinstance(features, Sequence):
        try:
            features = tuple(features)
        except TypeError:
            features = None
    if features is None or len(features) != 2:
        raise ValueError(
            f"features must be a pair of feature indices (0..{n - 1}) or names {list(names)}; "
            f"got {features!r}"
        )
    out = []
    for f in features:
        if isinstance(f, str):
            if f not in names:
                raise ValueError(f"unknown feature name {f!r}; available: {list(names)}")
            out.append(list(names).index(f))
        elif isinstance(f, numbers.Integral) and not isinstance(f, bool):
            if not 0 <= int(f) < n:
                raise ValueError(
                    f"feature index {int(f)} out of range: data has {n} feature(s), "
                    f"valid indices are 0..{n - 1}"
                )
            out.append(int(f))
        else:
            raise ValueError(f"feature must be an int index or a feature name; got {f!r}")
    if out[0] == out[1]:
        raise ValueError(f"features must be two distinct features; got {features!r}")
    return out[0], out[1]


def _subsample(x: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    if max_points is not None and x.shape[0] > max_points:
        idx = np.random.default_rng(seed).choice(x.shape[0], size=max_points, replace=False)
        return x[np.sort(idx)]
    return x


def _thin(x: np.ndarray, max_n: int) -> np.ndarray:
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
    by FFT: 1 ms against scipy's exact 50 ms per component at 1000 draws on a 100 x 100
    grid. Binning widens the kernel by a cell's variance (h^2 + d^2 / 12), 0.3 % at our
    grids, where cells are about a quarter of a bandwidth.
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
    if weights is None or not np.isfinite(weights[k]):
        return f"component {k}"
    return f"component {k} (weight ~ {weights[k]:.2f})"


# ----------------------------------------------------------------------------------------------
# KDE of location draws
# ----------------------------------------------------------------------------------------------


def _kde_2d(ax, pts: np.ndarray, color) -> None:
    from matplotlib.colors import to_rgba

    kde = _kde(pts)
    if kde is None:
        centre = pts.mean(axis=0)
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=color, alpha=0.6, zorder=3)
        ax.scatter(
            [centre[0]], [centre[1]], marker="X", s=120, color=color, edgecolor="k", zorder=4
        )
        return
    bw = np.sqrt(np.diag(kde.covariance))
    lo = pts.min(axis=0) - _KDE_CUT * bw
    hi = pts.max(axis=0) + _KDE_CUT * bw
    gx = np.linspace(lo[0], hi[0], _GRID_SIZE)
    gy = np.linspace(lo[1], hi[1], _GRID_SIZE)
    xx, yy = np.meshgrid(gx, gy)
    zz = _binned_kde(pts, kde.covariance, gx, gy)
    levels = _iso_proportion_levels(zz)
    if levels.size < 2 or not np.all(np.isfinite(levels)):
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=color, alpha=0.6, zorder=3)
        return
    # Fill from the lowest level upwards (the region below it stays unfilled).
    top = max(zz.max(), levels[-1]) * (1 + 1e-9)
    fill_levels = np.append(levels, top) if top > levels[-1] else levels
    n_bands = len(fill_levels) - 1
    alphas = np.linspace(0.25, 0.9, max(n_bands, 1))
    ax.contourf(
        xx,
        yy,
        zz,
        levels=fill_levels,
        colors=[to_rgba(color, a) for a in alphas],
        zorder=2,
    )
    ax.contour(xx, yy, zz, levels=levels[:1], colors=[color], linewidths=1.0, zorder=3)


def _kde_1d(ax, x: np.ndarray, color, label: str) -> None:
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
    idata,
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
    from matplotlib.patches import Patch

    draws, names = _means_array(idata)
    _, k, d = draws.shape
    weights = _mean_weights(idata, k)
    colors = _component_colors(k)
    y = _observed(idata)
    if y is not None and y.shape[1] != d:
        y = None
    if max_points is not None and max_points < 0:
        raise ValueError(f"max_points must be non-negative; got {max_points}")

    if d == 1:
        fig = _new_figure((7.5, 5.0))
        ax = fig.add_subplot()
        data_ax = ax
        if y is not None:
            yy = _subsample(y, max_points)[:, 0]
            yy = yy[np.isfinite(yy)]
            if yy.size:
                ax.hist(yy, bins="auto", density=True, color="0.6", alpha=0.5, label="observed")
            ax.set_ylabel("data density")
            ax = ax.twinx()
        for j in range(k):
            x = draws[:, j, 0]
            x = _thin(x[np.isfinite(x)], _MAX_KDE_DRAWS)
            if x.size:
                _kde_1d(ax, x, colors[j], _weight_label(j, weights))
        ax.set_ylabel("posterior density of mean")
        ax.set_ylim(bottom=0)
        handles, labels = [], []
        for a in {id(data_ax): data_ax, id(ax): ax}.values():
            h, lab = a.get_legend_handles_labels()
            handles += h
            labels += lab
        if handles:
            ax.legend(handles, labels, loc="best", fontsize="small")
        data_ax.set_xlabel(names[0])
        data_ax.set_title("KDE of location draws")
        return _save(fig, path)

    fi, fj = _resolve_features(features, names)
    fig = _new_figure((7.5, 6.5))
    ax = fig.add_subplot()
    handles = []
    if y is not None:
        yy = _subsample(y[:, [fi, fj]], max_points)
        ax.scatter(
            yy[:, 0],
            yy[:, 1],
            s=6,
            color="0.45",
            alpha=0.25,
            linewidths=0,
            zorder=1,
            rasterized=True,
        )
        handles.append(Patch(facecolor="0.45", alpha=0.4, label=f"observed data (n={y.shape[0]})"))
    for j in range(k):
        pts = draws[:, j][:, [fi, fj]]
        pts = _thin(pts[np.all(np.isfinite(pts), axis=1)], _MAX_KDE_DRAWS)
        if pts.shape[0] == 0:
            continue
        _kde_2d(ax, pts, colors[j])
        handles.append(Patch(facecolor=colors[j], alpha=0.75, label=_weight_label(j, weights)))
    ax.set_xlabel(names[fi])
    ax.set_ylabel(names[fj])
    ax.set_title("KDE of location draws")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.85)
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------
# trace plot
# ----------------------------------------------------------------------------------------------


def _trace_dataset(post, var_names: Sequence[str], feat_idx: list[int] | None):
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
        labels = []
        for dim in feat_dims:
            if dim in da.coords:
                labels.append([str(v) for v in np.asarray(da.coords[dim].values)])
            else:
                labels.append([str(i) for i in range(da.sizes[dim])])
        for combo in itertools.product(*[range(da.sizes[dim]) for dim in feat_dims]):
            if len(combo) == 2 and combo[0] < combo[1]:
                continue  # matrices are symmetric or lower-triangular: skip the upper triangle
            sub = da.isel(dict(zip(feat_dims, combo, strict=True)), drop=True)
            tag = ", ".join(lab[c] for lab, c in zip(labels, combo, strict=True))
            out[f"{name}[{tag}]"] = sub
    return xr.Dataset(out)


def plot_trace(
    idata,
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz's import-time refactor notice
        import arviz as az

    post = _posterior(idata)
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

    feat_idx = None
    has_feature = any("feature" in post[v].dims or "feature_" in post[v].dims for v in var_names)
    if has_feature:
        dim = "feature" if any("feature" in post[v].dims for v in var_names) else "feature_"
        size = post.sizes[dim]
        if dim in post.coords:
            names = [str(v) for v in np.asarray(post.coords[dim].values)]
        else:
            names = [f"x{i}" for i in range(size)]
        if size >= 2:
            fi, fj = _resolve_features(features, names)
            feat_idx = [fi, fj] if size > 2 else sorted([fi, fj])
    ds = _trace_dataset(post, var_names, feat_idx)

    k = post.sizes.get("component", 1)
    colors = _component_colors(max(k, 1))
    n_rows = len(ds.data_vars)
    width, height = 12.0, max(2.2 * n_rows, 3.0)
    # Fixed margins, in inches: the grid is regular, and a constrained layout would cost
    # a second drawing pass when saving (a third of this figure's time).
    fig = _new_figure((width, height), constrained=False)
    fig.subplots_adjust(
        left=0.15 / width,
        right=1 - 0.15 / width,
        bottom=0.35 / height,
        top=1 - 0.3 / height,
        wspace=0.12,
        hspace=0.55 * n_rows / (height - 0.65 - 0.55 * (n_rows - 1)) if n_rows > 1 else 0.0,
    )
    axes = fig.subplots(n_rows, 2, squeeze=False)
    with warnings.catch_warnings():
        # constant rows (e.g. zero off-diagonals) are fine: arviz just draws no density there
        warnings.filterwarnings("ignore", message=".*single value or no finite values.*")
        # arviz 0.23 + matplotlib 3.11 deprecation noise, not actionable here
        warnings.filterwarnings("ignore", message=".*alias_mapping to normalize_kwargs.*")
        az.plot_trace(
            ds,
            compact=True,
            compact_prop={"color": colors},
            chain_prop={"linestyle": ("solid", "dotted", "dashed", "dashdot")},
            legend=k > 1,
            axes=axes,
            show=False,
        )
    # keep one component legend (the first one) so the densities below stay visible
    seen = False
    for ax in axes[:, 0]:
        leg = ax.get_legend()
        if leg is not None:
            if seen:
                leg.remove()
            seen = True
    return _save(fig, path)
