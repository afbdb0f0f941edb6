"""HMC with a fixed number of leapfrog steps: BlackJAX's kernel behind a tuning-driven step.

The kernel is BlackJAX's (momentum draw, Metropolis test, divergence check, HMCInfo); the
trajectory is ours, plugged in through its ``build_proposal`` hook. BlackJAX's velocity
Verlet evaluates the log density *and* its gradient at every leapfrog step, but only the
gradient is needed until the last one. For the mixture the value costs a log per
observation, a third of a gradient at the tutorial's size: taking values only at the end
makes a leapfrog step 1.37x faster there (10.2 against 14.0 microseconds; docs/benchmarks.md).

BlackJAX is imported where a kernel is built, not with this module: a warm run loads its
compiled programs (:mod:`bgmm.samplers.programs`) and builds no kernel, and importing
BlackJAX is 0.3 s of a warm ``bgmm demo``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax

if TYPE_CHECKING:
    from blackjax.mcmc.integrators import IntegratorState

__all__ = ["Tuning", "build_hmc_step", "import_blackjax", "init_hmc", "leapfrog_trajectory"]


def import_blackjax():
    """The ``blackjax`` module, imported on first use.

    Kernels are built while their programs are traced, and BlackJAX's modules run JAX
    operations when imported: those must run eagerly, not join the trace.
    """
    with jax.ensure_compile_time_eval():
        import blackjax
    return blackjax


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
    return import_blackjax().hmc.init(position, logdensity_fn)


def leapfrog_trajectory(
    logdensity_fn: Callable,
    kinetic_energy: Callable,
    state: IntegratorState,
    step_size,
    num_steps,
) -> IntegratorState:
    """``num_steps`` >= 1 velocity Verlet steps from ``state``; the log density is
    evaluated only at the end point (the intermediate steps need its gradient alone).

    Same arithmetic as BlackJAX's ``velocity_verlet`` applied ``num_steps`` times.
    """
    integrator_state = import_blackjax().mcmc.integrators.IntegratorState

    gradient = jax.grad(logdensity_fn)
    velocity = jax.grad(kinetic_energy)
    half_step = 0.5 * step_size

    def kick(momentum, logdensity_grad):
        return jax.tree.map(lambda p, g: p + half_step * g, momentum, logdensity_grad)

    def drift(position, momentum):
        return jax.tree.map(lambda x, v: x + step_size * v, position, velocity(momentum))

    def intermediate_step(_, carry):
        position, momentum, logdensity_grad = carry
        momentum = kick(momentum, logdensity_grad)
        position = drift(position, momentum)
        logdensity_grad = gradient(position)
        return position, kick(momentum, logdensity_grad), logdensity_grad

    position, momentum, logdensity_grad = jax.lax.fori_loop(
        0, num_steps - 1, intermediate_step, (state.position, state.momentum, state.logdensity_grad)
    )
    momentum = kick(momentum, logdensity_grad)
    position = drift(position, momentum)
    logdensity, logdensity_grad = jax.value_and_grad(logdensity_fn)(position)
    return integrator_state(position, kick(momentum, logdensity_grad), logdensity, logdensity_grad)


def _endpoint_proposal(logdensity_fn: Callable) -> Callable:
    """BlackJAX's ``hmc_proposal`` (end point, Metropolis test) on :func:`leapfrog_trajectory`."""

    def build_proposal(
        integrator, kinetic_energy, step_size, num_integration_steps, divergence_threshold
    ):
        mcmc = import_blackjax().mcmc
        hmc, proposal = mcmc.hmc, mcmc.proposal
        del integrator  # BlackJAX's velocity Verlet, replaced by leapfrog_trajectory
        energy = hmc.hmc_energy(kinetic_energy)

        def generate(rng_key, state: IntegratorState):
            end_state = leapfrog_trajectory(
                logdensity_fn, kinetic_energy, state, step_size, num_integration_steps
            )
            end_state = hmc.flip_momentum(end_state)
            new_energy = energy(end_state)
            delta_energy = proposal.safe_energy_diff(energy(state), new_energy)
            is_diverging = -delta_energy > divergence_threshold
            sampled_state, (do_accept, p_accept, _) = proposal.static_binomial_sampling(
                rng_key, delta_energy, state, end_state
            )
            info = hmc.HMCInfo(
                state.momentum,
                p_accept,
                do_accept,
                is_diverging,
                new_energy,
                end_state,
                num_integration_steps,
            )
            return sampled_state, info, None

        return generate

    return build_proposal


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
    kernel = import_blackjax().hmc.build_kernel(build_proposal=_endpoint_proposal(logdensity_fn))

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
