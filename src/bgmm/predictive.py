"""The posterior predictive distribution: its density at new points and draws from it.

The posterior predictive density of a point y is the mixture density averaged over the
posterior, p(y | data) ~= (1 / S) sum_s sum_k theta_sk N(y | mu_sk, T_sk^-1) over the S
kept draws (all chains); its log is what scikit-learn calls ``score_samples``. A draw from
it takes a posterior draw at random, a component by that draw's weights and a point from
that component's normal.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from bgmm.model.likelihood import pointwise_log_likelihood
from bgmm.model.transforms import Params
from bgmm.plumbing.batches import padded_batches
from bgmm.plumbing.precision import float64_scope

__all__ = ["log_predictive_density", "predictive_sample"]

# Rows per batch: S x ROWS float64 values at once (4,000 draws x 256 rows: 8 MB).
BATCH_ROWS = 256
# Draws whose densities are computed at once inside a batch.
DRAWS_AT_ONCE = 16


@partial(jax.jit, static_argnames="num_draws")
def _batch_log_density(draws: Params, rows: jax.Array, num_draws: int) -> jax.Array:
    """log of the posterior-averaged mixture density at each of ``rows`` (B, D), (B,)."""
    per_draw = jax.lax.map(
        lambda p: pointwise_log_likelihood(p, rows), draws, batch_size=DRAWS_AT_ONCE
    )
    return logsumexp(per_draw, axis=0) - math.log(num_draws)


@float64_scope
def log_predictive_density(
    data: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    batch_rows: int = BATCH_ROWS,
) -> np.ndarray:
    """log p(y_i | data) under the posterior draws, for each row of ``data``.

    Parameters
    ----------
    data : array, shape (N, D)
        In the units of ``means``.
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    batch_rows : int
        Rows per batch (memory: C x S x batch_rows floats).

    Returns
    -------
    array, shape (N,)
    """
    draws = _flat_draws(weights, means, chol_precision)
    num_draws = draws.weights.shape[0]
    data = np.asarray(data, np.float64)
    out = np.empty(len(data))
    for start, count, batch in padded_batches(data, batch_rows):
        density = _batch_log_density(draws, jnp.asarray(batch), num_draws)
        out[start : start + count] = np.asarray(density)[:count]
    return out


def predictive_sample(
    num_samples: int,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws from the posterior predictive distribution.

    Parameters
    ----------
    num_samples : int
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
        Precision = L L^T, so y = mu + L^-T z with z standard normal.
    rng : numpy Generator

    Returns
    -------
    X : array, shape (num_samples, D)
    labels : array of int, shape (num_samples,)
        The component each point was drawn from.
    """
    draws = Params(
        *(np.asarray(a, np.float64) for a in _flat_draws(weights, means, chol_precision))
    )
    which = rng.integers(0, draws.weights.shape[0], size=num_samples)
    chosen_weights = draws.weights[which]
    # Inverse-CDF choice of a component per point, each by its own draw's weights.
    cumulative = np.cumsum(chosen_weights, axis=1)
    u = rng.random(num_samples)[:, None] * cumulative[:, -1:]
    labels = np.minimum(np.sum(cumulative < u, axis=1), chosen_weights.shape[1] - 1)
    mu = draws.means[which, labels]
    chol = draws.chol_precision[which, labels]
    z = rng.standard_normal(mu.shape)
    offsets = np.linalg.solve(np.swapaxes(chol, -1, -2), z[..., None])[..., 0]
    return mu + offsets, labels


def _flat_draws(weights, means, chol_precision) -> Params:
    """The (C, S, ...) draws as (C * S, ...)."""
    c, s = np.shape(weights)[:2]
    return Params(
        *(np.reshape(a, (c * s, *np.shape(a)[2:])) for a in (weights, means, chol_precision))
    )
