"""Dispersed starting points computed from the data (never from an oracle).

Each chain gets its own k-means++ seeding followed by a few Lloyd iterations on a
subsample; weights, means and precisions then come from the resulting clusters.
Different seeds land different chains in different places, which is what makes
between-chain diagnostics meaningful. With a best-of-M search each chain keeps the
highest-posterior of M such clusterings: a chain started in a poor local solution (two
clusters merged, one split) may never leave it, and M candidates make that unlikely.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bgmm.errors import UserError
from bgmm.model.covariance import project_chol_precision
from bgmm.model.priors import Priors
from bgmm.model.transforms import Params

__all__ = [
    "kmeans_plus_plus_starts",
    "log_joint_scorer",
    "project_starts",
    "starts_in_model_units",
]


def _kmeans_plus_plus(rng: np.random.Generator, points: np.ndarray, k: int) -> np.ndarray:
    centers = [points[rng.integers(len(points))]]
    closest = np.sum((points - centers[0]) ** 2, axis=1)
    for _ in range(1, k):
        total = closest.sum()
        index = (
            rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(len(points))
        )
        centers.append(points[index])
        closest = np.minimum(closest, np.sum((points - points[index]) ** 2, axis=1))
    return np.stack(centers)


def _one_start(
    rng: np.random.Generator, points: np.ndarray, k: int, num_iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = points.shape
    centers = _kmeans_plus_plus(rng, points, k)
    for _ in range(num_iterations):
        labels = np.argmin(((points[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            members = points[labels == j]
            if len(members):
                centers[j] = members.mean(axis=0)
    labels = np.argmin(((points[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    overall = np.cov(points, rowvar=False).reshape(d, d) if n > 1 else np.eye(d)
    ridge = 1e-3 * np.trace(overall) / d + 1e-12
    counts = np.bincount(labels, minlength=k).astype(float)
    chols = np.empty((k, d, d))
    for j in range(k):
        members = points[labels == j]
        # Shrink small clusters towards the overall covariance so every start is proper.
        if len(members) > d:
            cov = np.cov(members, rowvar=False).reshape(d, d)
        else:
            cov = overall
        weight = len(members) / (len(members) + d + 2.0)
        cov = weight * cov + (1.0 - weight) * overall + ridge * np.eye(d)
        chols[j] = np.linalg.cholesky(np.linalg.inv(cov))
    weights = (counts + 1.0) / (counts.sum() + k)
    return weights, centers, chols


def kmeans_plus_plus_starts(
    seed: int,
    data: np.ndarray,
    num_components: int,
    num_chains: int,
    num_iterations: int = 5,
    max_points: int = 10_000,
    num_candidates: int = 1,
    score=None,
) -> Params:
    """One start per chain from k-means++ seeding and a few Lloyd steps.

    Parameters
    ----------
    seed : int
    data : array, shape (N, D), N >= 1
    num_components, num_chains : int
    num_iterations : int
        Lloyd iterations after seeding.
    max_points : int
        Size of the random subsample the clustering runs on.
    num_candidates : int
        M: clusterings tried per chain; the chain keeps the one ``score`` ranks highest.
    score : callable, optional
        ``score(Params with leading axis M) -> (M,)`` log posterior of candidates; needed
        when num_candidates > 1.

    Returns
    -------
    Params
        weights (C, K), means (C, K, D), chol_precision (C, K, D, D), numpy float64.
    """
    if num_candidates > 1:
        if score is None:
            raise ValueError("a best-of-M start search needs a score function")
        candidates = kmeans_plus_plus_starts(
            seed, data, num_components, num_chains * num_candidates, num_iterations, max_points
        )
        scores = np.asarray(score(candidates)).reshape(num_chains, num_candidates)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        best = np.arange(num_chains) * num_candidates + np.argmax(scores, axis=1)
        return Params(*(np.asarray(a)[best] for a in candidates))
    rng = np.random.default_rng(seed)
    data = np.asarray(data, dtype=np.float64)
    starts = []
    for _ in range(num_chains):
        points = data
        if len(data) > max_points:
            points = data[rng.choice(len(data), max_points, replace=False)]
        starts.append(_one_start(rng, points, num_components, num_iterations))
    weights, means, chols = (np.stack(parts) for parts in zip(*starts, strict=True))
    return Params(weights, means, chols)


def log_joint_scorer(
    data: np.ndarray, priors: Priors, target: str, covariance_type: str = "full"
) -> Callable[[Params], np.ndarray]:
    """The ``score`` of :func:`kmeans_plus_plus_starts`: log joint of M candidates on
    ``data`` (N, D), as (M,), each projected onto ``covariance_type`` first
    (:func:`project_starts`)."""
    import jax
    import jax.numpy as jnp

    from bgmm.model.density import log_joint
    from bgmm.model.gemm_likelihood import make_features
    from bgmm.plumbing.batches import padded_rows

    # Padded as the sampler's features are, so that data of a nearby size reuse the program.
    dtype = jnp.asarray(data[:0]).dtype
    y = make_features(data, dtype, covariance_type, padded_rows(len(data)))

    # The data are an argument, never a constant of the compiled program: a constant would
    # be written into the on-disk compilation cache with the program.
    @jax.jit
    def score(candidates: Params, y) -> jax.Array:
        return jax.vmap(lambda p: log_joint(p, y, priors, target, covariance_type))(candidates)

    def scorer(candidates: Params) -> np.ndarray:
        candidates = project_starts(candidates, covariance_type)
        return score(Params(*(jnp.asarray(a) for a in candidates)), y)

    return scorer


def project_starts(starts: Params, covariance_type: str) -> Params:
    """Starts with full covariances projected onto a covariance structure (numpy float64):
    'diag' keeps each covariance's diagonal, 'spherical' its mean variance, 'tied' pools
    them with the weights (:func:`bgmm.model.covariance.project_chol_precision`)."""
    weights, means, chol = (np.asarray(a, np.float64) for a in starts)
    return Params(weights, means, project_chol_precision(chol, weights, covariance_type))


def starts_in_model_units(
    initial: Params, num_chains: int, center: np.ndarray | None, scale: np.ndarray | None
) -> Params:
    """Starts given in data units, one per chain, in the units the model samples in.

    Parameters
    ----------
    initial : Params
        weights (K,), means (K, D), chol_precision (K, D, D), or the same with a leading
        chain axis of length ``num_chains``.
    num_chains : int
    center, scale : arrays (D,) or None
        The standardisation of the data (``(x - center) / scale``); None: none.

    Returns
    -------
    Params with leading chain axis, numpy float64.
    """
    weights, means, chol = (np.asarray(a, np.float64) for a in initial)
    if weights.ndim == 1:
        weights, means, chol = (
            np.repeat(a[None], num_chains, axis=0) for a in (weights, means, chol)
        )
    if weights.shape[0] != num_chains:
        raise UserError(
            f"starting values for {weights.shape[0]} chains, expected {num_chains}",
            option="initial",
        )
    if center is not None:
        means = (means - center) / scale
        chol = chol * scale[:, None]  # diag(scale) L: the inverse of the back-transform
    return Params(weights, means, chol)
