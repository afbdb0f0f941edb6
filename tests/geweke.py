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

from bgmm.model import Params

# Unoptimised XLA: these programs run once, so compiling fast matters more than running fast.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


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
