"""NUTS: BlackJAX's kernel behind the same tuning-driven step as HMC.

BlackJAX is reached through :mod:`bgmm.samplers.blackjax_adapter` and imported where the
kernel is built (see :mod:`bgmm.samplers.hmc`).
"""

from __future__ import annotations

from collections.abc import Callable

from bgmm.samplers.blackjax_adapter import nuts_kernel
from bgmm.samplers.hmc import Tuning

__all__ = ["build_nuts_step"]


def build_nuts_step(logdensity_fn: Callable, max_num_doublings: int = 10) -> Callable:
    """``step(rng_key, state, tuning) -> (state, info)`` for NUTS.

    Parameters
    ----------
    logdensity_fn : position -> array, shape ()
    max_num_doublings : int
        At most 2**max_num_doublings leapfrog steps per transition.

    Returns
    -------
    callable
        ``step(rng_key, state: HMCState, tuning: Tuning) -> (HMCState, NUTSInfo)``;
        ``info.num_trajectory_expansions`` is the tree depth, ``info.num_integration_steps``
        the leapfrog steps taken.
    """
    kernel = nuts_kernel()

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
