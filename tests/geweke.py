"""Geweke's (2004) successive-conditional simulator, shared by the Gibbs tests.

Alternate a sweep given y with a fresh y ~ p(y | params): the chain's stationary law is the
joint p(params, y), so its params marginal is the prior. Both (params_t, y_t) and
(y_{t-1}, params_t) are draws from the joint when the kernel is right; the second pair also
tests how a sweep uses the data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bgmm.model import Params, Priors
from bgmm.model.covariance import gamma_prior

# Unoptimised XLA: these programs run once, so compiling fast matters more than running fast.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def prior_draw(rng: np.random.Generator, priors: Priors, structure: str = "full") -> Params:
    """A draw from the prior with numpy and scipy, independent of the samplers under test:
    a Wishart precision per component ('full'), one shared ('tied'), or Gamma precisions per
    entry or per component ('diag', 'spherical'; docs/design.md 1.6)."""
    k, d = priors.num_components, priors.num_features
    weights = rng.dirichlet(priors.concentration)
    means = priors.mean_loc + priors.mean_scale * rng.normal(size=(k, d))
    wishart = stats.wishart(priors.wishart_df, priors.wishart_scale)
    if structure == "full":
        chol = np.linalg.cholesky(wishart.rvs(size=k, random_state=rng))
    elif structure == "tied":
        chol = np.broadcast_to(np.linalg.cholesky(wishart.rvs(random_state=rng)), (k, d, d)).copy()
    else:
        shape, rate = gamma_prior(priors, structure)
        tau = rng.gamma(shape, 1.0 / rate, size=(k, len(rate)))
        chol = np.sqrt(tau)[:, None, :] * np.eye(d)
    return Params(weights, means, chol)


def data_draw(rng_key, params: Params, num_samples: int) -> jax.Array:
    """``num_samples`` rows y = mu_z + L_z'^{-1} eps, z ~ Categorical(weights)."""
    key_z, key_y = jax.random.split(rng_key)
    z = jax.random.categorical(key_z, jnp.log(params.weights), shape=(num_samples,))
    eps = jax.random.normal(key_y, (num_samples, params.means.shape[-1]))
    chol = params.chol_precision[z]
    x = jax.vmap(lambda c, e: jax.scipy.linalg.solve_triangular(c, e, lower=True, trans="T"))(
        chol, eps
    )
    return params.means[z] + x


def geweke_draws(
    sweep: Callable[[jax.Array, Params, jax.Array], Params],
    starts: list[Params],
    seed: int,
    num_steps: int,
    num_data: int,
) -> tuple[Params, np.ndarray]:
    """Params after each sweep, shape (chains, num_steps, ...), and the (chains, num_steps, D)
    means of the ``num_data`` rows each sweep conditioned on; one chain per start."""

    def chain(params, rng_key):
        key_data, key_run = jax.random.split(rng_key)
        data = data_draw(key_data, params, num_data)

        def body(carry, key):
            params, data = carry
            key_sweep, key_data = jax.random.split(key)
            params = sweep(key_sweep, params, data)
            data_mean = jnp.mean(data, axis=0)
            data = data_draw(key_data, params, num_data)
            return (params, data), (params, data_mean)

        return jax.lax.scan(body, (params, data), jax.random.split(key_run, num_steps))[1]

    stacked = Params(*(jnp.asarray(np.stack(a)) for a in zip(*starts, strict=True)))
    keys = jax.random.split(jax.random.key(seed), len(starts))
    params, data_mean = jit(jax.vmap(chain))(stacked, keys)
    return Params(*(np.asarray(a) for a in params)), np.asarray(data_mean)


def expected_means_times_data(priors: Priors) -> np.ndarray:
    """E[mu_k y_bar'] under the joint p(params, y), (K, D, D): E[theta_k] s0^2 I +
    sum_j E[theta_j] m0_k m0_j', since E[y_bar | params] = sum_j theta_j mu_j."""
    alpha = np.asarray(priors.concentration)
    mean_theta = alpha / alpha.sum()
    m0, s0 = np.asarray(priors.mean_loc), priors.mean_scale
    d = m0.shape[1]
    return np.einsum("k,de->kde", mean_theta * s0**2, np.eye(d)) + np.einsum(
        "kd,j,je->kde", m0, mean_theta, m0
    )
