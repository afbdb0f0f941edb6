"""HMC with a fixed number of leapfrog steps: BlackJAX's kernel behind a tuning-driven step."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import blackjax
import jax

__all__ = ["Tuning", "build_hmc_step", "init_hmc"]


class Tuning(NamedTuple):
    """Kernel parameters that warm-up adapts.

    Attributes
    ----------
    step_size : scalar array
    inverse_mass_matrix : array, shape (P,)
        Diagonal of the inverse mass matrix over the flattened position.
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def init_hmc(position, logdensity_fn: Callable):
    """HMC state (position, log density, its gradient) at ``position``."""
    return blackjax.hmc.init(position, logdensity_fn)


def build_hmc_step(
    logdensity_fn: Callable, num_integration_steps: int, jitter_steps: bool = False
) -> Callable:
    """``step(rng_key, state, tuning) -> (state, info)`` for HMC.

    Parameters
    ----------
    logdensity_fn : callable
    num_integration_steps : int
        Leapfrog steps per transition; with ``jitter_steps`` the mean of a uniform draw
        from 1 .. 2 * num_integration_steps - 1.
    jitter_steps : bool
        Randomise the path length each transition. A fixed path length can resonate with
        the posterior's scales (a chain that keeps returning near its start in some
        direction); a random one cannot (Mackenzie 1989, Neal 2011 section 5.4.2.2).
    """
    kernel = blackjax.hmc.build_kernel()

    def step(rng_key, state, tuning: Tuning):
        num_steps = num_integration_steps
        if jitter_steps:
            rng_key, steps_key = jax.random.split(rng_key)
            num_steps = jax.random.randint(steps_key, (), 1, 2 * num_integration_steps)
        return kernel(
            rng_key,
            state,
            logdensity_fn,
            tuning.step_size,
            tuning.inverse_mass_matrix,
            num_steps,
        )

    return step
