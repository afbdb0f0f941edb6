"""HMC with a fixed number of leapfrog steps: BlackJAX's kernel behind a tuning-driven step.

The kernel is BlackJAX's (momentum draw, Metropolis test, divergence check, HMCInfo); the
trajectory is ours, plugged in through its ``build_proposal`` hook. BlackJAX's velocity
Verlet evaluates the log density *and* its gradient at every leapfrog step, but only the
gradient is needed until the last one; for the mixture the value costs a log per
observation, so taking it only at the end point makes each leapfrog step cheaper
(docs/benchmarks.md).

BlackJAX is reached through :mod:`bgmm.samplers.blackjax_adapter` alone, and imported where
a kernel is built, not with this module: a warm run loads its compiled programs
(:mod:`bgmm.plumbing.programs`) and builds no kernel, so it never imports BlackJAX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp

from bgmm.samplers.blackjax_adapter import (
    euclidean_metric,
    flip_momentum,
    hmc_energy,
    hmc_info,
    hmc_init,
    hmc_kernel,
    import_blackjax,
    integrator_state,
    safe_energy_diff,
    static_binomial_sampling,
)

if TYPE_CHECKING:
    from bgmm.samplers.blackjax_adapter import IntegratorState

# import_blackjax: re-exported for the callers that import it from here.
__all__ = [
    "Tuning",
    "build_hmc_step",
    "import_blackjax",
    "init_hmc",
    "leapfrog_trajectory",
    "uturn_time",
]


class Tuning(NamedTuple):
    """Kernel parameters that warm-up adapts.

    Attributes
    ----------
    step_size : scalar array
    inverse_mass_matrix : array, shape (P,) or (P, P)
        The inverse mass matrix over the flattened position: its diagonal, or all of it
        (a dense metric).
    num_steps : int32 array, shape ()
        HMC: leapfrog steps per transition (their mean when jittered); fitted in warm-up
        to the posterior when the run asks (:func:`uturn_time`). Unused by NUTS and Gibbs.
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    num_steps: jax.Array


def init_hmc(position, logdensity_fn: Callable):
    """BlackJAX's HMC state at ``position``.

    Parameters
    ----------
    position : pytree of arrays (one chain's unconstrained position)
    logdensity_fn : position -> array, shape ()

    Returns
    -------
    HMCState
        ``position``, ``logdensity`` (shape ()) and ``logdensity_grad`` (like position).
    """
    return hmc_init(position, logdensity_fn)


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

    Parameters
    ----------
    logdensity_fn : position -> array, shape ()
    kinetic_energy : momentum -> array, shape ()
    state : IntegratorState
        ``position`` and ``momentum`` (pytrees of one structure), ``logdensity`` (shape ())
        and ``logdensity_grad`` (like position) at the start.
    step_size : array, shape ()
    num_steps : int or int array, shape ()

    Returns
    -------
    IntegratorState
        The end point, momentum not flipped.
    """
    kick, drift = _kick_and_drift(kinetic_energy, step_size)
    step = _gradient_step(logdensity_fn, kinetic_energy, step_size)
    position, momentum, logdensity_grad = jax.lax.fori_loop(
        0,
        num_steps - 1,
        lambda _, carry: step(*carry),
        (state.position, state.momentum, state.logdensity_grad),
    )
    momentum = kick(momentum, logdensity_grad)
    position = drift(position, momentum)
    logdensity, logdensity_grad = jax.value_and_grad(logdensity_fn)(position)
    return integrator_state(
        position=position,
        momentum=kick(momentum, logdensity_grad),
        logdensity=logdensity,
        logdensity_grad=logdensity_grad,
    )


def _kick_and_drift(kinetic_energy: Callable, step_size) -> tuple[Callable, Callable]:
    """Velocity Verlet's half step of the momentum and whole step of the position."""
    velocity = jax.grad(kinetic_energy)
    half_step = 0.5 * step_size

    def kick(momentum, logdensity_grad):
        return jax.tree.map(lambda p, g: p + half_step * g, momentum, logdensity_grad)

    def drift(position, momentum):
        return jax.tree.map(lambda x, v: x + step_size * v, position, velocity(momentum))

    return kick, drift


def _gradient_step(logdensity_fn: Callable, kinetic_energy: Callable, step_size) -> Callable:
    """One velocity Verlet step that evaluates the gradient alone:
    ``(position, momentum, logdensity_grad) -> the same, one step on``."""
    gradient = jax.grad(logdensity_fn)
    kick, drift = _kick_and_drift(kinetic_energy, step_size)

    def step(position, momentum, logdensity_grad):
        momentum = kick(momentum, logdensity_grad)
        position = drift(position, momentum)
        logdensity_grad = gradient(position)
        return position, kick(momentum, logdensity_grad), logdensity_grad

    return step


def uturn_time(
    rng_key: jax.Array, state, logdensity_fn: Callable, tuning: Tuning, max_steps: int
) -> jax.Array:
    """The integration time from ``state``, with a fresh momentum, until the trajectory
    first turns back (NUTS's generalised U-turn criterion, BlackJAX's), at most
    ``max_steps`` leapfrog steps.

    Warm-up averages these times to fit HMC's path length to the posterior, as empirical
    HMC does (Wu, Stoehr and Robert 2018: the lengths NUTS would have used, then a static
    path): a U-turn is where a longer path stops moving the chain further. BlackJAX has no
    such rule, so it is written here.

    Parameters
    ----------
    rng_key : PRNG key (for the momentum)
    state : HMCState (position, log density, its gradient)
    logdensity_fn : position -> array, shape ()
    tuning : Tuning (step size and inverse mass matrix)
    max_steps : int

    Returns
    -------
    array, shape ()
        Steps taken times the step size. A trajectory that diverges stops there.
    """
    metric = euclidean_metric(tuning.inverse_mass_matrix)
    start = metric.sample_momentum(rng_key, state.position)
    step = _gradient_step(logdensity_fn, metric.kinetic_energy, tuning.step_size)

    def going_on(carry):
        num_steps, *_, turned = carry
        return (num_steps < max_steps) & ~turned

    def one_step(carry):
        num_steps, position, momentum, logdensity_grad, momentum_sum, _ = carry
        position, momentum, logdensity_grad = step(position, momentum, logdensity_grad)
        momentum_sum = jax.tree.map(jnp.add, momentum_sum, momentum)
        finite = jnp.all(jnp.isfinite(jax.flatten_util.ravel_pytree(momentum)[0]))
        turned = metric.check_turning(start, momentum, momentum_sum) | ~finite
        return num_steps + 1, position, momentum, logdensity_grad, momentum_sum, turned

    carry = (jnp.int32(0), state.position, start, state.logdensity_grad, start, jnp.bool_(False))
    num_steps = jax.lax.while_loop(going_on, one_step, carry)[0]
    return num_steps * tuning.step_size


def _endpoint_proposal(logdensity_fn: Callable) -> Callable:
    """BlackJAX's ``hmc_proposal`` (end point, Metropolis test) on :func:`leapfrog_trajectory`.

    Returns
    -------
    callable
        ``build_proposal`` for :func:`~bgmm.samplers.blackjax_adapter.hmc_kernel`.
    """

    def build_proposal(
        integrator, kinetic_energy, step_size, num_integration_steps, divergence_threshold
    ):
        del integrator  # BlackJAX's velocity Verlet, replaced by leapfrog_trajectory
        energy = hmc_energy(kinetic_energy)

        def generate(rng_key, state: IntegratorState):
            end_state = leapfrog_trajectory(
                logdensity_fn, kinetic_energy, state, step_size, num_integration_steps
            )
            end_state = flip_momentum(end_state)
            new_energy = energy(end_state)
            delta_energy = safe_energy_diff(energy(state), new_energy)
            is_divergent = -delta_energy > divergence_threshold
            sampled_state, (is_accepted, acceptance_rate, _) = static_binomial_sampling(
                rng_key, delta_energy, state, end_state
            )
            info = hmc_info(
                momentum=state.momentum,
                acceptance_rate=acceptance_rate,
                is_accepted=is_accepted,
                is_divergent=is_divergent,
                energy=new_energy,
                proposal=end_state,
                num_integration_steps=num_integration_steps,
            )
            return sampled_state, info, None

        return generate

    return build_proposal


def build_hmc_step(logdensity_fn: Callable, jitter_steps: bool = False) -> Callable:
    """``step(rng_key, state, tuning) -> (state, info)`` for HMC.

    Parameters
    ----------
    logdensity_fn : position -> array, shape ()
    jitter_steps : bool
        Randomise the path length each transition. A fixed path length can resonate with
        the posterior's scales (a chain that keeps returning near its start in some
        direction); a random one cannot (Mackenzie 1989, Neal 2011 section 5.4.2.2).

    Returns
    -------
    callable
        ``step(rng_key, state: HMCState, tuning: Tuning) -> (HMCState, HMCInfo)``; the
        tuning's inverse mass matrix has shape (P,), P the size of the flattened position;
        its ``num_steps`` leapfrog steps per transition, with ``jitter_steps`` the mean of
        a uniform draw from 1 .. 2 * num_steps - 1.
    """
    kernel = hmc_kernel(_endpoint_proposal(logdensity_fn))

    def step(rng_key, state, tuning: Tuning):
        num_steps = tuning.num_steps
        if jitter_steps:
            rng_key, steps_key = jax.random.split(rng_key)
            num_steps = jax.random.randint(steps_key, (), 1, 2 * num_steps)
        return kernel(
            rng_key,
            state,
            logdensity_fn,
            tuning.step_size,
            tuning.inverse_mass_matrix,
            num_steps,
        )

    return step
