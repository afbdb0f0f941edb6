"""Maps between the model's constrained parameters and the sampler's unconstrained space.

- weights: softmax-centred, x in R^{K-1} -> theta = softmax([x, 0]); log|J| = sum_k log theta_k.
- means: identity.
- chol_precision: fill-triangular of a D(D+1)/2 vector, softplus on the diagonal;
  log|J| = sum_j log sigmoid(v_jj).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Params",
    "UnconstrainedParams",
    "fill_lower_triangular",
    "lower_triangular_to_vector",
    "to_constrained",
    "to_unconstrained",
    "unconstrained_log_det_jacobian",
]


class Params(NamedTuple):
    """Parameters of a K-component mixture in D dimensions.

    Attributes
    ----------
    weights : array, shape (..., K)
    means : array, shape (..., K, D)
    chol_precision : array, shape (..., K, D, D)
        Lower Cholesky factors L_k of the precisions T_k = L_k L_k'.
    """

    weights: jax.Array
    means: jax.Array
    chol_precision: jax.Array


class UnconstrainedParams(NamedTuple):
    """The sampler's position.

    Attributes
    ----------
    weights : array, shape (..., K - 1)
    means : array, shape (..., K, D)
    chol_precision : array, shape (..., K, D (D + 1) / 2)
        Lower triangle, row by row, diagonal entries before softplus.
    """

    weights: jax.Array
    means: jax.Array
    chol_precision: jax.Array


def _tril_indices(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.tril_indices(d)
    return rows, cols, np.flatnonzero(rows == cols)


def fill_lower_triangular(vector: jax.Array, num_features: int) -> jax.Array:
    """(..., D(D+1)/2) -> (..., D, D), lower triangle filled row by row."""
    rows, cols, _ = _tril_indices(num_features)
    out = jnp.zeros((*vector.shape[:-1], num_features, num_features), vector.dtype)
    return out.at[..., rows, cols].set(vector)


def lower_triangular_to_vector(matrix: jax.Array) -> jax.Array:
    """(..., D, D) -> (..., D(D+1)/2), the inverse of :func:`fill_lower_triangular`."""
    rows, cols, _ = _tril_indices(matrix.shape[-1])
    return matrix[..., rows, cols]


def _softplus_inverse(x: jax.Array) -> jax.Array:
    # log(exp(x) - 1), stable for small and large x.
    return x + jnp.log(-jnp.expm1(-x))


def to_constrained(position: UnconstrainedParams, num_features: int) -> Params:
    """Unconstrained position -> model parameters (shapes in the class docstrings)."""
    logits = jnp.concatenate(
        [position.weights, jnp.zeros((*position.weights.shape[:-1], 1), position.weights.dtype)],
        axis=-1,
    )
    _, _, diag = _tril_indices(num_features)
    raw = position.chol_precision
    tril = raw.at[..., diag].set(jax.nn.softplus(raw[..., diag]))
    return Params(
        weights=jax.nn.softmax(logits, axis=-1),
        means=position.means,
        chol_precision=fill_lower_triangular(tril, num_features),
    )


def to_unconstrained(params: Params) -> UnconstrainedParams:
    """Model parameters -> unconstrained position; the inverse of :func:`to_constrained`."""
    log_w = jnp.log(params.weights)
    num_features = params.means.shape[-1]
    _, _, diag = _tril_indices(num_features)
    tril = lower_triangular_to_vector(params.chol_precision)
    raw = tril.at[..., diag].set(_softplus_inverse(tril[..., diag]))
    return UnconstrainedParams(
        weights=log_w[..., :-1] - log_w[..., -1:],
        means=params.means,
        chol_precision=raw,
    )


def unconstrained_log_det_jacobian(position: UnconstrainedParams, num_features: int) -> jax.Array:
    """log|d params / d position|, shape (...).

    Softmax-centred: the Jacobian of theta_{1..K-1} w.r.t. x is diag(theta) - theta theta',
    whose determinant is prod_k theta_k. Softplus diagonal: d softplus(v)/dv = sigmoid(v).
    """
    logits = jnp.concatenate(
        [position.weights, jnp.zeros((*position.weights.shape[:-1], 1), position.weights.dtype)],
        axis=-1,
    )
    log_weights = jax.nn.log_softmax(logits, axis=-1)
    _, _, diag = _tril_indices(num_features)
    log_sigmoid = jax.nn.log_sigmoid(position.chol_precision[..., diag])
    return jnp.sum(log_weights, axis=-1) + jnp.sum(log_sigmoid, axis=(-2, -1))
