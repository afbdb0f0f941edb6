"""Co-clustering: which observations the posterior puts together, and one partition to report.

The posterior similarity matrix (PSM) holds P(z_i = z_j | y) for every pair of observations.
Given the parameters theta, the allocations z_i are independent with probabilities p_ik(theta)
(:func:`bgmm.relabel.classification_probabilities`), so P(z_i = z_j | theta, y) is
sum_k p_ik p_jk exactly, and the PSM is its mean over the draws: mean_s P_s P_s^T, with no
allocation sampled (Rao-Blackwellised). It is invariant under relabelling the components, so
raw or relabelled draws give the same matrix.

A point partition minimises a posterior expected loss over all partitions:

* Binder's loss with equal costs, sum_{i<j} |1{c_i = c_j} - PSM_ij| (Dahl 2006), which needs
  only the PSM;
* the variation of information (Meila 2007; Wade and Ghahramani 2018), whose expectation is
  estimated over partitions sampled from the posterior (:func:`sample_allocations`).

The search is SALSO's (Dahl, Johnson and Mueller 2022) in its simplest form: starting points
(the best of the given candidates, and partitions built by allocating the items one at a time
in random order), each improved by sweeps that move one item at a time to the cluster, existing
or new, that lowers the expected loss most, until a sweep moves nothing. Both losses decompose
into per-cluster terms, so the change of a move costs O(M) (Binder) or O(T) (VI) per cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from bgmm.assignments import membership_probabilities
from bgmm.data.subsample import subsample_rows
from bgmm.model.transforms import Params
from bgmm.partitions import binder_partition, expected_binder_loss, expected_vi, vi_partition
from bgmm.plumbing.batches import padded_batches
from bgmm.plumbing.precision import float64_scope
from bgmm.relabel import classification_probabilities

__all__ = [
    "LOSSES",
    "PointPartition",
    "Similarity",
    "binder_partition",
    "expected_binder_loss",
    "expected_vi",
    "point_partition",
    "sample_allocations",
    "similarity_matrix",
    "vi_partition",
]

LOSSES = ("binder", "vi")

# Floats in one batch of draws' probabilities (B x M x K): 2^21 float64 is 16 MB.
BATCH_FLOATS = 2**21


class Similarity(NamedTuple):
    """Posterior similarity of a set of rows.

    Attributes
    ----------
    matrix : array, shape (M, M)
        ``matrix[a, b]`` = P(z_rows[a] = z_rows[b] | y): symmetric, in [0, 1], diagonal 1.
    rows : array of int, shape (M,)
        The input rows it covers, ascending: all N rows, or a seeded subsample.
    """

    matrix: np.ndarray
    rows: np.ndarray


class PointPartition(NamedTuple):
    """A partition minimising a posterior expected loss.

    Attributes
    ----------
    labels : array of int, shape (M,)
        Cluster of each row, 0..m-1, cluster 0 the largest.
    rows : array of int, shape (M,)
        The input rows labelled, ascending.
    expected_loss : float
        Its expected Binder loss (pairs) or expected VI (bits).
    loss : str
        ``"binder"`` or ``"vi"``.
    """

    labels: np.ndarray
    rows: np.ndarray
    expected_loss: float
    loss: str


# ----------------------------------------------------------------------------------------------
# the similarity matrix and sampled allocations
# ----------------------------------------------------------------------------------------------


def _flat_draws(weights, means, chol_precision) -> Params:
    """The draws with chain and draw axes merged: (C*S, K), (C*S, K, D), (C*S, K, D, D)."""
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 3 or weights.shape[0] * weights.shape[1] == 0:
        raise ValueError(f"weights must have shape (C, S, K) with draws; got {weights.shape}")
    draws = (weights, np.asarray(means, np.float64), np.asarray(chol_precision, np.float64))
    return Params(*(a.reshape((-1, *a.shape[2:])) for a in draws))


def _probability_batches(
    rows_data: np.ndarray, draws: Params, index: np.ndarray, batch_draws: int | None
) -> Iterator[np.ndarray]:
    """Classification probabilities of the draws ``index``, shape (B, M, K) per batch."""
    m, k = len(rows_data), draws.weights.shape[-1]
    batch = batch_draws or max(1, BATCH_FLOATS // max(1, m * k))
    for _, count, chunk in padded_batches(index, batch):
        p = classification_probabilities(rows_data, *(a[chunk][None] for a in draws))
        yield p[0, :count]


def _select_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """All of 0..n-1, or ``max_rows`` of them as :func:`subsample_rows` picks them, ascending."""
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be at least 1; got {max_rows}")
    return subsample_rows(np.arange(n), int(max_rows), seed)


@float64_scope
def similarity_matrix(
    data: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    max_rows: int = 2000,
    seed: int = 0,
    batch_draws: int | None = None,
) -> Similarity:
    """Posterior similarity matrix P(z_i = z_j | y), computed exactly from the draws.

    ``matrix = mean over draws s of P_s P_s^T`` off the diagonal, P_s (M, K) the draw's
    classification probabilities (allocations are independent given the parameters), and 1 on
    it. Draws are taken in batches of B, so memory is the M x M result plus a few B x M x K
    arrays, B x M x K <= ``BATCH_FLOATS`` (16 MB), whatever the number of draws.

    Parameters
    ----------
    data : array, shape (N, D)
        In the units of ``means``.
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
        Lower Cholesky factors L of the precisions L L^T.
    max_rows : int
        M = min(N, max_rows): above it, a seeded subsample of the rows (as
        :func:`bgmm.data.subsample.subsample_rows`), since cost is M^2 x draws x K.
    seed : int
        Seed of the subsample.
    batch_draws : int, optional
        Draws per batch B; by default as many as ``BATCH_FLOATS`` allows.

    Returns
    -------
    Similarity
        ``matrix`` (M, M) and ``rows`` (M,), the rows used, ascending.
    """
    data = np.asarray(data, np.float64)
    rows = _select_rows(len(data), max_rows, seed)
    draws = _flat_draws(weights, means, chol_precision)
    num = len(draws.weights)
    total = np.zeros((len(rows), len(rows)))
    for p in _probability_batches(data[rows], draws, np.arange(num), batch_draws):
        # sum_s P_s P_s^T of the batch as one product, (M, B*K) by its transpose.
        x = np.ascontiguousarray(np.swapaxes(p, 0, 1).reshape(len(rows), -1))
        total += x @ x.T
    matrix = np.clip(0.5 * (total + total.T) / num, 0.0, 1.0)  # rounding only
    # i is always with itself; sum_k p_ik^2 is the chance two independent draws agree.
    np.fill_diagonal(matrix, 1.0)
    return Similarity(matrix, rows)


@float64_scope
def sample_allocations(
    data: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    rows: np.ndarray | None = None,
    num_partitions: int = 200,
    seed: int = 0,
    batch_draws: int | None = None,
) -> np.ndarray:
    """Partitions sampled from the posterior: z_i ~ Categorical(p_i(theta_s)) for random draws s.

    Parameters
    ----------
    data : array, shape (N, D)
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    rows : array of int, shape (M,), optional
        The rows to allocate (e.g. ``Similarity.rows``); all N by default.
    num_partitions : int
        T: draws chosen uniformly, without replacement when T <= C*S (then each at most once).
    seed : int
    batch_draws : int, optional
        As for :func:`similarity_matrix`.

    Returns
    -------
    array of int, shape (T, M)
        Component labels 0..K-1, one partition per row, in the order of the chosen draws.
    """
    data = np.asarray(data, np.float64)
    rows = np.arange(len(data)) if rows is None else np.asarray(rows, np.int64)
    draws = _flat_draws(weights, means, chol_precision)
    num, t = len(draws.weights), int(num_partitions)
    if t < 1:
        raise ValueError(f"num_partitions must be at least 1; got {num_partitions}")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(num, size=t, replace=t > num))
    out = np.empty((t, len(rows)), np.int64)
    start = 0
    for p in _probability_batches(data[rows], draws, chosen, batch_draws):
        u = rng.random((*p.shape[:2], 1))
        # Inverse CDF; min() catches a u above a cumulative sum rounded below 1.
        out[start : start + len(p)] = np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)
        start += len(p)
    return out


# ----------------------------------------------------------------------------------------------
# expected losses
# ----------------------------------------------------------------------------------------------


@float64_scope
def point_partition(
    data: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    *,
    loss: str = "binder",
    similarity: Similarity | None = None,
    max_rows: int = 2000,
    num_partitions: int = 200,
    num_starts: int = 8,
    seed: int = 0,
) -> PointPartition:
    """A point estimate of the clustering of (a subsample of) the rows, from the draws.

    Candidates are the argmax of the mean memberships and ``num_partitions`` partitions
    sampled from the posterior; then :func:`binder_partition` or :func:`vi_partition`.

    Parameters
    ----------
    data : array, shape (N, D)
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    loss : {"binder", "vi"}
    similarity : Similarity, optional
        Already computed (its rows are used); else computed for ``loss="binder"``.
    max_rows : int
        Rows kept when ``similarity`` is not given, as for :func:`similarity_matrix`.
    num_partitions : int
        Sampled partitions T (the VI's expectation is estimated over them).
    num_starts : int
        Random sequential starts of the search.
    seed : int

    Returns
    -------
    PointPartition
        ``labels`` (M,), ``rows`` (M,), ``expected_loss`` and ``loss``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    data = np.asarray(data, np.float64)
    if similarity is None and loss == "binder":
        similarity = similarity_matrix(data, weights, means, chol_precision, max_rows, seed)
    rows = _select_rows(len(data), max_rows, seed) if similarity is None else similarity.rows
    # Separate streams for the sampled partitions and the search's orders.
    sample_seed, search_seed = (int(x) for x in np.random.SeedSequence(seed).generate_state(2))
    draws = (weights, means, chol_precision)
    allocations = sample_allocations(data, *draws, rows, num_partitions, sample_seed)
    modal = membership_probabilities(data[rows], *draws).mean.argmax(axis=1)[None]
    if loss == "binder":
        candidates = np.concatenate([modal, allocations])
        labels = binder_partition(similarity, candidates, num_starts=num_starts, seed=search_seed)
        value = expected_binder_loss(labels, similarity)
    else:
        labels = vi_partition(allocations, modal, num_starts=num_starts, seed=search_seed)
        value = expected_vi(labels, allocations)
    return PointPartition(labels, rows, value, loss)
