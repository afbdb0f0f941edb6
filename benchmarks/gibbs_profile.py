"""The Gibbs sweep's parts at N = 10^5, D = 4, K = 3 (docs/benchmarks.md, section 11).

    python benchmarks/gibbs_profile.py

Milliseconds per jitted call (20 calls after one compiling call), float64, one chain on
part 8's data (standardised), and the whole step of 4 chains vmapped.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from parts.large_n import recipe

from bgmm.model import Params, default_priors
from bgmm.model.likelihood import component_log_joint
from bgmm.samplers.gibbs import (
    build_gibbs_kernel,
    gibbs_sweep,
    sample_assignments,
    scatter_about_means,
    sufficient_statistics,
)


def milliseconds(fn, *args, repeats: int = 20) -> float:
    """Mean milliseconds of ``jax.jit(fn)(*args)`` after one compiling call."""
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn(*args)
    jax.block_until_ready(result)
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    k, d = 3, 4
    y = recipe(100_000, d, k)
    data = jnp.asarray((y - y.mean(0)) / y.std(0))
    priors = default_priors(k, d)
    rng = np.random.default_rng(0)
    eye = jnp.broadcast_to(jnp.eye(d), (k, d, d))
    params = Params(jnp.full(k, 1 / k), jnp.asarray(rng.normal(size=(k, d))), eye)
    init, step = build_gibbs_kernel(data, priors)
    key = jax.random.key(0)
    logits = jax.jit(lambda p: component_log_joint(p, data))(params)
    z = jax.jit(sample_assignments)(key, logits)
    one_hot = jax.nn.one_hot(z, k, dtype=data.dtype)
    chains = jax.tree.map(lambda a: jnp.stack([a] * 4), params)
    rows = {
        "whole step": milliseconds(step, key, init(params)),
        "sweep alone": milliseconds(lambda r, p: gibbs_sweep(r, p, data, priors), key, params),
        "logits": milliseconds(lambda p: component_log_joint(p, data), params),
        "assignments": milliseconds(sample_assignments, key, logits),
        "uniforms": milliseconds(lambda r: jax.random.uniform(r, (data.shape[0],)), key),
        "counts and sums": milliseconds(lambda z: sufficient_statistics(z, data, k), z),
        "scatter": milliseconds(
            lambda z, h, m: scatter_about_means(z, h, data, m), z, one_hot, params.means
        ),
        "log joint of a draw": milliseconds(init, params),
        "4 chains vmapped, whole step": milliseconds(
            jax.vmap(step), jax.random.split(key, 4), jax.vmap(init)(chains)
        ),
    }
    for name, value in rows.items():
        print(f"{name:32s} {value:8.2f} ms")


if __name__ == "__main__":
    main()
