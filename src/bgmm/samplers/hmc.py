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


def build_hmc_step(logdensity_fn: Callable, num_integration_steps: int) -> Callable:
    """``step(rng_key, state, tuning) -> (state, info)`` for HMC with fixed path length."""
    kernel = blackjax.hmc.build_kernel()

    def step(rng_key, state, tuning: Tuning):
        return kernel(
            rng_key,
            state,
            logdensity_fn,
            tuning.step_size,
            tuning.inverse_mass_matrix,
            num_integration_steps,
        )

    return step
