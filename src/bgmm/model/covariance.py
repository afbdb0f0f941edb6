"""Covariance structures: 'full', 'diag', 'tied', 'spherical' (scikit-learn's names).

Every structure is carried in :class:`~bgmm.model.transforms.Params` by full lower-triangular
Cholesky factors L_k of the precisions (K, D, D), so that everything downstream reads one
layout: 'diag' has diagonal L_k, 'spherical' L_k = sqrt(tau_k) I, 'tied' the same L for
every k. The priors are those of the full model's Wishart(nu, S) in conjugate form
(docs/design.md section 1.6):

    full       T_k ~ Wishart(nu, S)                     one per component
    tied       T   ~ Wishart(nu, S)                     one for all components
    diag       tau_kd ~ Gamma(nu / 2, rate 1 / (2 S_dd))     the Wishart's diagonal marginal
    spherical  tau_k  ~ Gamma(nu D / 2, rate D^2 / (2 tr S))

Densities are of what the sampler moves: L (full, tied) and l = sqrt(tau) (diag,
spherical), each with the Jacobian of the map to the precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from bgmm.model.priors import Priors
from bgmm.model.wishart import wishart_log_prob_cholesky

__all__ = [
    "COVARIANCE_TYPES",
    "check_covariance_type",
    "gamma_prior",
    "precision_log_prior",
    "project_chol_precision",
]

COVARIANCE_TYPES: tuple[str, ...] = ("full", "diag", "tied", "spherical")
_LOG_2 = 0.6931471805599453


def check_covariance_type(covariance_type: str) -> str:
    """``covariance_type`` if it is one of :data:`COVARIANCE_TYPES`; else ``ValueError``."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"unknown covariance_type {covariance_type!r}; expected one of {COVARIANCE_TYPES}"
        )
    return covariance_type


def gamma_prior(priors: Priors, covariance_type: str) -> tuple[float, np.ndarray]:
    """Shape a and rate b of the Gamma prior on the precisions tau (docs/design.md 1.6).

    'diag': a = nu / 2, b_d = 1 / (2 S_dd), shape (D,): T_dd of T ~ Wishart(nu, S) is
    S_dd chi2(nu). 'spherical': a = nu D / 2, b = D^2 / (2 tr S), shape (1,): tr(T) / D
    when S is a multiple of I (then exact), E[tau] = tr(E[T]) / D for any S.

    Returns
    -------
    shape : float
    rate : numpy float64 array, shape (D,) for 'diag', (1,) for 'spherical'
    """
    nu = float(priors.wishart_df)
    scale = np.asarray(priors.wishart_scale, np.float64)
    d = scale.shape[0]
    if covariance_type == "diag":
        return 0.5 * nu, 0.5 / np.diag(scale)
    if covariance_type == "spherical":
        return 0.5 * nu * d, np.array([0.5 * d * d / np.trace(scale)])
    raise ValueError(f"no Gamma prior for covariance_type {covariance_type!r}")


def _sqrt_gamma_log_prob(l: jax.Array, shape: float, rate: jax.Array) -> jax.Array:
    """Log density of l = sqrt(tau), tau ~ Gamma(shape, rate): Gamma(l^2) 2 l, elementwise."""
    dtype = l.dtype
    shape = jnp.asarray(shape, dtype)
    rate = jnp.asarray(rate, dtype)
    log_norm = shape * jnp.log(rate) - gammaln(shape) + jnp.asarray(_LOG_2, dtype)
    return log_norm + (2.0 * shape - 1.0) * jnp.log(l) - rate * l * l


def precision_log_prior(
    chol: jax.Array, priors: Priors, covariance_type: str = "full", include_jacobian: bool = True
) -> jax.Array:
    """Log prior density of the precision parameters the sampler moves, a scalar.

    Parameters
    ----------
    chol : array, shape (K, D, D)
        The Cholesky factors as :class:`Params` carries them (structured as the type says).
    priors : Priors
    covariance_type : str
    include_jacobian : bool
        'full' only: False drops the Jacobian of T = L L' (the tutorial's density).
    """
    dtype = chol.dtype
    check_covariance_type(covariance_type)
    if covariance_type in ("full", "tied"):
        scale = np.asarray(priors.wishart_scale, dtype=np.float64)
        scale_inv = jnp.asarray(np.linalg.inv(scale), dtype)
        scale_log_det = float(np.linalg.slogdet(scale)[1])
        factors = chol if covariance_type == "full" else chol[:1]
        return jnp.sum(
            wishart_log_prob_cholesky(
                factors, priors.wishart_df, scale_inv, scale_log_det, include_jacobian
            )
        )
    if not include_jacobian:
        raise ValueError("target 'tutorial' is for covariance_type 'full' only")
    shape, rate = gamma_prior(priors, covariance_type)
    if covariance_type == "diag":
        l = jnp.diagonal(chol, axis1=-2, axis2=-1)  # (K, D)
    else:
        l = chol[:, :1, 0]  # (K, 1)
    return jnp.sum(_sqrt_gamma_log_prob(l, shape, rate))


def project_chol_precision(
    chol: np.ndarray, weights: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Full Cholesky factors of precisions, projected onto a structure (numpy, for starts).

    The covariances C_k = (L_k L_k')^{-1} become: 'diag' their diagonals; 'spherical' the
    mean of their diagonals times I; 'tied' the weighted pool sum_k w_k C_k, the same for
    every k; 'full' unchanged.

    Parameters
    ----------
    chol : array, shape (..., K, D, D)
    weights : array, shape (..., K)

    Returns
    -------
    numpy float64 array, shape (..., K, D, D)
    """
    chol = np.asarray(chol, np.float64)
    check_covariance_type(covariance_type)
    if covariance_type == "full":
        return chol
    d = chol.shape[-1]
    cov = np.linalg.inv(chol @ np.swapaxes(chol, -1, -2))
    variances = np.diagonal(cov, axis1=-2, axis2=-1)  # (..., K, D)
    eye = np.eye(d)
    if covariance_type == "diag":
        return eye / np.sqrt(variances)[..., None, :]
    if covariance_type == "spherical":
        return eye / np.sqrt(variances.mean(axis=-1))[..., None, None]
    w = np.asarray(weights, np.float64)
    w = w / w.sum(axis=-1, keepdims=True)
    pooled = np.einsum("...k,...kde->...de", w, cov)
    tied = np.linalg.cholesky(np.linalg.inv(pooled))
    return np.broadcast_to(tied[..., None, :, :], chol.shape).copy()
