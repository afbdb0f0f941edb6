"""Maps between the model's constrained parameters and the sampler's unconstrained space.

- weights: softmax-centred, x in R^{K-1} -> theta = softmax([x, 0]); log|J| = sum_k log theta_k.
- means: identity.
- chol_precision: fill-triangular of a D(D+1)/2 vector, softplus on the diagonal;
  log|J| = sum_j log sigmoid(v_jj).

The precision part depends on the covariance structure (docs/design.md 1.6): 'full' one
D(D+1)/2 vector per component, 'tied' one for all (shape (1, D(D+1)/2)), 'diag' D softplus
diagonal entries per component, 'spherical' one softplus scale per component (shape (K, 1)).
The constrained side is always the full (K, D, D) Cholesky factors.
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
        Lower triangle, row by row, diagonal entries before softplus ('full'). Other
        covariance structures: (..., 1, D (D + 1) / 2) 'tied', (..., K, D) 'diag' (the
        diagonal before softplus), (..., K, 1) 'spherical' (sqrt(tau_k) before softplus).
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


def _chol_from_raw(raw: jax.Array, num_features: int, covariance_type: str) -> jax.Array:
    """The precision part of the position -> (..., K', D, D) factors (K' = 1 when tied)."""
    if covariance_type in ("full", "tied"):
        _, _, diag = _tril_indices(num_features)
        tril = raw.at[..., diag].set(jax.nn.softplus(raw[..., diag]))
        return fill_lower_triangular(tril, num_features)
    if covariance_type not in ("diag", "spherical"):
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    eye = jnp.eye(num_features, dtype=raw.dtype)
    scales = jax.nn.softplus(raw)  # (..., K, D) diag or (..., K, 1) spherical
    return scales[..., None, :] * eye


def to_constrained(
    position: UnconstrainedParams, num_features: int, covariance_type: str = "full"
) -> Params:
    """Unconstrained position -> model parameters (shapes in the class docstrings)."""
    logits = jnp.concatenate(
        [position.weights, jnp.zeros((*position.weights.shape[:-1], 1), position.weights.dtype)],
        axis=-1,
    )
    chol = _chol_from_raw(position.chol_precision, num_features, covariance_type)
    if covariance_type == "tied":  # one factor, repeated for every component
        chol = jnp.broadcast_to(chol, (*position.means.shape, num_features))
    return Params(
        weights=jax.nn.softmax(logits, axis=-1),
        means=position.means,
        chol_precision=chol,
    )


def to_unconstrained(params: Params, covariance_type: str = "full") -> UnconstrainedParams:
    """Model parameters -> unconstrained position; the inverse of :func:`to_constrained`.

    For a structure other than 'full' only the free parameters are read: the diagonal
    ('diag'), L_11 ('spherical'), the first component's factor ('tied').
    """
    log_w = jnp.log(params.weights)
    num_features = params.means.shape[-1]
    chol = params.chol_precision
    if covariance_type in ("full", "tied"):
        if covariance_type == "tied":
            chol = chol[..., :1, :, :]
        _, _, diag = _tril_indices(num_features)
        tril = lower_triangular_to_vector(chol)
        raw = tril.at[..., diag].set(_softplus_inverse(tril[..., diag]))
    elif covariance_type == "diag":
        raw = _softplus_inverse(jnp.diagonal(chol, axis1=-2, axis2=-1))
    elif covariance_type == "spherical":
        raw = _softplus_inverse(chol[..., :1, 0])
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return UnconstrainedParams(
        weights=log_w[..., :-1] - log_w[..., -1:],
        means=params.means,
        chol_precision=raw,
    )


def unconstrained_log_det_jacobian(
    position: UnconstrainedParams, num_features: int, covariance_type: str = "full"
) -> jax.Array:
    """log|d params / d position|, shape (...).

    Softmax-centred: the Jacobian of theta_{1..K-1} w.r.t. x is diag(theta) - theta theta',
    whose determinant is prod_k theta_k. Softplus diagonal: d softplus(v)/dv = sigmoid(v).
    The free precision parameters only: one factor when tied, the diagonal entries of
    'diag', the scales of 'spherical', every one of them through a softplus.
    """
    logits = jnp.concatenate(
        [position.weights, jnp.zeros((*position.weights.shape[:-1], 1), position.weights.dtype)],
        axis=-1,
    )
    log_weights = jax.nn.log_softmax(logits, axis=-1)
    raw = position.chol_precision
    if covariance_type in ("full", "tied"):
        _, _, diag = _tril_indices(num_features)
        raw = raw[..., diag]
    log_sigmoid = jax.nn.log_sigmoid(raw)
    return jnp.sum(log_weights, axis=-1) + jnp.sum(log_sigmoid, axis=(-2, -1))
