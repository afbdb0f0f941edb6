"""``assignments.png``: each observation's most probable component and how uncertain that
is, over two features (as mclust's classification-uncertainty plot).

The uncertainty of observation i is 1 - max_k p_ik, with p_ik its membership probability
averaged over the posterior draws: 0 when the posterior puts it in one component for
certain, up to 1 - 1/K when it cannot tell the components apart. Uncertain observations are
drawn larger and on top, so that the few that matter are not hidden under the many that
are certain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bgmm.data.columns import resolve_features
from bgmm.data.subsample import subsample_rows
from bgmm.plots.common import _component_colors, _new_figure, _save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["assignments_figure", "plot_assignments"]

# Marker areas (points^2) of a certain and of the most uncertain observation.
_CERTAIN_SIZE = 6.0
_UNCERTAIN_SIZE = 60.0


def assignments_figure(
    data: np.ndarray,
    probabilities: np.ndarray,
    feature_names: Sequence[str],
    features: Sequence[int | str] = (0, 1),
    max_points: int | None = 5000,
) -> Figure:
    """The figure :func:`plot_assignments` writes.

    Parameters
    ----------
    data : array, shape (N, D)
    probabilities : array, shape (N, K)
        Membership probabilities averaged over the posterior
        (:meth:`bgmm.fit_result.FitResult.predict_proba`).
    feature_names : sequence of D str
    features : pair of int or str
        The two features shown (one feature: against the observation's index).
    max_points : int or None
        At most this many observations (a random subsample; the title says so).

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = np.asarray(data, float)
    probabilities = np.asarray(probabilities, float)
    if probabilities.shape[0] != data.shape[0]:
        raise ValueError(f"{probabilities.shape[0]} rows of probabilities for {len(data)} rows")
    n, k = probabilities.shape
    rows = np.arange(n)
    if max_points is not None and n > max_points:
        rows = np.sort(subsample_rows(rows, max_points, 0))
    if data.shape[1] == 1:
        x, y, labels = rows.astype(float), data[rows, 0], ("observation", feature_names[0])
    else:
        i, j = resolve_features(features, list(feature_names))
        x, y, labels = data[rows, i], data[rows, j], (feature_names[i], feature_names[j])
    cluster = np.argmax(probabilities[rows], axis=1)
    uncertainty = 1.0 - probabilities[rows].max(axis=1)
    fig = _new_figure((6.4, 5.2))
    ax = fig.add_subplot()
    colors = np.asarray(_component_colors(k))
    worst = max(1.0 - 1.0 / k, 1e-12)
    sizes = _CERTAIN_SIZE + (_UNCERTAIN_SIZE - _CERTAIN_SIZE) * uncertainty / worst
    order = np.argsort(uncertainty, kind="stable")  # most uncertain drawn last, on top
    ax.scatter(x[order], y[order], s=sizes[order], c=colors[cluster[order]], linewidths=0)
    _legend(ax, colors, cluster, uncertainty)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    shown = f"{len(rows):,} of {n:,} observations" if len(rows) < n else f"{n:,} observations"
    ax.set_title(
        f"Most probable component; larger: more uncertain (1 - probability)\n{shown}",
        fontsize="medium",
    )
    return fig


def plot_assignments(
    data: np.ndarray,
    probabilities: np.ndarray,
    path: str | os.PathLike,
    feature_names: Sequence[str],
    features: Sequence[int | str] = (0, 1),
    max_points: int | None = 5000,
) -> Path:
    """Write ``assignments.png`` (:func:`assignments_figure`) to ``path``."""
    figure = assignments_figure(data, probabilities, feature_names, features, max_points)
    return _save(figure, path)


def _legend(ax, colors: np.ndarray, cluster: np.ndarray, uncertainty: np.ndarray) -> None:
    """One entry per component that holds an observation shown, with its count, and the
    number of observations whose uncertainty is above 0.1."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[c], label=f"{c}: {count:,}")
        for c, count in zip(*np.unique(cluster, return_counts=True), strict=True)
    ]
    uncertain = int(np.sum(uncertainty > 0.1))
    handles.append(Line2D([], [], linestyle="", label=f"{uncertain:,} with uncertainty > 0.1"))
    ax.legend(handles=handles, title="component", loc="best", fontsize="small")
