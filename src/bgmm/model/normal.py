"""The multivariate normal parameterised by the Cholesky factor of its precision.

    log N(y | mu, (L L')^{-1}) = sum_j log L_jj - (D/2) log(2 pi) - 0.5 ||L'(y - mu)||^2

The density needs matrix products only; a draw needs one triangular solve
(docs/design.md section 1.1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = [
    "LOG_2PI",
    "log_det_cholesky",
    "mvn_chol_precision_log_prob",
    "mvn_chol_precision_sample",
]

LOG_2PI = 1.8378770664093453  # log(2 pi)


def log_det_cholesky(chol: jax.Array) -> jax.Array:
    """log det L = sum_j log L_jj of lower-triangular factors with positive diagonal.

    Parameters
    ----------
    chol : array, shape (..., D, D)

    Returns
    -------
    array, shape (...)
        Half the log determinant of the precision L L'.
    """
    return jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def mvn_chol_precision_log_prob(
    y: jax.Array, loc: jax.Array, chol_precision: jax.Array
) -> jax.Array:
    """Log density of ``y`` under N(loc, (L L')^{-1}).

    Parameters
    ----------
    y : array, shape (..., D)
    loc : array, shape (..., D)
    chol_precision : array, shape (..., D, D)
        Lower-triangular L with positive diagonal; broadcasts against ``y``.

    Returns
    -------
    array, shape (...)
    """
    d = y.shape[-1]
    # (y - mu)' L is the row vector L'(y - mu): a product, never a solve.
    z = jnp.einsum("...i,...ij->...j", y - loc, chol_precision)
    log_det = log_det_cholesky(chol_precision)
    return log_det - 0.5 * d * LOG_2PI - 0.5 * jnp.sum(z * z, axis=-1)


def mvn_chol_precision_sample(
    rng_key: jax.Array, loc: jax.Array, chol_precision: jax.Array, num_samples: int
) -> jax.Array:
    """Draws y = mu + L'^{-1} eps, eps ~ N(0, I).

    Parameters
    ----------
    rng_key : PRNG key
    loc : array, shape (D,)
    chol_precision : array, shape (D, D)
    num_samples : int

    Returns
    -------
    array, shape (num_samples, D)
    """
    eps = jax.random.normal(rng_key, (num_samples, loc.shape[-1]), dtype=loc.dtype)
    # Solve L' x = eps for all draws at once: x' = eps' L^{-1}.
    x = solve_triangular(chol_precision, eps.T, lower=True, trans="T")
    return loc + x.T
