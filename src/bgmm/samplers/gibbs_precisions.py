"""The precisions' conjugate draws of the Gibbs sweep (docs/design.md 1.5 and 1.6): the
Wishart by Bartlett's decomposition on a Cholesky factor, and the Gamma draws of the
'diag' and 'spherical' structures, each returned as the Cholesky factor of the precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = [
    "bartlett_factor",
    "bartlett_shapes",
    "cholesky_of_inverse",
    "precision_cholesky_from_parts",
    "sample_precision_cholesky",
    "wishart_cholesky_sample",
]

_LOG_2 = 0.6931471805599453


def cholesky_of_inverse(matrix: jax.Array) -> jax.Array:
    """Lower Cholesky factor of M^{-1} without forming M^{-1}.

    With J the reversal permutation and U = chol(J M J) (lower), J U'^{-1} J is lower
    triangular with positive diagonal and (J U'^{-1} J)(J U'^{-1} J)' = M^{-1}.

    Parameters
    ----------
    matrix : array, shape (..., D, D), symmetric positive definite

    Returns
    -------
    array, shape (..., D, D)
    """
    d = matrix.shape[-1]
    flipped = jnp.flip(matrix, axis=(-2, -1))
    chol = jnp.linalg.cholesky(flipped)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=matrix.dtype), matrix.shape)
    inverse = solve_triangular(chol, eye, lower=True)  # U^{-1}, lower
    return jnp.flip(jnp.swapaxes(inverse, -1, -2), axis=(-2, -1))


def bartlett_shapes(df: jax.Array, num_features: int) -> jax.Array:
    """Gamma shapes (df - j) / 2, j = 0 .. D-1, of the squared Bartlett diagonal / 2.

    Parameters
    ----------
    df : array, shape (...)
    num_features : int
        D.

    Returns
    -------
    array, shape (..., D)
    """
    df = jnp.asarray(df)
    return 0.5 * (df[..., None] - jnp.arange(num_features, dtype=df.dtype))


def bartlett_factor(log_gamma: jax.Array, normal: jax.Array) -> jax.Array:
    """The Bartlett factor A from its random parts.

    Parameters
    ----------
    log_gamma : array, shape (..., D)
        log G_j with G_j ~ Gamma((df - j) / 2) (:func:`bartlett_shapes`), so that
        A_jj = sqrt(2 G_j) ~ sqrt(chi2(df - j)).
    normal : array, shape (..., D, D)
        Standard normals; only the part below the diagonal is used.

    Returns
    -------
    array, shape (..., D, D)
        Lower triangular, positive diagonal; A A' ~ Wishart(df, I).
    """
    d = normal.shape[-1]
    diagonal = jnp.exp(0.5 * (log_gamma + _LOG_2))
    return jnp.tril(normal, k=-1) + diagonal[..., None] * jnp.eye(d, dtype=normal.dtype)


def wishart_cholesky_sample(rng_key: jax.Array, df: jax.Array, scale_chol: jax.Array) -> jax.Array:
    """Cholesky factor of T ~ Wishart(df, C C') by the Bartlett decomposition.

    T = C A A' C' with A lower triangular, A_jj = sqrt(chi2(df - j)) for j = 0 .. D-1
    (drawn as sqrt(2 Gamma((df - j) / 2))) and independent standard normals below the
    diagonal (:func:`bartlett_factor`). C A is lower triangular with positive diagonal, so
    it is chol(T) itself: no factorisation of T.

    Parameters
    ----------
    rng_key : PRNG key
    df : array, shape (...)
        Degrees of freedom, > D - 1; broadcast against the batch shape of ``scale_chol``.
    scale_chol : array, shape (..., D, D)
        C, the lower Cholesky factor of the scale matrix.

    Returns
    -------
    array, shape (..., D, D)
        L with L L' ~ Wishart(df, C C').
    """
    d = scale_chol.shape[-1]
    batch = scale_chol.shape[:-2]
    dtype = scale_chol.dtype
    key_gamma, key_normal = jax.random.split(rng_key)
    shapes = jnp.broadcast_to(bartlett_shapes(jnp.asarray(df, dtype), d), (*batch, d))
    log_gamma = jax.random.loggamma(key_gamma, shapes, dtype=dtype)
    normal = jax.random.normal(key_normal, (*batch, d, d), dtype)
    return scale_chol @ bartlett_factor(log_gamma, normal)


def precision_cholesky_from_parts(
    scatter: jax.Array, scale_inv: jax.Array, log_gamma: jax.Array, normal: jax.Array
) -> jax.Array:
    """L_k = chol((S^{-1} + R_k)^{-1}) A_k: T_k | mu_k, z, y from its random parts.

    Parameters
    ----------
    scatter : array, shape (K, D, D)
        R_k (:func:`scatter_about_means`).
    scale_inv : array, shape (D, D)
        S^{-1}.
    log_gamma : array, shape (K, D)
        log G_kj, G_kj ~ Gamma((nu + n_k - j) / 2) (:func:`bartlett_shapes`).
    normal : array, shape (K, D, D)
        Standard normals; only the part below the diagonal is used.

    Returns
    -------
    array, shape (K, D, D)
        Lower triangular with positive diagonal; L_k L_k' ~ Wishart(nu + n_k,
        (S^{-1} + R_k)^{-1}) when the random parts have their stated laws.
    """
    return cholesky_of_inverse(scale_inv + scatter) @ bartlett_factor(log_gamma, normal)


def sample_precision_cholesky(
    rng_key: jax.Array,
    counts: jax.Array,
    scatter: jax.Array,
    df: float,
    scale_inv: jax.Array,
) -> jax.Array:
    """L_k = chol(T_k), T_k ~ Wishart(nu + n_k, (S^{-1} + R_k)^{-1}).

    Parameters
    ----------
    rng_key : PRNG key
    counts : array, shape (K,)
    scatter : array, shape (K, D, D)
        R_k, the scatter about the current means (:func:`scatter_about_means`).
    df : float
        nu.
    scale_inv : array, shape (D, D)
        S^{-1}.

    Returns
    -------
    array, shape (K, D, D)
    """
    num_components, d = scatter.shape[:2]
    dtype = scatter.dtype
    key_gamma, key_normal = jax.random.split(rng_key)  # as wishart_cholesky_sample
    log_gamma = jax.random.loggamma(key_gamma, bartlett_shapes(df + counts, d), dtype=dtype)
    normal = jax.random.normal(key_normal, (num_components, d, d), dtype)
    return precision_cholesky_from_parts(scatter, scale_inv, log_gamma, normal)


# ---------------------------------------------------------------------------------------
# One sweep and the kernel.
# ---------------------------------------------------------------------------------------
