"""Point partitions that minimise a posterior expected loss, by SALSO's search.

Binder's loss with equal costs, sum_{i<j} |1{c_i = c_j} - PSM_ij| (Dahl 2006), needs only
the posterior similarity matrix; the variation of information (Meila 2007; Wade and
Ghahramani 2018) is estimated over partitions sampled from the posterior. The search is
SALSO's (Dahl, Johnson and Mueller 2022) in its simplest form: starting points (the best of
the given candidates, and partitions built by allocating the items one at a time in random
order), each improved by sweeps that move one item at a time to the cluster, existing or
new, that lowers the expected loss most, until a sweep moves nothing. Both losses decompose
into per-cluster terms, so the change of a move costs O(M) (Binder) or O(T) (VI) per
cluster. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bgmm.coclustering import Similarity

__all__ = ["binder_partition", "expected_binder_loss", "expected_vi", "vi_partition"]

_MAX_SWEEPS = 100  # a guard only: every accepted move lowers the loss, so sweeps terminate
_RELATIVE_TOL = 1e-10  # a move must beat staying by more than rounding in the running sums


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
