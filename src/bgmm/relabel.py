"""Label switching: permute each draw's components to a common labelling.

Pivot matching (Marin, Mengersen and Robert 2005): the pivot is the draw of highest
posterior density; every draw's components are assigned to the pivot's by the Hungarian
algorithm on the Kullback-Leibler divergence between the pivot's and the draw's Gaussian
components.

Stephens' algorithm (Stephens 2000, JRSS B 62, 795-809): every draw's classification
probabilities p_ik are permuted to minimise the total Kullback-Leibler divergence from their
mean over draws, alternating between that mean and the permutations until no permutation
changes.

No Python library ships these for mixtures, so they are written here (numpy + scipy; the
classification probabilities with the model's JAX likelihood). SciPy is imported when a
relabelling runs, not with bgmm, so that importing bgmm stays quick (the CLI imports it on a
background thread instead).
All functions use one convention: ``perm[c, s, k]`` is the raw component of draw (c, s) that
gets label k, and :func:`apply_permutations` relabels any array with the component on axis 2.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.data.subsample import subsample_rows
from bgmm.model.gemm_likelihood import Features, component_weights, make_features
from bgmm.model.transforms import Params

__all__ = [
    "RELABEL_METHODS",
    "apply_permutations",
    "classification_moments",
    "classification_probabilities",
    "expected_counts",
    "order_by_weight",
    "pivot_permutations",
    "relabel_draws",
    "stephens_permutations",
    "undo_permutations",
]

RELABEL_METHODS = ("none", "pivot", "stephens")

_TINY = 1e-300  # floor for q before its log: p log(p / q) stays finite when q underflows
_CHUNK = 256  # draws per block when a (draws, N, K) temporary is needed


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
    log_det_draw = _log_det_precision(chol)  # (M, K)
    log_det_pivot = _log_det_precision(pivot_chol)  # (K,)
    log_ratio = log_det_pivot[None, :, None] - log_det_draw[:, None, :]
    return 0.5 * (trace + quad - d + log_ratio)


def _log_det_precision(chol: np.ndarray) -> np.ndarray:
    """log det (L L') of lower Cholesky factors ``chol`` (..., D, D), shape (...)."""
    return 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def _hungarian(costs: np.ndarray) -> np.ndarray:
    """The permutation of least total cost for every draw, by the Hungarian algorithm.

    Parameters
    ----------
    costs : array, shape (M, K, K)
        ``costs[m, k, j]``: the cost of giving label k to component j of draw m.

    Returns
    -------
    array of int, shape (M, K)
        ``perm[m, k]``: the component of draw m that gets label k.
    """
    from scipy.optimize import linear_sum_assignment

    perms = np.empty(costs.shape[:2], dtype=np.int64)
    for m, cost in enumerate(costs):
        rows, cols = linear_sum_assignment(cost)
        perms[m, rows] = cols
    return perms


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
    return _hungarian(costs).reshape(c, s, k)


def apply_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 2) of ``values`` (C, S, K, ...) by ``perms`` (C, S, K)."""
    index = perms.reshape(perms.shape + (1,) * (values.ndim - 3))
    return np.take_along_axis(values, index, axis=2)


def undo_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The raw draws back from relabelled ones: the inverse of :func:`apply_permutations`."""
    return apply_permutations(values, np.argsort(perms, axis=-1))


def classification_probabilities(
    data: np.ndarray, weights: np.ndarray, means: np.ndarray, chol_precision: np.ndarray
) -> np.ndarray:
    """Posterior probability that each observation belongs to each component, per draw.

    ``p[c, s, i, k] = theta_k N(y_i | mu_k, (L_k L_k')^-1) / sum_j theta_j N(y_i | ...)``
    under the parameters of draw (c, s): the input of :func:`stephens_permutations`.

    Parameters
    ----------
    data : array, shape (N, D)
        Observations in the same units as ``means``; for large N pass a subsample.
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
        Lower Cholesky factors L_k of the precisions.

    Returns
    -------
    array, shape (C, S, N, K)
        Rows sum to one. Memory is C*S*N*K floats.
    """
    features = make_features(data, jnp.float64)
    return _per_chain(_chain_probabilities, features, weights, means, chol_precision)


def classification_moments(
    data: np.ndarray, weights: np.ndarray, means: np.ndarray, chol_precision: np.ndarray
) -> np.ndarray:
    """Each chain's mean and sum of squared deviations, over its draws, of
    :func:`classification_probabilities`, without holding those on the host.

    Parameters
    ----------
    data : array, shape (N, D)
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)

    Returns
    -------
    array, shape (C, 2, N, K)
        ``[:, 0]`` the means over the S draws, ``[:, 1]`` the sums of squared deviations
        from them (pooled over chains by Chan's update, :mod:`bgmm.assignments`).
    """
    features = make_features(data, jnp.float64)
    return _per_chain(_chain_moments, features, weights, means, chol_precision)


def expected_counts(
    data: np.ndarray, weights: np.ndarray, means: np.ndarray, chol_precision: np.ndarray
) -> np.ndarray:
    """Expected number of the observations in each component, per draw.

    The sum over observations of :func:`classification_probabilities`, without holding
    them (C*S*N*K floats) in memory.

    Parameters
    ----------
    data : array, shape (N, D)
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)

    Returns
    -------
    array, shape (C, S, K)
        Each row sums to N.
    """
    features = make_features(data, jnp.float64)
    return _per_chain(_chain_counts, features, weights, means, chol_precision)


def _per_chain(chain_fn, features, weights, means, chol_precision) -> np.ndarray:
    draws = Params(*(np.asarray(a, dtype=np.float64) for a in (weights, means, chol_precision)))
    # Chains are selected on the host: indexing device arrays would load a program each.
    return np.stack(
        [
            np.asarray(chain_fn(features, Params(*(jnp.asarray(a[c]) for a in draws))))
            for c in range(draws.weights.shape[0])
        ]
    )


def _chain_logits(features: Features, draws: Params) -> jax.Array:
    """log theta_k + log N(y_i | ...) of every draw, shape (S, K, N): one GEMM for all draws
    (docs/design.md section 1.4), rather than the direct form's many small per-draw products."""
    weights = jax.vmap(component_weights, in_axes=(0, None))(draws, features.center)
    return jnp.einsum("skf,nf->skn", weights, features.phi)


@jax.jit
def _chain_probabilities(features: Features, draws: Params) -> jax.Array:
    return jnp.swapaxes(jax.nn.softmax(_chain_logits(features, draws), axis=1), 1, 2)


@jax.jit
def _chain_moments(features: Features, draws: Params) -> jax.Array:
    # Reduced on the device: the (S, N, K) probabilities never reach the host.
    p = jax.nn.softmax(_chain_logits(features, draws), axis=1)
    mean = jnp.mean(p, axis=0)
    return jnp.stack([mean, jnp.sum((p - mean) ** 2, axis=0)]).swapaxes(1, 2)


@jax.jit
def _chain_counts(features: Features, draws: Params) -> jax.Array:
    return jnp.sum(jax.nn.softmax(_chain_logits(features, draws), axis=1), axis=2)


def _one_hot(perms: np.ndarray, k: int) -> np.ndarray:
    """Permutation matrices, shape (M, K, K): ``pi[m, perms[m, l], l] = 1``."""
    m = perms.shape[0]
    pi = np.zeros((m, k, k))
    pi[np.arange(m)[:, None], perms, np.arange(k)[None, :]] = 1.0
    return pi


def _check_permutations(perms: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    perms = np.asarray(perms)
    if perms.shape != shape:
        raise ValueError(f"initial permutations have shape {perms.shape}; expected {shape}")
    if not np.array_equal(np.sort(perms, axis=-1), np.broadcast_to(np.arange(shape[-1]), shape)):
        raise ValueError("every initial[c, s] must be a permutation of 0..K-1")
    return perms.astype(np.int64)


def stephens_permutations(
    responsibilities: np.ndarray, initial: np.ndarray | None = None, max_iterations: int = 100
) -> np.ndarray:
    """Stephens' Kullback-Leibler relabelling of the draws' classification probabilities.

    Alternates two steps (Stephens 2000, algorithm 2):

    1. ``Q = mean over draws of P[c, s][:, perm[c, s]]``, shape (N, K);
    2. for every draw, the permutation minimising
       ``sum_i sum_k p_i,perm(k) log(p_i,perm(k) / q_ik)``, a linear assignment with
       ``cost[k, j] = sum_i p_ij (log p_ij - log q_ik)``, solved by the Hungarian algorithm,

    until no permutation changes. Each step lowers the total divergence, so it stops at a local
    minimum. The labels it returns are those of the initial labelling, up to one global
    permutation: start from pivot permutations (:func:`pivot_permutations`) to keep the
    pivot's labels and to converge in fewer iterations.

    Parameters
    ----------
    responsibilities : array, shape (C, S, N, K)
        ``p[c, s, i, k]``: the probability that observation i belongs to component k under
        draw (c, s) (:func:`classification_probabilities`). The whole array is held as
        float64, C*S*N*K floats (4 chains x 1000 draws x 1000 observations x 5 components
        is 160 MB): for large N pass a random subsample of the observations, a few hundred
        are enough to tell the components apart.
    initial : array of int, shape (C, S, K), optional
        Starting permutations in the convention of the return value; identity by default.
    max_iterations : int
        Stop after this many assignment steps; a ``RuntimeWarning`` says so if the
        permutations were still changing.

    Returns
    -------
    array of int, shape (C, S, K)
        ``perm[c, s, k]`` is the raw component of draw (c, s) that gets label k, as for
        :func:`pivot_permutations`; relabel with :func:`apply_permutations`.
    """
    p = np.asarray(responsibilities, dtype=np.float64)
    if p.ndim != 4:
        raise ValueError(f"responsibilities must have shape (C, S, N, K); got {p.shape}")
    c, s, n, k = p.shape
    perms = _initial_permutations(initial, (c, s, k))
    if c * s == 0 or k == 1:
        return perms.reshape(c, s, k)
    perms, converged = _stephens_iterations(p.reshape(c * s, n, k), perms, max_iterations)
    if not converged:
        warnings.warn(
            f"Stephens relabelling still changed permutations after {max_iterations} "
            "iterations; raise max_iterations or start from pivot permutations",
            RuntimeWarning,
            stacklevel=2,
        )
    return perms.reshape(c, s, k)


def _initial_permutations(initial: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    """The starting permutations, shape (C * S, K): ``initial`` checked, or the identity."""
    c, s, k = shape
    if initial is None:
        return np.broadcast_to(np.arange(k), (c * s, k)).copy()
    return _check_permutations(initial, shape).reshape(c * s, k).copy()


def _stephens_iterations(
    flat: np.ndarray, perms: np.ndarray, max_iterations: int
) -> tuple[np.ndarray, bool]:
    """Alternate the two steps of :func:`stephens_permutations` until no permutation changes.

    Parameters
    ----------
    flat : array, shape (M, N, K)
        The classification probabilities of the M = C * S draws.
    perms : array of int, shape (M, K)
        The starting permutations.
    max_iterations : int

    Returns
    -------
    perms : array of int, shape (M, K)
    converged : bool
        False when the last step still changed a permutation.
    """
    entropy = _entropies(flat)
    for _ in range(max_iterations):
        cost = _assignment_costs(flat, entropy, _log_mean_probabilities(flat, perms))
        new = _keep_tied_permutations(cost, _hungarian(cost), perms)
        if np.array_equal(new, perms):
            return perms, True
        perms = new
    return perms, False


def _entropies(flat: np.ndarray) -> np.ndarray:
    """sum_i p_mij log p_mij (0 log 0 = 0), shape (M, K) indexed [m, j], for ``flat`` (M, N, K).

    Constant over permutations; kept so that the assignment cost is a Kullback-Leibler
    divergence.
    """
    from scipy.special import xlogy

    m = flat.shape[0]
    return np.concatenate(
        [np.sum(xlogy(b, b), axis=1) for b in np.array_split(flat, -(-m // _CHUNK))]
    )


def _log_mean_probabilities(flat: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """log Q, shape (N, K): Q the mean over draws of ``flat[m][:, perms[m]]``, floored at _TINY.

    ``flat`` (M, N, K), ``perms`` (M, K); summed in blocks of _CHUNK draws.
    """
    m, n, k = flat.shape
    pi = _one_hot(perms, k)
    q = np.zeros((n, k))
    for start in range(0, m, _CHUNK):
        block = slice(start, start + _CHUNK)
        q += np.matmul(flat[block], pi[block]).sum(axis=0)  # the einsum "mij,mjk->ik"
    return np.log(np.maximum(q / m, _TINY))


def _assignment_costs(flat: np.ndarray, entropy: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """cost[m, k, j] = entropy[m, j] - sum_i p_mij log q_ik, shape (M, K, K).

    A batched matmul: the einsum "mij,ik->mkj" without a (M, N, K) temporary.
    ``flat`` (M, N, K), ``entropy`` (M, K), ``log_q`` (N, K).
    """
    cross = np.matmul(np.swapaxes(flat, 1, 2), log_q)  # (M, K, K) indexed [m, j, k]
    return entropy[:, None, :] - np.swapaxes(cross, 1, 2)


def _keep_tied_permutations(cost: np.ndarray, new: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``new`` (M, K), except that a draw whose ``perms`` (M, K) costs the same keeps it.

    Keeping a draw's permutation on exact ties means the iteration cannot cycle between them.
    ``cost`` (M, K, K) as from :func:`_assignment_costs`.
    """
    same_cost = np.isclose(_total_cost(cost, new), _total_cost(cost, perms), rtol=1e-12, atol=0.0)
    new[same_cost] = perms[same_cost]
    return new


def _total_cost(cost: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """sum_k cost[m, k, perms[m, k]] for every draw m, shape (M,)."""
    return np.take_along_axis(cost, perms[:, :, None], axis=2).sum(axis=(1, 2))


# Observations the relabelling and occupancy read: their memory grows as draws x observations x
# components, and a thousand observations pin the labels down.
RELABEL_OBSERVATIONS = 1000


def relabel_draws(
    draws: dict[str, np.ndarray],
    data: np.ndarray,
    method: str,
    seed: int,
    num_rows: int | None = None,
) -> dict[str, np.ndarray]:
    """The draws with ``num_occupied`` added and, unless ``method == "none"``, relabelled.

    Both use the classification probabilities of (a subsample of) the observations. A
    component is occupied when it expects at least one of the N observations; Gibbs runs
    bring their own count, from the sampled assignments. Relabelled components are then
    ordered by posterior mean weight, largest first (:func:`order_by_weight`), so that every
    run and every output lists them in the same order. With ``"none"`` the components are
    told apart by their priors and keep the sampler's labels.

    Parameters
    ----------
    draws : dict
        ``weights`` (C, S, K), ``means`` (C, S, K, D), ``chol_precision`` (C, S, K, D, D),
        ``lp`` (C, S), in data units.
    data : array, shape (N, D)
        The observations, or a uniform sample of them (then give ``num_rows``).
    method : "none", "pivot" or "stephens"
    seed : int
        For the subsample of the observations.
    num_rows : int, optional
        N, when ``data`` is a sample of the observations; default ``len(data)``.

    Returns
    -------
    dict
        A new dict: the draws, ``num_occupied`` (C, S) and, when relabelled,
        ``label_permutation`` (C, S, K): the raw component of each draw that got each
        reported label (ordering included), so that ``undo_permutations`` gives the raw
        draws back.
    """
    draws = dict(draws)
    subsample = subsample_rows(data, RELABEL_OBSERVATIONS, seed)
    params = (draws["weights"], draws["means"], draws["chol_precision"])
    # Stephens needs every probability; the occupancy only their sums over observations.
    probabilities = None
    if method == "stephens":
        probabilities = classification_probabilities(subsample, *params)
    if "num_occupied" not in draws:
        if probabilities is None:
            counts = expected_counts(subsample, *params)
        else:
            counts = probabilities.sum(axis=2)
        num_rows = len(data) if num_rows is None else num_rows
        draws["num_occupied"] = np.sum(counts * (num_rows / len(subsample)) >= 1.0, axis=-1)
    if method == "none":
        return draws
    perms = pivot_permutations(draws["means"], draws["chol_precision"], draws["lp"])
    if method == "stephens":
        perms = stephens_permutations(probabilities, initial=perms)
    perms = order_by_weight(draws["weights"], perms)
    for name in ("weights", "means", "chol_precision"):
        draws[name] = apply_permutations(draws[name], perms)
    draws["label_permutation"] = perms
    return draws


def order_by_weight(weights: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``perms`` followed by the one permutation that sorts the labels by posterior mean
    weight, largest first (docs/design.md section 2).

    Relabelling leaves the labels in an arbitrary order (the pivot draw's), so two runs on
    the same data would report their components in different orders; this order depends
    only on the posterior. Equal mean weights keep their relabelled order.

    Parameters
    ----------
    weights : array, shape (C, S, K)
        The raw draws' weights.
    perms : array of int, shape (C, S, K)
        ``perms[c, s, k]``: the raw component of draw (c, s) that gets label k.

    Returns
    -------
    array of int, shape (C, S, K)
        The same convention; the mean over draws of
        ``apply_permutations(weights, result)`` is non-increasing in k.
    """
    mean = apply_permutations(weights, perms).mean(axis=(0, 1))
    order = np.argsort(-mean, kind="stable")
    return perms[..., order]
