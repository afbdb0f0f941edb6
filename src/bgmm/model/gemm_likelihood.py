"""The mixture log-likelihood as two matrix products (docs/design.md section 1.4).

With features phi_i = [1, y_i, y_ij y_il (j <= l)] every log joint a_ik is linear in a
per-component weight vector w_k built from (theta_k, mu_k, L_k):

    a_ik = c_k + y_i' P_k mu_k - 0.5 y_i' P_k y_i,   P_k = L_k L_k',
    c_k  = log theta_k + sum_j log L_k,jj - (D/2) log 2 pi - 0.5 mu_k' P_k mu_k,

so the logits are one GEMM, A = Phi W' (N x F by F x K), and the gradient of
sum_i logsumexp_k a_ik with respect to W is another, R' Phi with R = softmax(A) (the
responsibility-weighted sufficient statistics). The hand-written VJP below keeps autodiff
from storing and re-reading the N x K intermediates it would otherwise keep; the small map
from the parameters to W is differentiated by JAX. The features are built once per data set,
around the data's mean, because the expanded quadratic loses precision when |y| is large
compared with the spread.

Structured covariances (docs/design.md 1.6) need fewer features: 'diag' the squares y_ij^2
(F = 1 + 2 D), 'spherical' ||y_i||^2 (F = D + 2), 'tied' none, because its quadratic term
-0.5 y_i' P y_i is the same for every component and leaves the logsumexp: it sums to
-0.5 <P, Q> with Q = sum_i y_i y_i' (F = 1 + D, and Q kept beside Phi).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.model.normal import LOG_2PI, log_det_cholesky
from bgmm.model.transforms import Params

__all__ = [
    "Features",
    "component_logits",
    "component_weights",
    "gemm_log_likelihood",
    "make_features",
    "num_features_of",
    "sum_logsumexp",
]


class Features(NamedTuple):
    """Per-observation features for the GEMM form.

    Attributes
    ----------
    phi : array, shape (N, F), F = 1 + D + D (D + 1) / 2 (``num_features_of``)
    center : array, shape (D,)
        The point the features were built around (the data's mean).
    scatter : array, shape (D, D), or None
        Q = sum_i y_i y_i' of the centred data: 'tied' only, whose quadratic term is
        the same for every component and not among the features.
    """

    phi: jax.Array
    center: jax.Array
    scatter: jax.Array | None = None


def num_features_of(num_dims: int, covariance_type: str = "full") -> int:
    """F for D dimensions and a covariance structure (docs/design.md 1.4, 1.6)."""
    quadratic = {
        "full": num_dims * (num_dims + 1) // 2,
        "diag": num_dims,
        "spherical": 1,
        "tied": 0,
    }[covariance_type]
    return 1 + num_dims + quadratic


def make_features(
    data,
    dtype=jnp.float64,
    covariance_type: str = "full",
    num_rows: int | None = None,
    center: np.ndarray | None = None,
) -> Features:
    """Features of ``data`` (N, D), built once per run in ``dtype``.

    The data are centred on the host in float64, then the features are built on the
    device by one compiled program, so the only large buffer is Phi itself (no numpy
    intermediates of the same size, no second copy on the way to the device).

    ``num_rows`` (>= N) pads Phi with zero rows up to that many, so that one compiled
    program serves data of several sizes (docs/design.md 5.1). A zero row is no
    observation: its constant feature is 0 where an observation's is 1, and
    :func:`gemm_log_likelihood` leaves it out exactly, value and gradient.

    ``center`` (D,): the point to build the features around, default the data's mean
    (blocks of one data set on several processes need the same one).
    """
    data = np.asarray(data, dtype=np.float64)
    n, d = data.shape
    num_rows = n if num_rows is None else int(num_rows)
    if num_rows < n:
        raise ValueError(f"num_rows {num_rows} is fewer than the {n} rows of the data")
    if center is None:
        center = data.mean(axis=0) if n else np.zeros(d)
    center = np.asarray(center, dtype=np.float64)
    centred = jnp.asarray(data - center, dtype)
    phi = _features_of_centred(centred, covariance_type, num_rows - n)
    scatter = _scatter(centred) if covariance_type == "tied" else None
    return Features(phi, jnp.asarray(center, dtype), scatter)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _features_of_centred(
    y: jax.Array, covariance_type: str = "full", num_padding: int = 0
) -> jax.Array:
    ones = jnp.ones((y.shape[0], 1), y.dtype)
    if covariance_type == "full":
        rows, cols = np.triu_indices(y.shape[1])
        quadratic = [y[:, rows] * y[:, cols]]
    elif covariance_type == "diag":
        quadratic = [y * y]
    elif covariance_type == "spherical":
        quadratic = [jnp.sum(y * y, axis=1, keepdims=True)]
    else:
        quadratic = []
    phi = jnp.concatenate([ones, y, *quadratic], axis=1)
    return jnp.pad(phi, ((0, num_padding), (0, 0)))


@jax.jit
def _scatter(y: jax.Array) -> jax.Array:
    return y.T @ y


def component_weights(
    params: Params, center: jax.Array, covariance_type: str = "full"
) -> jax.Array:
    """W (K, F): a_ik = phi_i . w_k for the features built around ``center``.

    For 'tied' a_ik - phi_i . w_k = -0.5 y_i' P y_i, the same for every k
    (:func:`gemm_log_likelihood` adds it).

    Parameters
    ----------
    params : Params with shapes (K,), (K, D), (K, D, D)
    center : array, shape (D,)
    covariance_type : str
        The structure of ``params`` and of the features (:func:`make_features`).

    Returns
    -------
    array, shape (K, F)
    """
    d = params.means.shape[-1]
    chol = params.chol_precision
    if covariance_type != "full":
        return _structured_weights(params, center, covariance_type)
    precision = chol @ jnp.swapaxes(chol, -1, -2)
    mu = params.means - center
    p_mu = jnp.einsum("kde,ke->kd", precision, mu)
    log_det = log_det_cholesky(chol)
    const = (
        jnp.log(params.weights) + log_det - 0.5 * d * LOG_2PI - 0.5 * jnp.sum(mu * p_mu, axis=-1)
    )
    rows, cols = np.triu_indices(d)
    # y' P y = sum_j P_jj y_j^2 + 2 sum_{j<l} P_jl y_j y_l
    quad = jnp.where(rows == cols, -0.5, -1.0) * precision[:, rows, cols]
    return jnp.concatenate([const[:, None], p_mu, quad], axis=1)


def _structured_weights(params: Params, center: jax.Array, covariance_type: str) -> jax.Array:
    """:func:`component_weights` for 'diag', 'spherical' and 'tied' (docs/design.md 1.6)."""
    d = params.means.shape[-1]
    chol = params.chol_precision
    mu = params.means - center
    if covariance_type == "tied":
        chol = chol[0]
        p_mu = mu @ (chol @ chol.T)  # P symmetric
        log_det = jnp.sum(jnp.log(jnp.diagonal(chol)))
    else:
        if covariance_type == "diag":
            scales = jnp.diagonal(chol, axis1=-2, axis2=-1)  # (K, D)
        else:
            scales = chol[:, :1, 0]  # (K, 1)
        tau = scales * scales
        p_mu = tau * mu
        log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    const = (
        jnp.log(params.weights) + log_det - 0.5 * d * LOG_2PI - 0.5 * jnp.sum(mu * p_mu, axis=-1)
    )
    parts = [const[:, None], p_mu]
    if covariance_type != "tied":
        parts.append(-0.5 * tau)
    return jnp.concatenate(parts, axis=1)


# Up to this many logits (N K), they are laid out K x N (one row per component) rather than
# N x K: XLA's CPU code runs the softmax and the second GEMM faster that way while the
# intermediates stay in cache, and slower once they do not (docs/benchmarks.md).
SMALL_LOGITS = 2**14


def component_logits(weights: jax.Array, phi: jax.Array) -> tuple[jax.Array, int]:
    """The N x K logits Phi W' and the axis that runs over components.

    Returned as K x N (component axis 0) when there are at most SMALL_LOGITS of them.
    """
    if phi.shape[0] * weights.shape[0] <= SMALL_LOGITS:
        return jax.lax.dot_general(weights, phi, (((1,), (1,)), ((), ()))), 0
    return phi @ weights.T, 1


@jax.custom_vjp
def sum_logsumexp(weights: jax.Array, phi: jax.Array) -> jax.Array:
    """sum_i logsumexp_k (phi_i . w_k) for W (K, F) and Phi (N, F), zero rows of Phi left
    out; its gradient in W is R' Phi, computed in the same pass."""
    # The forward pass's value; under jit the unused statistics are compiled away.
    return _sum_logsumexp_fwd(weights, phi)[0]


def _sum_logsumexp_fwd(weights, phi):
    logits, component_axis = component_logits(weights, phi)
    # One exp per logit serves both the value and the responsibilities (logsumexp followed
    # by softmax would take two; at small N the exps are most of the cost).
    top = jax.lax.stop_gradient(jnp.max(logits, axis=component_axis, keepdims=True))
    unnormalised = jnp.exp(logits - top)
    total = jnp.sum(unnormalised, axis=component_axis, keepdims=True)
    responsibilities = unnormalised / total
    # A padding row (constant feature 0, make_features) has every logit 0: top 0, total K.
    # Its total becomes 1, so its log adds exactly 0; its statistics are R_i phi_i = 0.
    is_row = jnp.expand_dims(phi[:, 0], component_axis) > 0
    total = jnp.where(is_row, total, jnp.ones_like(total))
    if component_axis == 1:
        responsibilities = responsibilities.T
    # d/dW sum_i logsumexp_k (phi_i . w_k) = R' Phi, the sufficient statistics. Computed
    # here, the backward pass keeps a K x F matrix instead of the N x K responsibilities.
    statistics = responsibilities @ phi
    return jnp.sum(top) + _sum_of_logs(total, weights.shape[0]), statistics


def _sum_of_logs(totals: jax.Array, num_components: int) -> jax.Array:
    """sum(log(totals)) with one log per block of observations instead of one each.

    Each total is a sum of K exps whose largest is exp(0) = 1, so it lies in [1, K] and a
    product of B of them in [1, K^B]: B keeps that within half the dtype's exponent range
    (and at most 64, so rounding stays at the level of the sum itself). The logs are a large
    part of the value's cost at small N, and NUTS pays it at every leapfrog step
    (docs/benchmarks.md).
    """
    totals = totals.reshape(-1)
    bits_per_total = max(math.log2(num_components), 1.0)
    block = max(1, min(64, int(jnp.finfo(totals.dtype).maxexp // 2 / bits_per_total)))
    padding = -totals.shape[0] % block
    if padding:
        totals = jnp.concatenate([totals, jnp.ones(padding, totals.dtype)])
    return jnp.sum(jnp.log(jnp.prod(totals.reshape(-1, block), axis=1)))


def _sum_logsumexp_bwd(statistics, cotangent):
    return cotangent * statistics, None


sum_logsumexp.defvjp(_sum_logsumexp_fwd, _sum_logsumexp_bwd)


def gemm_log_likelihood(
    params: Params, features: Features, covariance_type: str = "full"
) -> jax.Array:
    """log p(y | params) by two GEMMs; equal to :func:`bgmm.model.log_likelihood`.

    Parameters
    ----------
    params : Params with shapes (K,), (K, D), (K, D, D)
    features : Features from :func:`make_features` for ``covariance_type``
    covariance_type : str
        The structure of ``params``; full features serve every structure.

    Returns
    -------
    scalar array
    """
    d = params.means.shape[-1]
    if features.phi.shape[1] == num_features_of(d, "full") and features.scatter is None:
        covariance_type = "full"  # full features: the general weights (D = 1: all alike)
    weights = component_weights(params, features.center, covariance_type)
    value = sum_logsumexp(weights, features.phi)
    if covariance_type == "tied":
        chol = params.chol_precision[0]
        value = value - 0.5 * jnp.sum((chol @ chol.T) * features.scatter)
    return value
