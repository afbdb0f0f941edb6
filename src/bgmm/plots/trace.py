"""``trace.png``: per-chain densities and traces of the weights, the locations and the
sampler's log density, built on :func:`arviz.plot_trace`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bgmm.data.columns import resolve_features
from bgmm.plots.common import (
    _component_colors,
    _coordinate_labels,
    _mean_weights,
    _new_figure,
    _posterior,
    _save,
    _weight_label,
)

if TYPE_CHECKING:
    import xarray as xr
    from arviz import InferenceData
    from matplotlib.figure import Figure

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

__all__ = ["plot_trace", "trace_figure"]


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
