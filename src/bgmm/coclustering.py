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

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from bgmm.assignments import membership_probabilities
from bgmm.data.subsample import subsample_rows
from bgmm.model.transforms import Params
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
_MAX_SWEEPS = 100  # a guard only: every accepted move lowers the loss, so sweeps terminate
_RELATIVE_TOL = 1e-10  # a move must beat staying by more than rounding in the running sums


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
    batch = max(1, min(int(batch), len(index)))
    for start in range(0, len(index), batch):
        chunk = index[start : start + batch]
        # The last batch padded to full size: one compiled program for every batch.
        padded = np.concatenate([chunk, np.full(batch - len(chunk), chunk[0])])
        p = classification_probabilities(rows_data, *(a[padded][None] for a in draws))
        yield p[0, : len(chunk)]


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


def _matrix(similarity: Similarity | np.ndarray) -> np.ndarray:
    matrix = np.asarray(getattr(similarity, "matrix", similarity), np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"similarity must be a square matrix; got shape {matrix.shape}")
    return matrix


def _labels(partition: np.ndarray, m: int) -> np.ndarray:
    labels = np.asarray(getattr(partition, "labels", partition))
    if labels.shape != (m,):
        raise ValueError(f"partition must have shape ({m},); got {labels.shape}")
    return labels


def _compact(allocations: np.ndarray) -> np.ndarray:
    """Each partition (row of (T, M)) relabelled 0..L_t-1, so counts tables stay small."""
    allocations = np.atleast_2d(np.asarray(allocations))
    return np.stack([np.unique(a, return_inverse=True)[1].ravel() for a in allocations])


def expected_binder_loss(partition: np.ndarray, similarity: Similarity | np.ndarray) -> float:
    """Posterior expected Binder loss with equal costs, sum_{i<j} |1{c_i = c_j} - PSM_ij|.

    Parameters
    ----------
    partition : array of int, shape (M,)
        Cluster labels (any integers), or a :class:`PointPartition`.
    similarity : Similarity or array, shape (M, M)

    Returns
    -------
    float
        The expected number of pairs that ``partition`` and a posterior partition disagree on.
    """
    psm = _matrix(similarity)
    labels = _labels(partition, len(psm))
    gap = np.abs((labels[:, None] == labels[None, :]) - psm)
    return float((gap.sum() - np.trace(gap)) / 2)


def expected_vi(partition: np.ndarray, allocations: np.ndarray) -> float:
    """Expected variation of information (bits) from ``partition`` to sampled partitions.

    VI(c, c') = H(c) + H(c') - 2 I(c, c') (Meila 2007), averaged over the T partitions: a Monte
    Carlo estimate of the posterior expectation (Wade and Ghahramani 2018).

    Parameters
    ----------
    partition : array of int, shape (M,)
        Cluster labels (any integers), or a :class:`PointPartition`.
    allocations : array of int, shape (T, M)
        Sampled partitions (:func:`sample_allocations`).

    Returns
    -------
    float
        Between 0 and log2(M).
    """
    others = _compact(allocations)
    return _expected_vi(_compact(_labels(partition, others.shape[1]))[0], others)


def _expected_vi(labels: np.ndarray, others: np.ndarray) -> float:
    """:func:`expected_vi` of ``labels`` (M,) and ``others`` (T, M), both labelled 0..L-1."""
    t, m = others.shape
    width, clusters = others.max() + 1, labels.max() + 1
    draw = np.arange(t)[:, None]
    joint = np.bincount(((draw * clusters + labels) * width + others).ravel())
    theirs = np.bincount((draw * width + others).ravel())
    own = np.bincount(labels)
    # sum n log2 n over cells of each table; VI = (own + theirs - 2 joint) / M.
    total = _nlogn(own).sum() + (_nlogn(theirs).sum() - 2 * _nlogn(joint).sum()) / t
    return float(max(total / m, 0.0))


def _nlogn(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n, np.float64)
    return n * np.log2(np.where(n > 0, n, 1.0))


def _binder_losses(psm: np.ndarray, w: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """:func:`expected_binder_loss` of every partition of ``candidates`` (T, M), as GEMMs.

    The loss is sum_{i<j} PSM_ij + sum_{i<j, c_i = c_j} (1 - 2 PSM_ij): the second sum is half
    of sum_k z_k^T W z_k, W = 1 - 2 PSM with a zero diagonal, z_k the indicator of cluster k.
    """
    base = (psm.sum() - np.trace(psm)) / 2
    losses = []
    for start in range(0, len(candidates), 64):  # 64 partitions per product: w read once
        group = candidates[start : start + 64]
        offsets = np.concatenate([[0], np.cumsum(group.max(axis=1) + 1)])
        one_hot = np.zeros((psm.shape[0], offsets[-1]))
        one_hot[np.arange(psm.shape[0])[:, None], (group + offsets[:-1, None]).T] = 1.0
        within = np.sum((w @ one_hot) * one_hot, axis=0)  # z_k^T W z_k, every cluster
        losses.extend(base + 0.5 * np.add.reduceat(within, offsets[:-1]))
    return np.asarray(losses)


# ----------------------------------------------------------------------------------------------
# the search
# ----------------------------------------------------------------------------------------------


class _Clusters:
    """A partition under search: labels (-1: not placed), cluster sizes, and the running sums a
    loss needs to price a move. Slots of size 0 are empty clusters; one at least is kept, so
    that "a new cluster" is always among the choices."""

    def __init__(self, m: int) -> None:
        self.labels = np.full(m, -1, np.int64)
        self.sizes = np.zeros(1, np.int64)

    def add(self, i: int, k: int) -> None:
        if k >= len(self.sizes):
            self._grow(k + 1 - len(self.sizes))
        self.labels[i] = k
        self.sizes[k] += 1
        self._update(i, k, 1)
        if self.sizes[k] == 1 and self.sizes.min() > 0:
            self._grow(1)

    def remove(self, i: int) -> int:
        k = int(self.labels[i])
        self.labels[i] = -1
        self.sizes[k] -= 1
        self._update(i, k, -1)
        return k

    def _grow(self, extra: int) -> None:
        extra = max(extra, len(self.sizes))  # doubling: O(log m) copies of the sums
        self.sizes = np.concatenate([self.sizes, np.zeros(extra, np.int64)])
        self._grow_sums(extra)

    def join_costs(self, i: int) -> np.ndarray:
        """The loss added by placing item i in each slot, counted as if i were in none (its
        own slot priced as after removing it), shape (slots,)."""
        raise NotImplementedError

    def _update(self, i: int, k: int, sign: int) -> None:
        raise NotImplementedError

    def _grow_sums(self, extra: int) -> None:
        raise NotImplementedError


class _BinderClusters(_Clusters):
    """Binder: placing i in cluster k adds sum_{j in k} (1 - 2 PSM_ij) = sums[k, i]."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__(len(w))
        self.w = w  # 1 - 2 PSM with a zero diagonal, shared by every start
        self.sums = np.zeros((1, len(w)))

    def join_costs(self, i: int) -> np.ndarray:
        return self.sums[:, i].copy()  # w_ii = 0: i's own cluster needs no correction

    def _update(self, i: int, k: int, sign: int) -> None:
        (np.add if sign > 0 else np.subtract)(self.sums[k], self.w[i], out=self.sums[k])

    def _grow_sums(self, extra: int) -> None:
        self.sums = np.vstack([self.sums, np.zeros((extra, self.sums.shape[1]))])


class _VIClusters(_Clusters):
    """VI: M x E[VI] is sum_k g(n_k) - (2/T) sum_t sum_kl g(n^t_kl) plus a constant,
    g(n) = n log2 n, n^t_kl the items in cluster k and in cluster l of sampled partition t."""

    def __init__(self, others: np.ndarray, step: np.ndarray) -> None:
        t, m = others.shape
        super().__init__(m)
        width = others.max() + 1
        # cells[i, t]: the cell (t, l) of item i in a flat row of T x L counts per cluster, so
        # that a move updates and a price reads one contiguous row per cluster.
        self.cells = np.ascontiguousarray((np.arange(t)[:, None] * width + others).T)
        self.step = step  # g(n + 1) - g(n) for n = 0..M
        self.scale = 2.0 / t
        self.counts = np.zeros((1, t * width), np.int64)

    def join_costs(self, i: int) -> np.ndarray:
        joint = self.counts[:, self.cells[i]]  # (slots, T), a copy
        sizes = self.sizes.copy()
        if self.labels[i] >= 0:  # i out of its own cluster
            joint[self.labels[i]] -= 1
            sizes[self.labels[i]] -= 1
        return self.step[sizes] - self.scale * self.step[joint].sum(axis=1)

    def _update(self, i: int, k: int, sign: int) -> None:
        self.counts[k, self.cells[i]] += sign  # an item is in one cell per draw: no repeats

    def _grow_sums(self, extra: int) -> None:
        self.counts = np.vstack([self.counts, np.zeros((extra, self.counts.shape[1]), np.int64)])


def _sweep(clusters: _Clusters) -> np.ndarray:
    """Move items one at a time to their best cluster until a sweep moves none: a partition
    no single move improves. Returns its labels."""
    for _ in range(_MAX_SWEEPS):
        moved = False
        for i in range(len(clusters.labels)):
            here = int(clusters.labels[i])
            costs = clusters.join_costs(i)
            best = int(np.argmin(costs))
            # Strictly better only: ties stay, so the loss falls at every move and sweeps end.
            if costs[best] < costs[here] - _RELATIVE_TOL * (1.0 + abs(costs[here])):
                clusters.remove(i)
                clusters.add(i, best)
                moved = True
        if not moved:
            break
    return clusters.labels.copy()


def _search(
    new_clusters: Callable[[], _Clusters],
    losses: Callable[[np.ndarray], np.ndarray],
    candidates: np.ndarray | None,
    num_starts: int,
    refine_best: int,
    seed: int,
) -> np.ndarray:
    """The best local minimum from the ``refine_best`` best candidates and ``num_starts``
    sequential allocations in random orders, labelled by size (cluster 0 the largest)."""
    results = []
    if candidates is not None and len(candidates) and refine_best > 0:
        unique = np.unique(_compact(candidates), axis=0)
        for j in np.argsort(losses(unique), kind="stable")[:refine_best]:
            clusters = new_clusters()
            for i, k in enumerate(unique[j]):
                clusters.add(i, int(k))
            results.append(_sweep(clusters))
    rng = np.random.default_rng(seed)
    for _ in range(num_starts):
        clusters = new_clusters()
        for i in rng.permutation(len(clusters.labels)):  # SALSO's sequential initialisation
            clusters.add(int(i), int(np.argmin(clusters.join_costs(int(i)))))
        results.append(_sweep(clusters))
    if not results:
        raise ValueError("nothing to search from: give candidates or num_starts >= 1")
    results = np.stack(results)
    return _by_size(results[int(np.argmin(losses(results)))])


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Labels 0..m-1 by cluster size, largest first; equal sizes by first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    by_appearance = np.argsort(np.argsort(first))[inverse.ravel()]
    order = np.argsort(-np.bincount(by_appearance), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[by_appearance]


def _check_candidates(candidates: np.ndarray | None, m: int) -> np.ndarray | None:
    if candidates is None:
        return None
    candidates = np.atleast_2d(np.asarray(candidates))
    if candidates.shape[1:] != (m,):
        raise ValueError(f"candidates must have shape (P, {m}); got {candidates.shape}")
    return candidates


def binder_partition(
    similarity: Similarity | np.ndarray,
    candidates: np.ndarray | None = None,
    *,
    num_starts: int = 8,
    refine_best: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """The partition of least posterior expected Binder loss (equal costs; Dahl 2006).

    Minimises :func:`expected_binder_loss` by sweeps of single-item moves from the
    ``refine_best`` candidates of least loss and from ``num_starts`` random sequential
    allocations; the result is a partition no single move improves (a local minimum).

    Parameters
    ----------
    similarity : Similarity or array, shape (M, M)
    candidates : array of int, shape (P, M), optional
        Starting partitions, e.g. the argmax of the mean memberships and sampled partitions.
    num_starts : int
        Random sequential allocations (each item, in a random order, placed in its best cluster).
    refine_best : int
        How many of the candidates, those of least loss, are improved by sweeps.
    seed : int
        Seed of the random orders.

    Returns
    -------
    array of int, shape (M,)
        Labels 0..m-1, cluster 0 the largest.
    """
    psm = _matrix(similarity)
    w = 1.0 - 2.0 * psm
    np.fill_diagonal(w, 0.0)
    candidates = _check_candidates(candidates, len(psm))
    return _search(
        lambda: _BinderClusters(w),
        lambda partitions: _binder_losses(psm, w, partitions),
        candidates,
        num_starts,
        refine_best,
        seed,
    )


def vi_partition(
    allocations: np.ndarray,
    candidates: np.ndarray | None = None,
    *,
    num_starts: int = 8,
    refine_best: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """The partition of least expected variation of information (Wade and Ghahramani 2018).

    Minimises :func:`expected_vi` over ``allocations`` as :func:`binder_partition` minimises
    the Binder loss; the sampled partitions are candidates too (Dahl's choice among them).

    Parameters
    ----------
    allocations : array of int, shape (T, M)
        Partitions sampled from the posterior (:func:`sample_allocations`).
    candidates : array of int, shape (P, M), optional
        More starting partitions, e.g. the argmax of the mean memberships.
    num_starts, refine_best, seed
        As for :func:`binder_partition`.

    Returns
    -------
    array of int, shape (M,)
        Labels 0..m-1, cluster 0 the largest.
    """
    others = _compact(allocations)
    m = others.shape[1]
    extra = _check_candidates(candidates, m)
    candidates = others if extra is None else np.concatenate([_compact(extra), others])
    g = _nlogn(np.arange(m + 2))
    step = np.diff(g)  # step[n] = g(n + 1) - g(n)
    return _search(
        lambda: _VIClusters(others, step),
        lambda partitions: np.array([_expected_vi(_compact(p)[0], others) for p in partitions]),
        candidates,
        num_starts,
        refine_best,
        seed,
    )


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
