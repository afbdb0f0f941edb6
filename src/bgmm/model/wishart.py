"""The Wishart prior on a precision matrix, carried by its Cholesky factor.

With T = L L' and the sampler moving L, the density of L is W(L L') |J| with
log|J| = D log 2 + sum_j (D - j + 1) log L_jj (docs/design.md section 1.2). TFP's
``WishartTriL(input_output_cholesky=True).log_prob`` omits |J|; the tutorial's
chain therefore targets another prior, offered here as ``include_jacobian=False``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import multigammaln

__all__ = ["cholesky_jacobian_log_det", "wishart_log_prob_cholesky"]

_LOG_2 = 0.6931471805599453


def cholesky_jacobian_log_det(chol: jax.Array) -> jax.Array:
    """log|d(L L') / dL| for lower-triangular L, shape (..., D, D) -> (...)."""
    d = chol.shape[-1]
    powers = jnp.arange(d, 0, -1, dtype=chol.dtype)  # D - j + 1 for j = 1..D
    log_diag = jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1))
    return d * _LOG_2 + jnp.sum(powers * log_diag, axis=-1)


def wishart_log_prob_cholesky(
    chol: jax.Array,
    df: float,
    scale_inv: jax.Array,
    scale_log_det: float,
    include_jacobian: bool = True,
) -> jax.Array:
    """Log density of the Cholesky factor L of T ~ Wishart(df, S).

    Parameters
    ----------
    chol : array, shape (..., D, D)
        Lower-triangular L with positive diagonal.
    df : float
        Degrees of freedom nu > D - 1.
    scale_inv : array, shape (D, D)
        S^{-1}, precomputed once per model.
    scale_log_det : float
        log|S|.
    include_jacobian : bool
        True: the density of L (the model as written). False: W(L L') alone, the
        tutorial's density.

    Returns
    -------
    array, shape (...)
    """
    d = chol.shape[-1]
    log_diag = jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1))
    log_det_t = 2.0 * jnp.sum(log_diag, axis=-1)
    precision = chol @ jnp.swapaxes(chol, -1, -2)
    trace = jnp.sum(scale_inv * precision, axis=(-2, -1))
    log_norm = 0.5 * df * d * _LOG_2 + 0.5 * df * scale_log_det + multigammaln(0.5 * df, d)
    log_norm = jnp.asarray(log_norm, chol.dtype)  # a float64 constant must not promote float32
    log_prob = 0.5 * (df - d - 1) * log_det_t - 0.5 * trace - log_norm
    if include_jacobian:
        log_prob = log_prob + cholesky_jacobian_log_det(chol)
    return log_prob
