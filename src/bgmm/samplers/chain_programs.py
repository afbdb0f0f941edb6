"""The programs a run compiles, as pure functions of one chain: start, run a chunk, tune.

:func:`build_init_program`, :func:`build_chunk_program` and
:func:`build_final_tuning_program` build them from a :class:`ChainSpec`; the runner
(:mod:`bgmm.samplers.runner`) batches them over a group of chains
(:class:`~bgmm.samplers.chain_layout.ChainLayout`), compiles them and calls them from its
host loop.

One chunk program serves warm-up and sampling: compiling a second one would double the
compile time, which dominates short runs. Each step knows from its index whether it warms
up, and the adaptation state freezes after warm-up.

Between calls a chain's carry (kernel state, adaptation state) is a flat tuple of arrays:
a stored program keeps the tree structure of its arguments and results, and the kernel
state's BlackJAX types would then have to be imported to load it, which a warm run avoids.
The structure is rebuilt while tracing, from shapes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.samplers.adaptation import Adaptation
from bgmm.samplers.hmc import Tuning

__all__ = [
    "ChainCarry",
    "ChainSpec",
    "Kernel",
    "build_chunk_program",
    "build_final_tuning_program",
    "build_init_program",
    "one_chain_spec",
]

# Folded into a step's key for its U-turn probe, so that the step's own randomness is the
# same whether or not the step probes.
PROBE_KEY = 0x5554


class Kernel(NamedTuple):
    """A transition kernel as the runner sees it.

    Attributes
    ----------
    init : position -> state
    step : (rng_key, state, tuning) -> (state, info)
    acceptance_rate : info -> array, shape (), fed to the adaptation
    position : state -> position pytree
    record : (state, info, tuning) -> dict of arrays kept for every draw
    probe : (rng_key, state, tuning) -> array, shape (), or None
        The integration time to the posterior's U-turn from ``state``
        (:func:`bgmm.samplers.hmc.uturn_time`), for an adaptation that fits the path
        length; None: the kernel has no path length to fit.
    """

    init: Callable[[Any], Any]
    step: Callable[[jax.Array, Any, Any], tuple[Any, Any]]
    acceptance_rate: Callable[[Any], jax.Array]
    position: Callable[[Any], Any]
    record: Callable[[Any, Any, Any], dict[str, jax.Array]]
    probe: Callable[[jax.Array, Any, Any], jax.Array] | None = None


class ChainSpec(NamedTuple):
    """Everything the programs of one run close over.

    Attributes
    ----------
    make_kernel : data -> Kernel
    adaptation : Adaptation or None
        None keeps each chain's initial tuning throughout.
    tuning_spec : Tuning of jax.ShapeDtypeStruct
        Shapes and dtypes of one chain's initial tuning (step size (), inverse mass matrix
        (P,) or (P, P), path length ()); the values are an argument of the init program, so
        that each chain can start from its own (a warm-up on a subsample hands on its
        tuning, docs/design.md 18).
    num_warmup : int
    num_steps : int
        Warm-up and kept steps of each chain.
    chunk_size : int
        Steps per call of the chunk program; the last chunk may run past ``num_steps``.
    position_spec : pytree of jax.ShapeDtypeStruct
        One chain's position.
    """

    make_kernel: Callable[[Any], Kernel]
    adaptation: Adaptation | None
    tuning_spec: Tuning
    num_warmup: int
    num_steps: int
    chunk_size: int
    position_spec: Any


class ChainCarry(NamedTuple):
    """What one chain carries from step to step.

    Attributes
    ----------
    kernel_state : the kernel's state (pytree)
    adaptation_state : the adaptation's state, or the fixed Tuning without one
    """

    kernel_state: Any
    adaptation_state: Any


def one_chain_spec(tree: Any) -> Any:
    """Shapes and dtypes of one chain's part of ``tree`` (every leaf with leading axis:
    chains), such as the positions or the initial tunings."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], a.dtype), tree)


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


def _initial_adaptation_state(spec: ChainSpec, tuning: Tuning) -> Any:
    if spec.adaptation is None:
        return tuning
    return spec.adaptation.init(tuning)


def _initial_carry(spec: ChainSpec, position: Any, tuning: Tuning, data: Any) -> ChainCarry:
    kernel_state = spec.make_kernel(data).init(position)
    return ChainCarry(kernel_state, _initial_adaptation_state(spec, tuning))


def _carry_structure(spec: ChainSpec, data: Any) -> Any:
    """The tree structure of a ChainCarry, from shapes alone."""
    data_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), data)
    initial = jax.eval_shape(
        lambda p, t, d: _initial_carry(spec, p, t, d),
        spec.position_spec,
        spec.tuning_spec,
        data_spec,
    )
    return jax.tree.structure(initial)


def _tuning_at(adaptation: Adaptation | None, adaptation_state: Any, is_warmup: Any) -> Tuning:
    """The tuning of a step: the adaptation's current one in warm-up, its final one after."""
    if adaptation is None:
        return adaptation_state
    return jax.tree.map(
        lambda a, b: jnp.where(is_warmup, a, b),
        adaptation.current(adaptation_state),
        adaptation.final(adaptation_state),
    )


def _transition(
    spec: ChainSpec, kernel: Kernel, chain_key: jax.Array, carry: ChainCarry, index: jax.Array
) -> tuple[ChainCarry, dict[str, jax.Array]]:
    """Step ``index`` of one chain, with its key ``fold_in(chain_key, index)`` (so that the
    draws do not depend on the chunk size); returns the new carry and the step's record."""
    is_warmup = index < spec.num_warmup
    tuning = _tuning_at(spec.adaptation, carry.adaptation_state, is_warmup)
    step_key = jax.random.fold_in(chain_key, index)
    new_kernel_state, info = kernel.step(step_key, carry.kernel_state, tuning)
    adaptation_state = carry.adaptation_state
    if spec.adaptation is not None:
        path_time = _probe(spec.adaptation, kernel, step_key, new_kernel_state, tuning, index)
        adapted = spec.adaptation.update(
            adaptation_state,
            index,
            kernel.position(new_kernel_state),
            kernel.acceptance_rate(info),
            path_time,
        )
        adaptation_state = _select(is_warmup, adapted, adaptation_state)
    # Steps past the last (the padded tail of the last chunk) leave the chain where it is.
    new_carry = _select(
        index < spec.num_steps, ChainCarry(new_kernel_state, adaptation_state), carry
    )
    return new_carry, kernel.record(new_kernel_state, info, tuning)


def _probe(
    adaptation: Adaptation, kernel: Kernel, step_key: jax.Array, state: Any, tuning: Tuning, index
) -> jax.Array:
    """The kernel's U-turn time from ``state`` at the steps where the adaptation asks for
    one, else 0. The step index is the same for every chain, so under vmap this stays a
    branch: the other steps pay nothing."""
    zero = jnp.zeros((), tuning.step_size.dtype)
    if kernel.probe is None or adaptation.probes is None:
        return zero
    probe_key = jax.random.fold_in(step_key, PROBE_KEY)  # the step's own key is untouched
    return jax.lax.cond(
        adaptation.probes(index),
        lambda: kernel.probe(probe_key, state, tuning).astype(zero.dtype),
        lambda: zero,
    )


def build_init_program(spec: ChainSpec) -> Callable:
    """The program that starts one chain.

    Returns
    -------
    callable
        ``init(position, tuning, data) -> carry``: ``position`` like
        ``spec.position_spec``, ``tuning`` like ``spec.tuning_spec``, ``data`` what
        ``spec.make_kernel`` reads; ``carry`` the leaves of the chain's
        :class:`ChainCarry` at its start, a tuple of arrays.
    """

    def init(position, tuning, data):
        return tuple(jax.tree.leaves(_initial_carry(spec, position, tuning, data)))

    return init


def build_chunk_program(spec: ChainSpec) -> Callable:
    """The program that runs ``spec.chunk_size`` steps of one chain.

    Returns
    -------
    callable
        ``run_chunk(carry, chain_key, start, data) -> (carry, records)``. ``carry``: the
        flat carry of :func:`build_init_program` or of the previous chunk; ``chain_key``: a
        PRNG key, shape (); ``start``: int32 array, shape (), the index of the chunk's
        first step (warm-up and kept steps counted together). ``records``: the kernel's
        record of every step, each array of shape (chunk_size, ...); rows past
        ``spec.num_steps`` repeat the last step, for the caller to drop.
    """

    def run_chunk(carry, chain_key, start, data):
        kernel = spec.make_kernel(data)

        def step(carry, index):
            return _transition(spec, kernel, chain_key, carry, index)

        carry = _carry_structure(spec, data).unflatten(carry)
        carry, records = jax.lax.scan(step, carry, start + jnp.arange(spec.chunk_size))
        return tuple(jax.tree.leaves(carry)), records

    return run_chunk


def build_final_tuning_program(spec: ChainSpec) -> Callable:
    """The program that reads the tuning of one chain's kept draws.

    Returns
    -------
    callable
        ``final_tuning(carry) -> Tuning``, step size shape (), inverse mass matrix (P,);
        it reads only the adaptation state, the last leaves of the flat carry.
    """

    def final_tuning(carry):
        initial = jax.eval_shape(lambda t: _initial_adaptation_state(spec, t), spec.tuning_spec)
        structure = jax.tree.structure(initial)
        adaptation_state = structure.unflatten(carry[len(carry) - structure.num_leaves :])
        return _tuning_at(spec.adaptation, adaptation_state, False)

    return final_tuning
