"""Label switching: permute each draw's components to a common labelling.

Pivot matching (Marin, Mengersen and Robert 2005): the pivot is the draw of highest
posterior density; every draw's components are assigned to the pivot's by the Hungarian
algorithm on the Kullback-Leibler divergence between the pivot's and the draw's Gaussian
components. No library ships this for mixtures, so it is written here (numpy + scipy).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["RELABEL_METHODS", "apply_permutations", "pivot_permutations", "undo_permutations"]

RELABEL_METHODS = ("none", "pivot")


def _kl_costs(
    means: np.ndarray, chol: np.ndarray, pivot_means: np.ndarray, pivot_chol: np.ndarray
) -> np.ndarray:
    """KL(pivot component k || draw component j), shape (M, K, K) indexed [m, k, j].

    means (M, K, D), chol (M, K, D, D) lower Cholesky factors of the precisions;
    pivot_means (K, D), pivot_chol (K, D, D).
    """
    d = means.shape[-1]
    precision = chol @ np.swapaxes(chol, -1, -2)  # (M, K, D, D)
    pivot_cov = np.linalg.inv(pivot_chol @ np.swapaxes(pivot_chol, -1, -2))  # (K, D, D)
    trace = np.einsum("mjab,kab->mkj", precision, pivot_cov)
    diff = means[:, None, :, :] - pivot_means[None, :, None, :]  # (M, k, j, D)
    projected = np.einsum("mkjd,mjde->mkje", diff, chol)
    quad = np.sum(projected**2, axis=-1)
    log_det_draw = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (M, K)
    log_det_pivot = 2.0 * np.sum(np.log(np.diagonal(pivot_chol, axis1=-2, axis2=-1)), axis=-1)
    log_ratio = log_det_pivot[None, :, None] - log_det_draw[:, None, :]
    return 0.5 * (trace + quad - d + log_ratio)


def pivot_permutations(means: np.ndarray, chol_precision: np.ndarray, lp: np.ndarray) -> np.ndarray:
    """Permutation of every draw that best matches the highest-density draw.

    Parameters
    ----------
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    lp : array, shape (C, S)
        Log posterior density of each draw; its maximum is the pivot.

    Returns
    -------
    array of int, shape (C, S, K)
        ``perm[c, s, k]`` is the component of draw (c, s) that gets label k.
    """
    c, s, k, d = means.shape
    best = np.unravel_index(np.argmax(lp), lp.shape)
    flat_means = means.reshape(c * s, k, d)
    flat_chol = chol_precision.reshape(c * s, k, d, d)
    costs = _kl_costs(flat_means, flat_chol, means[best], chol_precision[best])
    perms = np.empty((c * s, k), dtype=np.int64)
    for m, cost in enumerate(costs):
        rows, cols = linear_sum_assignment(cost)
        perms[m, rows] = cols
    return perms.reshape(c, s, k)


def apply_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 2) of ``values`` (C, S, K, ...) by ``perms`` (C, S, K)."""
    index = perms.reshape(perms.shape + (1,) * (values.ndim - 3))
    return np.take_along_axis(values, index, axis=2)


def undo_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The raw draws back from relabelled ones: the inverse of :func:`apply_permutations`."""
    return apply_permutations(values, np.argsort(perms, axis=-1))
