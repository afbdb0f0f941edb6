"""Warm-up rules that tune the step size (and mass matrix) while the chain burns in.

Two rules share one interface, ``Adaptation(init, update, current, final)``:

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

__all__ = ["Adaptation", "tutorial_step_size_rule", "window_adaptation"]


class Adaptation(NamedTuple):
    """A warm-up rule.

    Attributes
    ----------
    init : (initial_step_size, num_dimensions, dtype) -> state
        ``initial_step_size`` a float or array of shape (), ``num_dimensions`` P.
    update : (state, step_index, position, acceptance_rate) -> state
        After warm-up step ``step_index`` (int array, shape ()), with the chain's new
        position (pytree) and that step's acceptance rate (shape ()).
    current : state -> Tuning used for the next warm-up step
    final : state -> Tuning used for the kept draws
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    current: Callable[[Any], Tuning]
    final: Callable[[Any], Tuning]


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
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array


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

    def init(initial_step_size, num_dimensions, dtype):
        return StepSizeRuleState(
            jnp.asarray(initial_step_size, dtype), jnp.ones(num_dimensions, dtype)
        )

    def update(state, step_index, position, acceptance_rate):
        del position
        factor = jnp.where(
            acceptance_rate > target_accept_prob,
            1.0 + adaptation_rate,
            1.0 / (1.0 + adaptation_rate),
        )
        is_adapting = step_index < num_adaptation_steps
        new_step = jnp.where(is_adapting, state.step_size * factor, state.step_size)
        return state._replace(step_size=new_step.astype(state.step_size.dtype))

    def current(state):
        return Tuning(state.step_size, state.inverse_mass_matrix)

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
    """

    step_size_state: Any
    mass_matrix_state: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


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
    num_warmup: int, target_acceptance_rate: float, dense: bool = False
) -> Adaptation:
    """Stan-style windowed adaptation of step size and mass matrix.

    Parameters
    ----------
    num_warmup : int
        Warm-up steps, all of which adapt (Stan's windows are laid out over them).
    target_acceptance_rate : float
        What dual averaging aims the acceptance rate at.
    dense : bool
        Estimate the whole inverse mass matrix (P, P), the posterior covariance in the
        unconstrained space, rather than its diagonal (P,).

    Returns
    -------
    Adaptation
        Its state is a :class:`WindowAdaptationState`; ``final`` takes dual averaging's
        averaged step size, as Stan does for the kept draws.
    """

    def pieces() -> _WindowPieces:
        return _window_pieces(num_warmup, target_acceptance_rate, dense)

    def init(initial_step_size, num_dimensions, dtype):
        (da_init, _, _), (mm_init, _, _), _ = pieces()
        eye = jnp.eye(num_dimensions, dtype=dtype)
        mm_state = mm_init(num_dimensions, eye if dense else jnp.diagonal(eye))
        step = jnp.asarray(initial_step_size, dtype)
        return WindowAdaptationState(da_init(step), mm_state, step, mm_state.inverse_mass_matrix)

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
        return WindowAdaptationState(da_state, mm_state, step, imm)

    def update(state, step_index, position, acceptance_rate):
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
        return Tuning(state.step_size, state.inverse_mass_matrix)

    def final(state):
        step = jnp.exp(state.step_size_state.log_step_size_avg).astype(state.step_size.dtype)
        return Tuning(step, state.inverse_mass_matrix)

    return Adaptation(init, update, current, final)
