"""Warm-up rules that tune the step size (and mass matrix) while the chain burns in.

Three rules share one interface, ``Adaptation(init, update, current, final)``:

- ``tutorial_step_size_rule``: TFP's SimpleStepSizeAdaptation as the tutorial runs it:
  after each of the first ``num_adaptation_steps`` steps multiply the step size by
  (1 + rate) when the acceptance probability exceeds the target, else divide by it.
  Identity mass matrix.
- ``window_adaptation``: Stan's schedule (fast, slow doubling windows, fast) with
  dual-averaging step size and a diagonal or dense mass matrix. The pieces are BlackJAX's
  (dual averaging, Welford mass matrix, window schedule); the loop is ours because
  ``blackjax.window_adaptation`` runs the whole warm-up in one compiled call, while we
  run it in chunks to show progress. They come from :mod:`bgmm.samplers.blackjax_adapter`
  and are built when the warm-up is traced, so that a run that loads its compiled
  programs does not import BlackJAX (see :mod:`bgmm.samplers.hmc`).
- ``step_size_adaptation``: dual averaging of the step size alone, the mass matrix and
  path length kept as given: the short warm-up on all rows after a warm-up on a subsample
  has tuned them (docs/design.md 18).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.samplers.blackjax_adapter import (
    dual_averaging_adaptation,
    mass_matrix_adaptation,
    window_schedule,
)
from bgmm.samplers.hmc import Tuning

__all__ = [
    "MAX_FITTED_STEPS",
    "Adaptation",
    "step_size_adaptation",
    "tutorial_step_size_rule",
    "window_adaptation",
]

# The longest fitted path (also a U-turn probe's longest), NUTS's default tree depth 10.
MAX_FITTED_STEPS = 1024


class Adaptation(NamedTuple):
    """A warm-up rule.

    Attributes
    ----------
    init : initial Tuning -> state
        The inverse mass matrix's shape and dtype give P and the dtype.
    update : (state, step_index, position, acceptance_rate, path_time) -> state
        After warm-up step ``step_index`` (int array, shape ()), with the chain's new
        position (pytree), that step's acceptance rate (shape ()) and, at the steps
        ``probes`` names, the kernel's U-turn time from the new position (else 0).
    current : state -> Tuning used for the next warm-up step
    final : state -> Tuning used for the kept draws
    probes : step_index -> bool array, or None
        The steps after which the kernel measures its U-turn time (None: none).
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    current: Callable[[Any], Tuning]
    final: Callable[[Any], Tuning]
    probes: Callable[[jax.Array], jax.Array] | None = None


def _with_dtypes_of(tree, reference):
    """``tree`` with each leaf cast to the dtype of the matching leaf of ``reference``."""
    return jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), tree, reference)


class StepSizeRuleState(NamedTuple):
    """State of :func:`tutorial_step_size_rule`.

    Attributes
    ----------
    step_size : array, shape ()
    inverse_mass_matrix : array, shape (P,)
        Ones throughout.
    num_steps : int32 array, shape ()
        The path length, fixed.
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    num_steps: jax.Array


def tutorial_step_size_rule(
    num_adaptation_steps: int, target_accept_prob: float, adaptation_rate: float
) -> Adaptation:
    """TFP's SimpleStepSizeAdaptation with its defaults, adapting from the first step.

    Parameters
    ----------
    num_adaptation_steps : int
        Steps after which the step size changes (the first ones); later steps keep it.
    target_accept_prob : float
        Above it the step size grows, else it shrinks.
    adaptation_rate : float
        The factor is 1 + adaptation_rate.

    Returns
    -------
    Adaptation
        Its state is a :class:`StepSizeRuleState`; ``current`` and ``final`` agree.
    """

    def init(initial_tuning: Tuning):
        imm = initial_tuning.inverse_mass_matrix
        return StepSizeRuleState(
            jnp.asarray(initial_tuning.step_size, imm.dtype),
            jnp.ones(imm.shape[-1], imm.dtype),
            jnp.asarray(initial_tuning.num_steps, jnp.int32),
        )

    def update(state, step_index, position, acceptance_rate, path_time):
        del position, path_time
        factor = jnp.where(
            acceptance_rate > target_accept_prob,
            1.0 + adaptation_rate,
            1.0 / (1.0 + adaptation_rate),
        )
        is_adapting = step_index < num_adaptation_steps
        new_step = jnp.where(is_adapting, state.step_size * factor, state.step_size)
        return state._replace(step_size=new_step.astype(state.step_size.dtype))

    def current(state):
        return Tuning(state.step_size, state.inverse_mass_matrix, state.num_steps)

    return Adaptation(init, update, current, current)


class WindowAdaptationState(NamedTuple):
    """State of :func:`window_adaptation`.

    Attributes
    ----------
    step_size_state : BlackJAX's dual averaging state
    mass_matrix_state : BlackJAX's Welford mass matrix state
    step_size : array, shape ()
        For the next warm-up step.
    inverse_mass_matrix : array, shape (P,), or (P, P) when dense
        Estimated in the last finished slow window (the identity before the first ends).
    num_steps : int32 array, shape ()
        The path length of the warm-up's transitions (the initial tuning's).
    path_time_sum, num_probes : arrays, shape ()
        The sum of the U-turn times measured so far and their number.
    """

    step_size_state: Any
    mass_matrix_state: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    num_steps: jax.Array
    path_time_sum: jax.Array
    num_probes: jax.Array


class _WindowPieces(NamedTuple):
    """BlackJAX's warm-up pieces for one warm-up length and target.

    Attributes
    ----------
    step_size : (init, update, final) of dual averaging
    mass_matrix : (init, update, final) of the Welford mass matrix, diagonal or dense
    schedule : int array, shape (max(num_warmup, 1), 2)
        Each warm-up step's (stage, is_window_end).
    """

    step_size: tuple[Callable, Callable, Callable]
    mass_matrix: tuple[Callable, Callable, Callable]
    schedule: np.ndarray


@functools.cache
def _window_pieces(num_warmup: int, target_acceptance_rate: float, dense: bool) -> _WindowPieces:
    # Called while tracing, and cached: its values must be concrete, not the trace's.
    with jax.ensure_compile_time_eval():
        # A one-row schedule keeps the update traceable when there is no warm-up at all.
        schedule = window_schedule(num_warmup) if num_warmup > 0 else np.zeros((1, 2), np.int32)
        return _WindowPieces(
            dual_averaging_adaptation(target_acceptance_rate),
            mass_matrix_adaptation(dense),
            schedule,
        )


def window_adaptation(
    num_warmup: int,
    target_acceptance_rate: float,
    dense: bool = False,
    fit_path_length: bool = False,
) -> Adaptation:
    """Stan-style windowed adaptation of step size and mass matrix, and of HMC's path
    length when asked.

    Parameters
    ----------
    num_warmup : int
        Warm-up steps, all of which adapt (Stan's windows are laid out over them).
    target_acceptance_rate : float
        What dual averaging aims the acceptance rate at.
    dense : bool
        Estimate the whole inverse mass matrix (P, P), the posterior covariance in the
        unconstrained space, rather than its diagonal (P,).
    fit_path_length : bool
        In the last window (the metric fixed, the step size settling), measure the
        kernel's U-turn time after every step; the kept draws then take the mean time
        over the final step size as their mean number of leapfrog steps
        (:func:`bgmm.samplers.hmc.uturn_time`; docs/design.md 17).

    Returns
    -------
    Adaptation
        Its state is a :class:`WindowAdaptationState`; ``final`` takes dual averaging's
        averaged step size, as Stan does for the kept draws.
    """

    def pieces() -> _WindowPieces:
        return _window_pieces(num_warmup, target_acceptance_rate, dense)

    def init(initial_tuning: Tuning):
        (da_init, _, _), (mm_init, _, _), _ = pieces()
        imm = initial_tuning.inverse_mass_matrix
        num_dimensions, dtype = imm.shape[-1], imm.dtype
        eye = jnp.eye(num_dimensions, dtype=dtype)
        mm_state = mm_init(num_dimensions, eye if dense else jnp.diagonal(eye))
        step = jnp.asarray(initial_tuning.step_size, dtype)
        zero = jnp.zeros((), dtype)
        return WindowAdaptationState(
            da_init(step),
            mm_state,
            step,
            mm_state.inverse_mass_matrix,
            jnp.asarray(initial_tuning.num_steps, jnp.int32),
            zero,
            zero,
        )

    def fast_update(position, acceptance_rate, state):
        del position
        (_, da_update, _), _, _ = pieces()
        da_state = da_update(state.step_size_state, acceptance_rate)
        step = jnp.exp(da_state.log_step_size).astype(state.step_size.dtype)
        return state._replace(step_size_state=da_state, step_size=step)

    def slow_update(position, acceptance_rate, state):
        (_, mm_update, _) = pieces().mass_matrix
        state = fast_update(position, acceptance_rate, state)
        return state._replace(mass_matrix_state=mm_update(state.mass_matrix_state, position))

    def end_of_slow_window(state):
        (da_init, _, da_final), (_, _, mm_final), _ = pieces()
        mm_state = mm_final(state.mass_matrix_state)
        da_state = da_init(da_final(state.step_size_state))
        step = jnp.exp(da_state.log_step_size).astype(state.step_size.dtype)
        imm = mm_state.inverse_mass_matrix.astype(state.inverse_mass_matrix.dtype)
        return state._replace(
            step_size_state=da_state,
            mass_matrix_state=mm_state,
            step_size=step,
            inverse_mass_matrix=imm,
        )

    def probes(step_index):
        return (step_index >= _last_window_start(pieces().schedule)) & (step_index < num_warmup)

    def update(state, step_index, position, acceptance_rate, path_time):
        if fit_path_length:
            state = _with_probe(state, probes(step_index), path_time)
        stage, is_window_end = jnp.asarray(pieces().schedule)[step_index]

        # BlackJAX's pieces promote float32 states to float64 in 64-bit mode; keep the dtypes
        # fixed so that float32 runs stay float32 and the branches of switch/cond agree.
        def keep_dtypes(fn):
            return lambda *args: _with_dtypes_of(fn(*args), state)

        state = jax.lax.switch(
            stage,
            (keep_dtypes(fast_update), keep_dtypes(slow_update)),
            position,
            acceptance_rate,
            state,
        )
        return jax.lax.cond(is_window_end, keep_dtypes(end_of_slow_window), lambda s: s, state)

    def current(state):
        return Tuning(state.step_size, state.inverse_mass_matrix, state.num_steps)

    def final(state):
        step = jnp.exp(state.step_size_state.log_step_size_avg).astype(state.step_size.dtype)
        num_steps = _fitted_num_steps(state, step) if fit_path_length else state.num_steps
        return Tuning(step, state.inverse_mass_matrix, num_steps)

    return Adaptation(init, update, current, final, probes if fit_path_length else None)


def _with_probe(
    state: WindowAdaptationState, probed: jax.Array, path_time: jax.Array
) -> WindowAdaptationState:
    """``state`` with a step's U-turn time added when the step probed."""
    probed = probed.astype(state.num_probes.dtype)
    return state._replace(
        path_time_sum=state.path_time_sum + probed * path_time,
        num_probes=state.num_probes + probed,
    )


def _fitted_num_steps(state: WindowAdaptationState, step_size: jax.Array) -> jax.Array:
    """The mean U-turn time over ``step_size``, in whole steps from 1 to MAX_FITTED_STEPS;
    the warm-up's path length when no step probed."""
    mean_time = state.path_time_sum / jnp.maximum(state.num_probes, 1)
    fitted = jnp.clip(jnp.round(mean_time / step_size), 1, MAX_FITTED_STEPS).astype(jnp.int32)
    return jnp.where(state.num_probes > 0, fitted, state.num_steps)


def _last_window_start(schedule: np.ndarray) -> int:
    """The first step after the last slow window (0 when there is none): the final fast
    window, where the metric is fixed and only the step size still moves."""
    ends = np.flatnonzero(schedule[:, 1])
    return int(ends[-1]) + 1 if len(ends) else 0


class StepSizeAdaptationState(NamedTuple):
    """State of :func:`step_size_adaptation`.

    Attributes
    ----------
    step_size_state : BlackJAX's dual averaging state
    step_size : array, shape ()
        For the next warm-up step.
    inverse_mass_matrix : array, shape (P,) or (P, P)
        The initial tuning's, kept.
    num_steps : int32 array, shape ()
        The initial tuning's path length, kept.
    """

    step_size_state: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    num_steps: jax.Array


def step_size_adaptation(target_acceptance_rate: float) -> Adaptation:
    """Dual averaging of the step size from the initial tuning's, every warm-up step; the
    inverse mass matrix and path length stay the initial tuning's.

    Parameters
    ----------
    target_acceptance_rate : float
        What dual averaging aims the acceptance rate at.

    Returns
    -------
    Adaptation
        Its state is a :class:`StepSizeAdaptationState`; ``final`` takes dual averaging's
        averaged step size, as :func:`window_adaptation` does.
    """

    def pieces():
        # Built when traced, as the window adaptation's are.
        return dual_averaging_adaptation(target_acceptance_rate)

    def init(initial_tuning: Tuning):
        da_init, _, _ = pieces()
        imm = initial_tuning.inverse_mass_matrix
        step = jnp.asarray(initial_tuning.step_size, imm.dtype)
        # Float leaves in the step size's dtype, so that float32 runs stay float32.
        da_state = jax.tree.map(
            lambda a: jnp.asarray(a, imm.dtype if isinstance(a, float) else None), da_init(step)
        )
        return StepSizeAdaptationState(
            da_state, step, imm, jnp.asarray(initial_tuning.num_steps, jnp.int32)
        )

    def update(state, step_index, position, acceptance_rate, path_time):
        del step_index, position, path_time
        _, da_update, _ = pieces()
        da_state = _with_dtypes_of(
            da_update(state.step_size_state, acceptance_rate), state.step_size_state
        )
        step = jnp.exp(da_state.log_step_size).astype(state.step_size.dtype)
        return state._replace(step_size_state=da_state, step_size=step)

    def current(state):
        return Tuning(state.step_size, state.inverse_mass_matrix, state.num_steps)

    def final(state):
        step = jnp.exp(state.step_size_state.log_step_size_avg).astype(state.step_size.dtype)
        return Tuning(step, state.inverse_mass_matrix, state.num_steps)

    return Adaptation(init, update, current, final)
