"""The one place bgmm reaches into BlackJAX: its public kernels and the internals we reuse.

The kernels (:mod:`~bgmm.samplers.hmc`, :mod:`~bgmm.samplers.nuts`) and the warm-up
(:mod:`~bgmm.samplers.adaptation`) import BlackJAX only through this module. BlackJAX's
top-level API (``blackjax.hmc``, ``blackjax.nuts``) is stable; the names below it that
we use (``blackjax.mcmc.*``, ``blackjax.adaptation.*``) are internal and may move
between releases, so they are imported in :func:`blackjax_internals` alone, each with the
reason it is used. Checked with blackjax 1.7.1; ``tests/test_hmc.py`` checks that every
name exists with the fields bgmm reads, so an upgrade that moves one fails there first.

Nothing here imports BlackJAX when this module is imported: a warm run loads its compiled
programs (:mod:`bgmm.plumbing.programs`) and builds no kernel, so it never pays for
importing BlackJAX.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import numpy as np

if TYPE_CHECKING:
    from blackjax.mcmc.integrators import IntegratorState

__all__ = [
    "BLACKJAX_FIELDS_READ",
    "BlackJAXInternals",
    "blackjax_internals",
    "dual_averaging_adaptation",
    "euclidean_metric",
    "flip_momentum",
    "hmc_energy",
    "hmc_info",
    "hmc_init",
    "hmc_kernel",
    "import_blackjax",
    "integrator_state",
    "mass_matrix_adaptation",
    "nuts_kernel",
    "safe_energy_diff",
    "static_binomial_sampling",
    "window_schedule",
]

# The fields bgmm reads (or, for HMCInfo and IntegratorState, builds by keyword) of
# BlackJAX's types; tests/test_hmc.py checks them against the installed BlackJAX.
BLACKJAX_FIELDS_READ: dict[str, tuple[str, ...]] = {
    "HMCState": ("position", "logdensity", "logdensity_grad"),
    "HMCInfo": (
        "momentum",
        "acceptance_rate",
        "is_accepted",
        "is_divergent",
        "energy",
        "proposal",
        "num_integration_steps",
    ),
    "NUTSInfo": (
        "acceptance_rate",
        "is_divergent",
        "energy",
        "num_integration_steps",
        "num_trajectory_expansions",
    ),
    "IntegratorState": ("position", "momentum", "logdensity", "logdensity_grad"),
    "DualAveragingAdaptationState": ("log_step_size", "log_step_size_avg"),
    "MassMatrixAdaptationState": ("inverse_mass_matrix",),
    "Metric": ("sample_momentum", "kinetic_energy", "check_turning"),
}


def import_blackjax():
    """The ``blackjax`` module, imported on first use.

    Kernels are built while their programs are traced, and BlackJAX's modules run JAX
    operations when imported: those must run eagerly, not join the trace.
    """
    with jax.ensure_compile_time_eval():
        import blackjax
    return blackjax


class BlackJAXInternals(NamedTuple):
    """BlackJAX's internal names that bgmm uses (see :func:`blackjax_internals`)."""

    HMCState: type
    HMCInfo: type
    NUTSInfo: type
    IntegratorState: type
    hmc_energy: Callable
    flip_momentum: Callable
    safe_energy_diff: Callable
    static_binomial_sampling: Callable
    build_schedule: Callable
    dual_averaging_adaptation: Callable
    DualAveragingAdaptationState: type
    mass_matrix_adaptation: Callable
    MassMatrixAdaptationState: type
    default_metric: Callable
    Metric: type


@functools.cache
def blackjax_internals() -> BlackJAXInternals:
    """Every internal BlackJAX name bgmm uses, imported here only (checked: blackjax 1.7.1)."""
    import_blackjax()  # the package first, so that its import-time JAX operations run eagerly
    # Stan's warm-up pieces (Welford mass matrix, dual averaging, window schedule): the public
    # blackjax.window_adaptation runs the whole warm-up in one compiled call, and we run it in
    # chunks. The state types are imported for the check of the fields we read.
    from blackjax.adaptation.mass_matrix import MassMatrixAdaptationState, mass_matrix_adaptation
    from blackjax.adaptation.step_size import (
        DualAveragingAdaptationState,
        dual_averaging_adaptation,
    )
    from blackjax.adaptation.window_adaptation import build_schedule

    # HMC's info type (our end-point proposal must return what BlackJAX's kernel returns) and
    # its energy and momentum flip: reused so that our transition is BlackJAX's arithmetic
    # exactly, the trajectory aside. HMCState: for the check of the fields the runner reads.
    from blackjax.mcmc.hmc import HMCInfo, HMCState, flip_momentum, hmc_energy

    # What BlackJAX's HMC kernel hands our trajectory and takes back from it.
    from blackjax.mcmc.integrators import IntegratorState

    # The Euclidean metric HMC and NUTS build from an inverse mass matrix: its momentum
    # draw, kinetic energy and NUTS's U-turn criterion, for the path length's warm-up.
    from blackjax.mcmc.metrics import Metric, default_metric

    # The NUTS kernel's info, for the check of the fields the runner records.
    from blackjax.mcmc.nuts import NUTSInfo

    # The NaN-safe energy difference and the Metropolis test of BlackJAX's HMC proposal.
    from blackjax.mcmc.proposal import safe_energy_diff, static_binomial_sampling

    return BlackJAXInternals(
        HMCState=HMCState,
        HMCInfo=HMCInfo,
        NUTSInfo=NUTSInfo,
        IntegratorState=IntegratorState,
        hmc_energy=hmc_energy,
        flip_momentum=flip_momentum,
        safe_energy_diff=safe_energy_diff,
        static_binomial_sampling=static_binomial_sampling,
        build_schedule=build_schedule,
        dual_averaging_adaptation=dual_averaging_adaptation,
        DualAveragingAdaptationState=DualAveragingAdaptationState,
        mass_matrix_adaptation=mass_matrix_adaptation,
        MassMatrixAdaptationState=MassMatrixAdaptationState,
        default_metric=default_metric,
        Metric=Metric,
    )


# ---------------------------------------------------------------------------------------
# Public API: the kernels.
# ---------------------------------------------------------------------------------------


def hmc_init(position: Any, logdensity_fn: Callable) -> Any:
    """``blackjax.hmc.init``: HMCState (position, log density, its gradient) at ``position``."""
    return import_blackjax().hmc.init(position, logdensity_fn)


def hmc_kernel(build_proposal: Callable) -> Callable:
    """``blackjax.hmc.build_kernel`` with our proposal plugged into its ``build_proposal``.

    Parameters
    ----------
    build_proposal : callable
        ``(integrator, kinetic_energy, step_size, num_integration_steps,
        divergence_threshold) -> generate``, ``generate(rng_key, IntegratorState) ->
        (IntegratorState, HMCInfo, None)``.

    Returns
    -------
    callable
        ``kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix,
        num_integration_steps) -> (HMCState, HMCInfo)``.
    """
    return import_blackjax().hmc.build_kernel(build_proposal=build_proposal)


def nuts_kernel() -> Callable:
    """``blackjax.nuts.build_kernel()``: ``kernel(rng_key, state, logdensity_fn, step_size,
    inverse_mass_matrix, max_num_doublings) -> (HMCState, NUTSInfo)``."""
    return import_blackjax().nuts.build_kernel()


# ---------------------------------------------------------------------------------------
# Internals: the pieces of BlackJAX's HMC proposal.
# ---------------------------------------------------------------------------------------


def integrator_state(
    *, position: Any, momentum: Any, logdensity: jax.Array, logdensity_grad: Any
) -> IntegratorState:
    """BlackJAX's IntegratorState, built by keyword (a reordering of its fields fails)."""
    return blackjax_internals().IntegratorState(
        position=position, momentum=momentum, logdensity=logdensity, logdensity_grad=logdensity_grad
    )


def euclidean_metric(inverse_mass_matrix: jax.Array) -> Any:
    """BlackJAX's metric of ``inverse_mass_matrix`` (P,) or (P, P): ``sample_momentum(key,
    position)``, ``kinetic_energy(momentum)``, ``check_turning(momentum_left,
    momentum_right, momentum_sum) -> bool``."""
    return blackjax_internals().default_metric(inverse_mass_matrix)


def hmc_energy(kinetic_energy: Callable) -> Callable:
    """``energy(state: IntegratorState) -> -logdensity + kinetic_energy(momentum)``."""
    return blackjax_internals().hmc_energy(kinetic_energy)


def flip_momentum(state: IntegratorState) -> IntegratorState:
    """``state`` with its momentum negated (makes the proposal reversible)."""
    return blackjax_internals().flip_momentum(state)


def safe_energy_diff(initial_energy: jax.Array, new_energy: jax.Array) -> jax.Array:
    """``initial_energy - new_energy``, with NaN as -inf (a NaN end point is rejected)."""
    return blackjax_internals().safe_energy_diff(initial_energy, new_energy)


def static_binomial_sampling(
    rng_key: jax.Array, log_p_accept: jax.Array, state: Any, proposal: Any
) -> tuple[Any, tuple[jax.Array, jax.Array, None]]:
    """The Metropolis test: ``(proposal or state, (is_accepted, acceptance_rate, None))``."""
    return blackjax_internals().static_binomial_sampling(rng_key, log_p_accept, state, proposal)


def hmc_info(
    *,
    momentum: Any,
    acceptance_rate: jax.Array,
    is_accepted: jax.Array,
    is_divergent: jax.Array,
    energy: jax.Array,
    proposal: IntegratorState,
    num_integration_steps: jax.Array | int,
) -> Any:
    """BlackJAX's HMCInfo, built by keyword (a reordering of its fields fails loudly).

    Parameters
    ----------
    momentum : pytree like the position
        The momentum drawn at the start of the transition.
    acceptance_rate, is_accepted, is_divergent, energy : arrays, shape ()
        ``energy``: the total energy of the proposal.
    proposal : IntegratorState
        The end point of the trajectory (momentum flipped).
    num_integration_steps : int or int array, shape ()
    """
    return blackjax_internals().HMCInfo(
        momentum=momentum,
        acceptance_rate=acceptance_rate,
        is_accepted=is_accepted,
        is_divergent=is_divergent,
        energy=energy,
        proposal=proposal,
        num_integration_steps=num_integration_steps,
    )


# ---------------------------------------------------------------------------------------
# Internals: Stan's warm-up pieces.
# ---------------------------------------------------------------------------------------


def window_schedule(num_warmup: int) -> np.ndarray:
    """Stan's warm-up schedule: int array, shape (num_warmup, 2), each row (stage,
    is_window_end); stage 0 adapts the step size only, 1 also the mass matrix."""
    return np.asarray(blackjax_internals().build_schedule(num_warmup))


def dual_averaging_adaptation(target_acceptance_rate: float) -> tuple[Callable, Callable, Callable]:
    """Dual averaging of the log step size: ``(init, update, final)``.

    ``init(step_size) -> state``, ``update(state, acceptance_rate) -> state``,
    ``final(state) -> step_size``; the state has ``log_step_size`` (the next step's) and
    ``log_step_size_avg`` (the average, for the kept draws).
    """
    return blackjax_internals().dual_averaging_adaptation(target_acceptance_rate)


def mass_matrix_adaptation(dense: bool = False) -> tuple[Callable, Callable, Callable]:
    """Welford estimate of the inverse mass matrix: ``(init, update, final)``.

    ``init(num_dimensions, inverse_mass_matrix) -> state``, ``update(state, position)
    -> state``, ``final(state) -> state``; the state has ``inverse_mass_matrix``, (P,) (its
    diagonal) or with ``dense`` (P, P), regularised towards the identity as Stan does.
    """
    return blackjax_internals().mass_matrix_adaptation(is_diagonal_matrix=not dense)
