"""Exact Gibbs sampling of the mixture posterior by data augmentation (docs/design.md, 1.5).

With assignments z (z_i = k: observation i came from component k) one sweep draws, in turn,

    z_i | ...          ~ Categorical(r_i.)              r_ik = softmax_k(a_ik)
    theta | z          ~ Dirichlet(alpha0 + n)          n_k = #{i : z_i = k}
    mu_k | T_k, z, y   ~ N(m~_k, V~_k)                  V~_k^{-1} = I / s0^2 + n_k T_k
                                                        m~_k = V~_k (m0_k / s0^2 + T_k S1_k)
    T_k | mu_k, z, y   ~ Wishart(nu + n_k, (S^{-1} + R_k)^{-1})

with S1_k = sum_{z_i = k} y_i and R_k = sum_{z_i = k} (y_i - mu_k)(y_i - mu_k)'. Every
conditional is conjugate, so every draw is exact and the chain leaves the posterior of the
model as written invariant (``target="correct"``: the Wishart prior is on T_k, its density
on L_k carries the Jacobian of T = L L'). There is no Gibbs form for ``target="tutorial"``,
whose density of L_k is not a Wishart density of anything.

Assignments are not part of the state: a sweep draws them afresh from the current
parameters, so the state is the same :class:`~bgmm.model.transforms.Params` HMC samples.
Empty components (n_k = 0) draw from their prior. A sweep costs O(N K D^2): one product of
the data with all K Cholesky factors (the logits) and two of the one-hot assignments with
the data (the sums and the scatter matrices); no Python loop over components or points.

The other covariance structures ('tied', 'diag', 'spherical') share z, theta and mu and
draw their precisions from their own conjugate conditionals (docs/design.md 1.6: a pooled
Wishart, or Gammas per entry or per component); the state stays full Cholesky factors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.scipy.special import logsumexp

from bgmm.model.covariance import check_covariance_type, gamma_prior
from bgmm.model.density import log_prior
from bgmm.model.likelihood import component_log_joint
from bgmm.model.priors import Priors
from bgmm.model.transforms import Params
from bgmm.samplers.gibbs_precisions import (
    bartlett_factor,
    bartlett_shapes,
    cholesky_of_inverse,
    precision_cholesky_from_parts,
    sample_precision_cholesky,
    wishart_cholesky_sample,
)

__all__ = [
    "GibbsInfo",
    "GibbsState",
    "bartlett_factor",
    "bartlett_shapes",
    "build_gibbs_kernel",
    "cholesky_of_inverse",
    "conjugate_gamma_shapes",
    "dirichlet_concentration",
    "gibbs_sweep",
    "precision_cholesky_from_parts",
    "sample_assignments",
    "sample_means",
    "sample_precision_cholesky",
    "sample_weights",
    "scatter_about_means",
    "sufficient_statistics",
    "weights_from_log_gamma",
    "wishart_cholesky_sample",
]


class GibbsState(NamedTuple):
    """State of one Gibbs chain.

    Attributes
    ----------
    params : Params
        weights (K,), means (K, D), chol_precision (K, D, D).
    log_joint : array, shape ()
        log p(params, y) of the model as written (``target="correct"``).
    log_likelihood : array, shape ()
        log p(y | params), the assignments marginalised.
    """

    params: Params
    log_joint: jax.Array
    log_likelihood: jax.Array


class GibbsInfo(NamedTuple):
    """What one sweep reports.

    Attributes
    ----------
    num_occupied : int array, shape ()
        Components with at least one observation in this sweep's assignments.
    """

    num_occupied: jax.Array


# ---------------------------------------------------------------------------------------
# The conditionals, one small pure function each.
# ---------------------------------------------------------------------------------------


def sample_assignments(rng_key: jax.Array, logits: jax.Array) -> jax.Array:
    """z_i ~ Categorical(softmax_k(a_ik)), one draw per observation.

    Inverse-CDF: one uniform per observation compared with the cumulative sums of
    exp(a_ik - max_k a_ik); N random numbers instead of the N K of the Gumbel-max trick
    (on CPU, random bits cost more than the rest of the sweep). A component of probability
    zero is never drawn.

    Parameters
    ----------
    rng_key : PRNG key
    logits : array, shape (K, N)
        a_ik = log theta_k + log N(y_i | mu_k, T_k^{-1}) (:func:`component_log_joint`),
        component-major; any per-observation constant may be added.

    Returns
    -------
    int32 array, shape (N,)
    """
    unnormalised = jnp.exp(logits - jnp.max(logits, axis=0))
    cumulative = jnp.cumsum(unnormalised, axis=0)
    total = cumulative[-1]
    uniform = jax.random.uniform(rng_key, total.shape, total.dtype)
    # Strictly below the total: u * total may round up to it, and with a last component
    # of probability zero the count below would then select it.
    threshold = jnp.minimum(uniform * total, jnp.nextafter(total, 0))
    return jnp.sum(cumulative[:-1] <= threshold, axis=0, dtype=jnp.int32)


def sufficient_statistics(
    assignments: jax.Array, data: jax.Array, num_components: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One-hot assignments, counts and per-component sums.

    Parameters
    ----------
    assignments : int array, shape (N,)
    data : array, shape (N, D)
    num_components : int
        K.

    Returns
    -------
    one_hot : array, shape (N, K), dtype of ``data``
    counts : array, shape (K,)
        n_k, as floating point numbers.
    sums : array, shape (K, D)
        S1_k = sum_{z_i = k} y_i.
    """
    one_hot = jax.nn.one_hot(assignments, num_components, dtype=data.dtype)
    return one_hot, jnp.sum(one_hot, axis=0), one_hot.T @ data


def scatter_about_means(
    assignments: jax.Array, one_hot: jax.Array, data: jax.Array, means: jax.Array
) -> jax.Array:
    """R_k = sum_{z_i = k} (y_i - mu_k)(y_i - mu_k)'.

    Each observation is centred on the mean of its own component before the products are
    formed, so nothing cancels (the expanded S2_k - S1_k mu_k' - ... loses precision when a
    cluster sits far from the origin compared with its spread, worst in float32).

    Parameters
    ----------
    assignments : int array, shape (N,)
    one_hot : array, shape (N, K)
    data : array, shape (N, D)
    means : array, shape (K, D)

    Returns
    -------
    array, shape (K, D, D)
    """
    centred = data - means[assignments]
    return jnp.einsum("nk,nd,ne->kde", one_hot, centred, centred)


def weights_from_log_gamma(log_gamma: jax.Array) -> jax.Array:
    """Normalise Gamma variables given by their logarithms: a Dirichlet draw.

    Working in log space keeps small concentrations (the tutorial's 0.1 on an empty
    component) from underflowing to log 0 = -inf; a weight below the smallest normal number
    of the dtype is raised to it (probability about 1e-4 a draw in float32 for
    concentration 0.1, below 1e-30 in float64), so log weights stay finite.

    Parameters
    ----------
    log_gamma : array, shape (..., K)
        log G_k, G_k ~ Gamma(alpha_k) independent.

    Returns
    -------
    array, shape (..., K), positive, summing to one.
    """
    weights = jnp.exp(log_gamma - logsumexp(log_gamma, axis=-1, keepdims=True))
    return jnp.maximum(weights, jnp.finfo(log_gamma.dtype).tiny)


def dirichlet_concentration(concentration: jax.Array, counts: jax.Array) -> jax.Array:
    """alpha0 + n, the Dirichlet parameter of theta | z.

    Parameters
    ----------
    concentration : array, shape (K,)
        alpha0; cast to the dtype of ``counts``.
    counts : array, shape (K,)
        n_k.

    Returns
    -------
    array, shape (K,), dtype of ``counts``
    """
    return jnp.asarray(concentration, counts.dtype) + counts


def sample_weights(rng_key: jax.Array, concentration: jax.Array, counts: jax.Array) -> jax.Array:
    """theta ~ Dirichlet(alpha0 + n), as normalised Gamma variables (log space).

    The sweep draws the same thing with its Gamma variables shared with the Bartlett
    diagonals (:func:`conjugate_gamma_shapes`); both take alpha0 + n from
    :func:`dirichlet_concentration` and normalise with :func:`weights_from_log_gamma`.

    Parameters
    ----------
    rng_key : PRNG key
    concentration : array, shape (K,)
        alpha0.
    counts : array, shape (K,)
        n_k.

    Returns
    -------
    array, shape (K,), positive, summing to one.
    """
    shapes = dirichlet_concentration(concentration, counts)
    return weights_from_log_gamma(jax.random.loggamma(rng_key, shapes, dtype=counts.dtype))


def sample_means(
    rng_key: jax.Array,
    chol_precision: jax.Array,
    counts: jax.Array,
    sums: jax.Array,
    mean_loc: jax.Array,
    mean_scale: float,
) -> jax.Array:
    """mu_k ~ N(m~_k, V~_k) given the precisions and the assignments.

    V~_k^{-1} = I / s0^2 + n_k T_k and m~_k = V~_k (m0_k / s0^2 + T_k S1_k), T_k = L_k L_k'.
    Drawn as m~_k + U_k'^{-1} eps with U_k = chol(V~_k^{-1}): one Cholesky factorisation
    and triangular solves, no inverse.

    Parameters
    ----------
    rng_key : PRNG key
    chol_precision : array, shape (K, D, D)
        L_k.
    counts : array, shape (K,)
    sums : array, shape (K, D)
        S1_k.
    mean_loc : array, shape (K, D)
        m0.
    mean_scale : float
        s0.

    Returns
    -------
    array, shape (K, D)
    """
    num_components, d = sums.shape
    dtype = sums.dtype
    prior_precision = jnp.asarray(1.0 / mean_scale**2, dtype)
    precision = chol_precision @ jnp.swapaxes(chol_precision, -1, -2)
    posterior_precision = counts[:, None, None] * precision + prior_precision * jnp.eye(
        d, dtype=dtype
    )
    chol = jnp.linalg.cholesky(posterior_precision)
    rhs = prior_precision * mean_loc + jnp.einsum("kde,ke->kd", precision, sums)
    mean = jax.vmap(lambda c, b: cho_solve((c, True), b))(chol, rhs)
    eps = jax.random.normal(rng_key, (num_components, d), dtype)
    noise = jax.vmap(lambda c, e: solve_triangular(c, e, lower=True, trans="T"))(chol, eps)
    return mean + noise


def conjugate_gamma_shapes(
    concentration: jax.Array, df: float, counts: jax.Array, num_features: int
) -> jax.Array:
    """Gamma shapes of theta | z and of the Bartlett diagonals of the T_k | z, side by side.

    theta and the Bartlett diagonals depend on z only through n and are independent given
    it, so one Gamma call can draw all K (1 + D) variables (:func:`gibbs_sweep`).

    Parameters
    ----------
    concentration : array, shape (K,)
        alpha0.
    df : float
        nu.
    counts : array, shape (K,)
        n_k.
    num_features : int
        D.

    Returns
    -------
    array, shape (K, 1 + D)
        Column 0: alpha0 + n (:func:`dirichlet_concentration`); columns 1..D:
        (nu + n_k - j) / 2, j = 0 .. D-1 (:func:`bartlett_shapes`).
    """
    weights = dirichlet_concentration(concentration, counts)[:, None]
    return jnp.concatenate([weights, bartlett_shapes(df + counts, num_features)], axis=1)


def gibbs_sweep(
    rng_key: jax.Array,
    params: Params,
    data: jax.Array,
    priors: Priors,
    covariance_type: str = "full",
) -> tuple[Params, jax.Array]:
    """One full sweep z, theta, mu, T, each drawn given the latest values of the others.

    A pure function of the data (which may be a traced array, e.g. in a Geweke test that
    redraws y every iteration); :func:`build_gibbs_kernel` wraps it.

    Parameters
    ----------
    rng_key : PRNG key
    params : Params with shapes (K,), (K, D), (K, D, D), dtype of ``data``
        chol_precision lower triangular with positive diagonal, of the structure
        ``covariance_type`` names.
    data : array, shape (N, D)
        Its dtype is the dtype of every computation.
    priors : Priors
        Their arrays are cast to the dtype of ``data`` here.
    covariance_type : "full", "diag", "tied" or "spherical"
        Which precision conditional the sweep draws (docs/design.md 1.6).

    Returns
    -------
    params : Params
        The new draw.
    num_occupied : int32 array, shape ()
    """
    if covariance_type != "full":
        return _structured_sweep(rng_key, params, data, priors, covariance_type)
    dtype = data.dtype
    num_components, d = params.means.shape
    scale_inv = jnp.asarray(np.linalg.inv(np.asarray(priors.wishart_scale, np.float64)), dtype)
    key_z, key_gamma, key_mu, key_normal = jax.random.split(rng_key, 4)

    assignments = sample_assignments(key_z, component_log_joint(params, data))
    one_hot, counts, sums = sufficient_statistics(assignments, data, num_components)
    # theta and the Bartlett diagonals of the T_k depend on z only through n, and are
    # independent given it: one Gamma call draws all K (1 + D) variables. JAX's Gamma
    # sampler is a rejection loop, costly to compile and to run, so it is called once.
    # This is sample_weights and sample_precision_cholesky with their random parts drawn
    # together, through the same helpers.
    shapes = conjugate_gamma_shapes(priors.concentration, priors.wishart_df, counts, d)
    log_gamma = jax.random.loggamma(key_gamma, shapes, dtype=dtype)
    weights = weights_from_log_gamma(log_gamma[:, 0])
    means = sample_means(
        key_mu,
        params.chol_precision,
        counts,
        sums,
        jnp.asarray(priors.mean_loc, dtype),
        priors.mean_scale,
    )
    scatter = scatter_about_means(assignments, one_hot, data, means)
    normal = jax.random.normal(key_normal, (num_components, d, d), dtype)
    chol_precision = precision_cholesky_from_parts(scatter, scale_inv, log_gamma[:, 1:], normal)
    num_occupied = jnp.sum(counts > 0).astype(jnp.int32)
    return Params(weights, means, chol_precision), num_occupied


def _structured_sweep(
    rng_key: jax.Array, params: Params, data: jax.Array, priors: Priors, covariance_type: str
) -> tuple[Params, jax.Array]:
    """:func:`gibbs_sweep` for 'diag', 'tied' and 'spherical' (docs/design.md 1.6).

    z, theta and mu as for 'full' (mu | T uses the structured T_k = L_k L_k'); then

        tied       T | mu, z, y     ~ Wishart(nu + N, (S^{-1} + sum_k R_k)^{-1})
        diag       tau_kd | ...     ~ Gamma(a + n_k / 2, b_d + R_k,dd / 2)
        spherical  tau_k | ...      ~ Gamma(a + n_k D / 2, b + tr(R_k) / 2)

    with (a, b) from :func:`bgmm.model.covariance.gamma_prior`. theta's Gammas and the
    precision's Gammas (or Bartlett diagonals) come from one ``loggamma`` call.
    """
    dtype = data.dtype
    num_components, d = params.means.shape
    key_z, key_gamma, key_mu, key_normal = jax.random.split(rng_key, 4)

    assignments = sample_assignments(key_z, component_log_joint(params, data))
    one_hot, counts, sums = sufficient_statistics(assignments, data, num_components)
    alpha = dirichlet_concentration(priors.concentration, counts)  # (K,)
    if covariance_type == "tied":
        total = jnp.sum(counts)
        precision_shapes = bartlett_shapes(jnp.asarray(priors.wishart_df, dtype) + total, d)
    else:
        shape, rate = gamma_prior(priors, covariance_type)
        per_dim = counts if covariance_type == "diag" else counts * d
        width = d if covariance_type == "diag" else 1
        precision_shapes = jnp.broadcast_to(
            (jnp.asarray(shape, dtype) + 0.5 * per_dim)[:, None], (num_components, width)
        ).reshape(-1)
    log_gamma = jax.random.loggamma(
        key_gamma, jnp.concatenate([alpha, precision_shapes]), dtype=dtype
    )
    weights = weights_from_log_gamma(log_gamma[:num_components])
    log_gamma_precision = log_gamma[num_components:]
    means = sample_means(
        key_mu,
        params.chol_precision,
        counts,
        sums,
        jnp.asarray(priors.mean_loc, dtype),
        priors.mean_scale,
    )
    centred = data - means[assignments]
    eye = jnp.eye(d, dtype=dtype)
    if covariance_type == "tied":
        scale_inv = jnp.asarray(np.linalg.inv(np.asarray(priors.wishart_scale, np.float64)), dtype)
        scatter = centred.T @ centred  # sum_k R_k
        normal = jax.random.normal(key_normal, (d, d), dtype)
        chol = cholesky_of_inverse(scale_inv + scatter) @ bartlett_factor(
            log_gamma_precision, normal
        )
        chol_precision = jnp.broadcast_to(chol, (num_components, d, d))
    else:
        squares = one_hot.T @ (centred * centred)  # (K, D): R_k,dd
        if covariance_type == "spherical":
            squares = jnp.sum(squares, axis=1, keepdims=True)  # tr(R_k)
        posterior_rate = jnp.asarray(rate, dtype) + 0.5 * squares
        log_tau = log_gamma_precision.reshape(posterior_rate.shape) - jnp.log(posterior_rate)
        scales = jnp.exp(0.5 * log_tau)  # sqrt(tau), (K, D) or (K, 1)
        chol_precision = scales[:, None, :] * eye
    num_occupied = jnp.sum(counts > 0).astype(jnp.int32)
    return Params(weights, means, chol_precision), num_occupied


def build_gibbs_kernel(
    data: jax.Array, priors: Priors, covariance_type: str = "full"
) -> tuple[
    Callable[[Params], GibbsState],
    Callable[[jax.Array, GibbsState], tuple[GibbsState, GibbsInfo]],
]:
    """The exact Gibbs sampler of the model as written, as BlackJAX-style ``init``/``step``.

    There is no Gibbs form for ``target="tutorial"`` (its density of L is not a Wishart
    density); the chain targets ``target="correct"`` and reports that log joint.

    Parameters
    ----------
    data : array, shape (N, D)
        Its dtype (float64 or float32) is the dtype of every computation and of the state.
        N may be 0: the sweep then draws from the prior.
    priors : Priors
        Cast to the data's dtype here.
    covariance_type : "full", "diag", "tied" or "spherical" (docs/design.md 1.6)

    Returns
    -------
    init : callable
        ``init(params: Params) -> GibbsState``; params with shapes (K,), (K, D), (K, D, D).
    step : callable
        ``step(rng_key, state: GibbsState) -> (GibbsState, GibbsInfo)``, one sweep
        (z, theta, mu, T, in that order). Both are pure: jit and vmap them over chains.
    """
    check_covariance_type(covariance_type)
    data = jnp.asarray(data)
    dtype = data.dtype
    priors = priors.astype(dtype)

    def evaluate(params: Params) -> GibbsState:
        log_likelihood = jnp.sum(logsumexp(component_log_joint(params, data), axis=0))
        log_joint = log_prior(params, priors, "correct", covariance_type) + log_likelihood
        return GibbsState(params, log_joint, log_likelihood)

    def init(params: Params) -> GibbsState:
        return evaluate(Params(*(jnp.asarray(p, dtype) for p in params)))

    def step(rng_key: jax.Array, state: GibbsState) -> tuple[GibbsState, GibbsInfo]:
        params, num_occupied = gibbs_sweep(rng_key, state.params, data, priors, covariance_type)
        return evaluate(params), GibbsInfo(num_occupied)

    return init, step
