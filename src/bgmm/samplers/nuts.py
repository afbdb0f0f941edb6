"""NUTS: BlackJAX's kernel behind the same tuning-driven step as HMC.

BlackJAX is imported where the kernel is built (see :mod:`bgmm.samplers.hmc`).
"""

from __future__ import annotations

from collections.abc import Callable

from bgmm.samplers.hmc import Tuning, import_blackjax

__all__ = ["build_nuts_step"]


def build_nuts_step(logdensity_fn: Callable, max_num_doublings: int = 10) -> Callable:
    """``step(rng_key, state, tuning) -> (state, info)``; the state is BlackJAX's HMCState.

    ``info.num_trajectory_expansions`` is the tree depth; ``info.num_integration_steps``
    the leapfrog steps taken.
    """
    kernel = import_blackjax().nuts.build_kernel()

    def step(rng_key, state, tuning: Tuning):
        return kernel(
            rng_key,
            state,
            logdensity_fn,
            tuning.step_size,
            tuning.inverse_mass_matrix,
            max_num_doublings,
        )

    return step
