"""A heatmap of the posterior similarity matrix, rows grouped by a point partition.

Kept apart from :mod:`bgmm.coclustering` so that computing a similarity never imports
matplotlib. Figures are built and saved as in :mod:`bgmm.plots.common` (never registered with
pyplot).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bgmm.coclustering import Similarity
from bgmm.plots.common import _new_figure, _save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_similarity", "similarity_order"]


def similarity_order(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An order of the rows: cluster by cluster, largest first (equal sizes by label), and
    within a cluster by average similarity to its members, most typical first.

    Parameters
    ----------
    matrix : array, shape (M, M)
    labels : array of int, shape (M,)

    Returns
    -------
    array of int, shape (M,)
        A permutation of 0..M-1.
    """
    same = labels[:, None] == labels[None, :]
    size = same.sum(axis=1)
    typical = np.sum(np.where(same, matrix, 0.0), axis=1) / size
    return np.lexsort((-typical, labels, -size))


def _title(rows: np.ndarray, num_rows_total: int | None) -> str:
    """States the subsample when there is one, so the figure is not read as all the data."""
    m = len(rows)
    if num_rows_total is not None and num_rows_total > m:
        return f"Posterior similarity: {m:,} of {num_rows_total:,} rows (random subsample)"
    if num_rows_total is None and not np.array_equal(rows, np.arange(m)):
        return f"Posterior similarity: a subsample of {m:,} rows"
    return f"Posterior similarity: {m:,} rows"


def _figure(similarity: Similarity, labels: np.ndarray, num_rows_total: int | None) -> Figure:
    matrix = np.asarray(similarity.matrix)
    order = similarity_order(matrix, labels)
    fig = _new_figure((7.0, 6.0))
    ax = fig.add_subplot()
    image = ax.imshow(
        matrix[np.ix_(order, order)], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest"
    )
    # Boundaries after each cluster of two rows or more: singletons come last (by size) and
    # one line each would hide them.
    sizes = np.sort(np.bincount(np.unique(labels, return_inverse=True)[1].ravel()))[::-1]
    for edge in np.cumsum(sizes)[(sizes > 1) & (np.arange(len(sizes)) < len(sizes) - 1)] - 0.5:
        ax.axhline(edge, color="white", linewidth=0.8)
        ax.axvline(edge, color="white", linewidth=0.8)
    fig.colorbar(image, ax=ax, label="P(same cluster | data)")
    ax.set_title(_title(np.asarray(similarity.rows), num_rows_total))
    singletons = int(np.sum(sizes == 1))
    described = f"{len(sizes)} clusters" + (
        f", {singletons} of them single rows" if singletons else ""
    )
    ax.set_xlabel(f"rows, ordered by cluster ({described})")
    ax.set_ylabel("rows, ordered by cluster")
    return fig


def plot_similarity(
    similarity: Similarity,
    partition: np.ndarray,
    path: str | os.PathLike,
    *,
    num_rows_total: int | None = None,
) -> Path:
    """Heatmap of the posterior similarity matrix, ordered and divided by a partition.

    Parameters
    ----------
    similarity : Similarity
        ``matrix`` (M, M) and ``rows`` (M,) (:func:`bgmm.coclustering.similarity_matrix`).
    partition : array of int, shape (M,), or PointPartition
        Cluster of each of the M rows (e.g. :func:`bgmm.coclustering.binder_partition`).
    path : str or PathLike
        Where to write the PNG (parent directories are created).
    num_rows_total : int, optional
        N, the rows of the data: the title then says "M of N rows" when M < N. Without it, the
        title says "a subsample" when ``rows`` is not 0..M-1.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    labels = np.asarray(getattr(partition, "labels", partition))
    m = np.shape(similarity.matrix)[0]
    if labels.shape != (m,):
        raise ValueError(f"partition must have shape ({m},); got {labels.shape}")
    return _save(_figure(similarity, labels, num_rows_total), path)
