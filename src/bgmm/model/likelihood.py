"""The mixture likelihood with the assignments marginalised (direct form).

a_ik = log theta_k + log N(y_i | mu_k, (L_k L_k')^{-1}),
log p(y | params) = sum_i logsumexp_k a_ik.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bgmm.model.normal import LOG_2PI, log_det_cholesky
from bgmm.model.transforms import Params
from bgmm.plumbing.batches import padded_rows

__all__ = [
    "component_log_joint",
    "draws_pointwise_log_likelihood",
    "log_likelihood",
    "pointwise_log_likelihood",
]


def component_log_joint(params: Params, data: jax.Array) -> jax.Array:
    """a_ik = log theta_k + log N(y_i | mu_k, T_k^{-1}), laid out component-major.

    Parameters
    ----------
    params : Params with shapes (K,), (K, D), (K, D, D)
    data : array, shape (N, D)

    Returns
    -------
    array, shape (K, N)
    """
    d = data.shape[-1]
    chol = params.chol_precision
    # L'(y - mu) as y'L - mu'L: one product of the data with all K factors, and the
    # (K, N, D) layout keeps N contiguous, which runs faster than broadcasting (N, K, D).
    data_l = jnp.einsum("nd,kde->kne", data, chol)
    means_l = jnp.einsum("kd,kde->ke", params.means, chol)
    z = data_l - means_l[:, None, :]
    log_det = log_det_cholesky(chol)
    offset = jnp.log(params.weights) + log_det - 0.5 * d * LOG_2PI
    return offset[:, None] - 0.5 * jnp.sum(z * z, axis=-1)


def pointwise_log_likelihood(params: Params, data: jax.Array) -> jax.Array:
    """log p(y_i | params) for each observation, shape (N,)."""
    return logsumexp(component_log_joint(params, data), axis=0)


def log_likelihood(params: Params, data: jax.Array) -> jax.Array:
    """log p(y | params), a scalar; 0 for an empty data set (N = 0)."""
    return jnp.sum(pointwise_log_likelihood(params, data))


def draws_pointwise_log_likelihood(draws: Params, data: np.ndarray) -> np.ndarray:
    """log p(y_i | draw) for every draw, in batches of draws to bound memory.

    Parameters
    ----------
    draws : Params
        weights (C, S, K), means (C, S, K, D), chol_precision (C, S, K, D, D).
    data : array, shape (N, D)

    Returns
    -------
    numpy array, shape (C, S, N)
    """
    c, s = np.shape(draws.weights)[:2]
    n = len(data)
    flat = jax.tree.map(lambda a: jnp.asarray(np.reshape(a, (c * s, *np.shape(a)[2:]))), draws)
    per_draw = jax.jit(  # the data as an argument: no constant in the cached program
        lambda p, y: jax.lax.map(lambda q: pointwise_log_likelihood(q, y), p, batch_size=16)
    )
    # Rows padded (with copies of the first, then dropped) as the sampler's are, so that
    # data of a nearby size reuse the program.
    padded = np.concatenate([data, np.repeat(data[:1], padded_rows(n) - n, axis=0)])
    return np.asarray(per_draw(flat, jnp.asarray(padded)))[:, :n].reshape(c, s, n)
