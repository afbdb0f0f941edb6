"""Runs several chains of a kernel in compiled chunks: warm-up, then kept draws.

Chunks keep memory flat and let a progress bar move on stderr. The key of step ``t`` of
chain ``c`` is ``fold_in(chain_key[c], t)``, so draws do not depend on the chunk size or
on whether chains run vectorised or one after another.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.samplers.adaptation import Adaptation
from bgmm.samplers.hmc import Tuning

__all__ = ["ChainMethod", "Kernel", "RunOutput", "run_chains"]

ChainMethod = Literal["vectorized", "sequential"]
CHAIN_METHODS: tuple[str, ...] = ("vectorized", "sequential")


class Kernel(NamedTuple):
    """A transition kernel as the runner sees it.

    Attributes
    ----------
    init : position -> state
    step : (rng_key, state, tuning) -> (state, info)
    acceptance_rate : info -> scalar, fed to the adaptation
    position : state -> position pytree
    record : (state, info, tuning) -> dict of arrays kept for every draw
    """

    init: Callable[[Any], Any]
    step: Callable[[jax.Array, Any, Any], tuple[Any, Any]]
    acceptance_rate: Callable[[Any], jax.Array]
    position: Callable[[Any], Any]
    record: Callable[[Any, Any, Any], dict[str, jax.Array]]


class RunOutput(NamedTuple):
    """What :func:`run_chains` returns.

    Attributes
    ----------
    draws : dict of arrays, each shape (num_chains, num_draws, ...)
    tuning : Tuning with leading axis num_chains
    compile_seconds : float
    sampling_seconds : float
    """

    draws: dict[str, np.ndarray]
    tuning: Tuning
    compile_seconds: float
    sampling_seconds: float


def _select(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


def _chunk_size(num_steps: int, max_chunks: int) -> int:
    return max(1, math.ceil(num_steps / max(1, min(max_chunks, num_steps))))


def run_chains(
    rng_key: jax.Array,
    make_kernel: Callable[[Any], Kernel],
    adaptation: Adaptation | None,
    initial_positions: Any,
    *,
    data: Any = None,
    num_warmup: int,
    num_draws: int,
    initial_tuning: Tuning,
    chain_method: ChainMethod = "sequential",
    progress: bool = False,
    max_chunks: int = 20,
) -> RunOutput:
    """Warm up and sample ``num_chains`` chains.

    Parameters
    ----------
    rng_key : PRNG key
    make_kernel : data -> Kernel
        Builds the kernel inside the compiled functions, from ``data``.
    adaptation : Adaptation or None
        None keeps ``initial_tuning`` throughout (a sampler with nothing to tune).
    initial_positions : pytree, every leaf with leading axis num_chains
    data : pytree of arrays
        What the target density depends on. It is an argument of the compiled functions,
        never a constant baked into them: large constants slow compilation down and are
        copied into the executable.
    num_warmup, num_draws : int
    initial_tuning : Tuning
        Step size and inverse mass matrix (shape (P,)) that warm-up starts from.
    chain_method : "vectorized" (vmap over chains) or "sequential"
    progress : bool
        Show a progress bar on stderr.
    max_chunks : int
        Each chain runs in at most this many compiled calls.

    Returns
    -------
    RunOutput
    """
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"unknown chain_method {chain_method!r}; expected one of {CHAIN_METHODS}")
    num_chains = jax.tree.leaves(initial_positions)[0].shape[0]
    chain_keys = jax.random.split(rng_key, num_chains)
    dtype = initial_tuning.inverse_mass_matrix.dtype
    num_dimensions = initial_tuning.inverse_mass_matrix.shape[-1]
    num_steps = num_warmup + num_draws
    chunk = _chunk_size(num_steps, max_chunks)

    def init_chain(position, data):
        kernel = make_kernel(data)
        state = kernel.init(position)
        if adaptation is None:
            return state, initial_tuning
        return state, adaptation.init(initial_tuning.step_size, num_dimensions, dtype)

    def tuning_of(adapt_state, is_warmup):
        if adaptation is None:
            return adapt_state
        return jax.tree.map(
            lambda a, b: jnp.where(is_warmup, a, b),
            adaptation.current(adapt_state),
            adaptation.final(adapt_state),
        )

    # One compiled program serves warm-up and sampling (compiling two costs twice the
    # time, which dominates short runs): the adaptation state freezes after warm-up.
    def run_steps(carry, chain_key, start, data):
        kernel = make_kernel(data)

        def body(carry, index):
            state, adapt_state = carry
            is_warmup = index < num_warmup
            tuning = tuning_of(adapt_state, is_warmup)
            new_state, info = kernel.step(jax.random.fold_in(chain_key, index), state, tuning)
            if adaptation is not None:
                new_adapt_state = adaptation.update(
                    adapt_state, index, kernel.position(new_state), kernel.acceptance_rate(info)
                )
                adapt_state = _select(is_warmup, new_adapt_state, adapt_state)
            new_carry = _select(index < num_steps, (new_state, adapt_state), carry)
            return new_carry, kernel.record(new_state, info, tuning)

        return jax.lax.scan(body, carry, start + jnp.arange(chunk))

    vectorized = chain_method == "vectorized"
    batch = jax.vmap if vectorized else (lambda f, **_: f)
    compile_start = time.perf_counter()
    example_position = (
        initial_positions if vectorized else jax.tree.map(lambda a: a[0], initial_positions)
    )
    example_key = chain_keys if vectorized else chain_keys[0]
    init_fn = jax.jit(batch(init_chain, in_axes=(0, None))).lower(example_position, data).compile()
    example_carry = init_fn(example_position, data)
    start0 = jnp.asarray(0, jnp.int32)
    steps_fn = (
        jax.jit(batch(run_steps, in_axes=(0, 0, None, None)))
        .lower(example_carry, example_key, start0, data)
        .compile()
    )
    final_fn = jax.jit(batch(lambda a: tuning_of(a, False))).lower(example_carry[1]).compile()
    compile_seconds = time.perf_counter() - compile_start

    bar = _progress_bar(num_chains * num_steps, progress)
    sampling_start = time.perf_counter()
    groups = [slice(None)] if vectorized else list(range(num_chains))
    draws_per_group, tunings = [], []
    axis = 1 if vectorized else 0
    for group in groups:
        group_size = num_chains if vectorized else 1
        carry = init_fn(jax.tree.map(lambda a, g=group: a[g], initial_positions), data)
        pieces = []
        for start in range(0, num_steps, chunk):
            carry, records = steps_fn(carry, chain_keys[group], jnp.asarray(start, jnp.int32), data)
            # Keep only the draws after warm-up and before the padded tail of the last chunk.
            first = max(num_warmup - start, 0)
            last = min(chunk, num_steps - start)
            if first < last:
                pieces.append(
                    jax.tree.map(
                        lambda a, i=first, j=last: np.asarray(a[:, i:j] if vectorized else a[i:j]),
                        records,
                    )
                )
            else:
                jax.block_until_ready(carry)
            bar.update(group_size * (last))
        tuning = jax.tree.map(np.asarray, final_fn(carry[1]))
        group_draws = {
            name: np.concatenate([p[name] for p in pieces], axis=axis) for name in pieces[0]
        }
        if not vectorized:
            group_draws = {name: value[None] for name, value in group_draws.items()}
            tuning = jax.tree.map(lambda a: a[None], tuning)
        draws_per_group.append(group_draws)
        tunings.append(tuning)
    bar.close()
    sampling_seconds = time.perf_counter() - sampling_start
    draws = {
        name: np.concatenate([g[name] for g in draws_per_group], axis=0)
        for name in draws_per_group[0]
    }
    tuning = jax.tree.map(lambda *a: np.concatenate(a, axis=0), *tunings)
    return RunOutput(draws, tuning, compile_seconds, sampling_seconds)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm  # an edge dependency, only when a terminal asks for it

    return tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)
