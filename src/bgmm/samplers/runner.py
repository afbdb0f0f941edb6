"""Runs several chains of a kernel in compiled chunks: warm-up, then kept draws.

Chunks keep memory flat and let a progress bar move on stderr. The key of step ``t`` of
chain ``c`` is ``fold_in(chain_key[c], t)``, so draws do not depend on the chunk size. They
do depend on the layout: vectorised chains and chains run one after another are compiled
into different programs whose floating-point rounding differs, and chains drift apart. The
same seed and layout on the same machine and versions give bit-identical draws
(docs/design.md, section 9).

The pieces, one concept each:

- :mod:`bgmm.samplers.chain_programs`: the programs of one chain (start, run a chunk,
  read the final tuning), pure functions;
- :mod:`bgmm.samplers.chain_layout`: which chains run together and how the programs are
  batched over them (vmap, shard_map);
- :mod:`bgmm.samplers.runner_state`: the host's copy of a run between chunks;
- this module: compiling the programs (through the program store of
  :mod:`bgmm.plumbing.programs`) and the host loop that calls them.

Between chunks the host holds everything the run depends on (:class:`RunnerState`): a
callback can save it, and a later run started from it (``resume_from``) calls the same
compiled programs on the same arrays, so its draws are bit-identical to a run that was
never stopped. The runner itself writes no files (see :mod:`bgmm.checkpoint`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.plumbing.memory import release_free_heap
from bgmm.plumbing.programs import compile_program
from bgmm.plumbing.progress import progress_bar
from bgmm.samplers.adaptation import Adaptation
from bgmm.samplers.chain_layout import ChainLayout
from bgmm.samplers.chain_programs import (
    ChainSpec,
    Kernel,
    build_chunk_program,
    build_final_tuning_program,
    build_init_program,
    one_chain_spec,
)
from bgmm.samplers.hmc import Tuning
from bgmm.samplers.runner_state import (
    FinishedChains,
    GroupProgress,
    RunnerState,
    RunPlan,
    StopRequested,
    carry_from_host,
    carry_to_host,
    check_resumable,
)

__all__ = [
    "CHAIN_METHODS",
    "ChainMethod",
    "Kernel",
    "LazyData",
    "RunOutput",
    "RunnerState",
    "StopRequested",
    "run_chains",
]

ChainMethod = Literal["sequential", "vectorized", "parallel"]
CHAIN_METHODS: tuple[str, ...] = ("sequential", "vectorized", "parallel")


class LazyData(NamedTuple):
    """Data that the runner builds only after compiling its programs.

    Compiling needs only shapes. Building large data (the features) afterwards keeps them
    out of memory while the compiler works, and the compiler's freed memory is returned
    before they arrive: the peak of a run is the larger of the two, not their sum.

    Attributes
    ----------
    shapes : pytree of jax.ShapeDtypeStruct
    load : () -> pytree of arrays with exactly those shapes and dtypes
    """

    shapes: Any
    load: Callable[[], Any]


class RunOutput(NamedTuple):
    """What :func:`run_chains` returns.

    Attributes
    ----------
    draws : dict of arrays, each shape (num_chains, num_draws, ...)
    tuning : Tuning with leading axis num_chains
    compile_seconds : float
    sampling_seconds : float
    warmup_rows : int or None
        The rows of the subsample most of the warm-up ran on; None: all rows. Set by
        :func:`bgmm.inference.sample_posterior` (docs/design.md 18).
    converged : bool or None
        Whether ``stop_when`` ended the run before num_draws (then the draws are fewer);
        None: the run had no ``stop_when``.
    """

    draws: dict[str, np.ndarray]
    tuning: Tuning
    compile_seconds: float
    sampling_seconds: float
    warmup_rows: int | None = None
    converged: bool | None = None


class ChainPrograms(NamedTuple):
    """A run's compiled programs, batched over a group of G chains.

    Attributes
    ----------
    init : (positions, tunings, data) -> carry
        Positions and initial tunings with leading axis G; the carry a tuple of arrays,
        each (G, ...).
    run_chunk : (carry, chain_keys (G,), start (int32, shape ()), data) -> (carry, records)
        Records: dict of arrays, each (G, chunk_size, ...).
    final_tuning : carry -> Tuning, each leaf (G, ...)
    """

    init: Any
    run_chunk: Any
    final_tuning: Any


class HostLoop(NamedTuple):
    """What the host loop needs, fixed for a run.

    Attributes
    ----------
    plan : RunPlan
    programs : ChainPrograms
    data : pytree of arrays on the device(s)
    progress_bar : has ``update(num_steps)`` and ``close()``
    on_chunk : RunnerState -> bool, or None
    replicate : pytree -> pytree
        Places the programs' other arguments (:meth:`ChainLayout.replicate`).
    stop_when : dict of arrays -> bool, or None
    """

    plan: RunPlan
    programs: ChainPrograms
    data: Any
    progress_bar: Any
    on_chunk: Callable[[RunnerState], bool] | None
    replicate: Callable[[Any], Any]
    stop_when: Callable[[dict[str, np.ndarray]], bool] | None = None


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
    chain_tuning: bool = False,
    chain_method: ChainMethod = "sequential",
    progress: bool = False,
    max_chunks: int = 20,
    program_identity: Any = None,
    resume_from: RunnerState | None = None,
    on_chunk: Callable[[RunnerState], bool] | None = None,
    stop_when: Callable[[dict[str, np.ndarray]], bool] | None = None,
    data_mesh: jax.sharding.Mesh | None = None,
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
    data : pytree of arrays, or LazyData
        What the target density depends on. It is an argument of the compiled functions,
        never a constant baked into them: large constants slow compilation down and are
        copied into the executable.
    num_warmup, num_draws : int
    initial_tuning : Tuning
        Step size (shape ()), inverse mass matrix (shape (P,) or (P, P)) and path length
        (shape ()) that warm-up starts from, the same for every chain.
    chain_tuning : bool
        ``initial_tuning``'s leaves have a leading axis num_chains instead: each chain
        starts from its own (a warm-up on a subsample hands its tuning on).
    chain_method : "sequential", "vectorized" (vmap over chains) or "parallel" (one chain
        per device at a time; on a CPU, see :func:`bgmm.plumbing.devices.use_cpu_cores`)
    progress : bool
        Show a progress bar on stderr.
    max_chunks : int
        Each chain runs in at most this many compiled calls.
    program_identity : value accepted by :func:`bgmm.plumbing.programs.program_key`, or None
        Names everything ``make_kernel`` and ``adaptation`` close over, so that the
        compiled programs can be kept in the program store and loaded by a later run
        (:mod:`bgmm.plumbing.programs`). None: never stored.
    resume_from : RunnerState, optional
        Carry on from where a run with the same arguments stopped (``chain_method`` and
        ``max_chunks`` included); the draws are bit-identical to those of a run never
        stopped. ``initial_positions`` still gives the starts of the groups not begun.
    on_chunk : RunnerState -> bool, optional
        Called on the host after every compiled call, with copies of everything needed to
        resume; returning True stops the run (:class:`StopRequested`).
    stop_when : dict of numpy arrays -> bool, optional
        Called on the host after every compiled call that kept draws, with the draws kept
        so far, each (num_chains, S, ...); returning True ends the run there, with S draws
        per chain (a run to a target ESS). Called before ``on_chunk``, whose state then
        says so (``converged``). Every chain must run in one group (vectorized, or
        parallel, whose devices then each run their share of the chains vectorized), so
        that it sees all chains.

    Returns
    -------
    RunOutput

    Raises
    ------
    StopRequested
        When ``on_chunk`` returned True; its ``state`` is the one ``on_chunk`` saw.
    ValueError
        When ``resume_from`` does not fit this run.
    """
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"unknown chain_method {chain_method!r}; expected one of {CHAIN_METHODS}")
    num_chains = jax.tree.leaves(initial_positions)[0].shape[0]
    layout = ChainLayout(chain_method, num_chains, data_mesh, all_at_once=stop_when is not None)
    if stop_when is not None and len(layout.groups) > 1:
        raise ValueError(
            f"stop_when needs every chain in one group; {chain_method!r} runs "
            f"{len(layout.groups)} groups one after another"
        )
    if data_mesh is not None:
        program_identity = None
    plan = RunPlan(
        chain_method=chain_method,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_draws=num_draws,
        chunk_size=_chunk_size(num_warmup, num_draws, max_chunks, stop_when is not None),
        num_groups=len(layout.groups),
    )
    tunings = initial_tuning if chain_tuning else _for_every_chain(initial_tuning, num_chains)
    spec = _chain_spec(plan, make_kernel, adaptation, tunings, initial_positions)
    starts = (initial_positions, tunings)

    release_free_heap()  # what the start search freed
    compile_start = time.perf_counter()
    lazy = isinstance(data, LazyData)
    data_spec = layout.abstract(data.shapes) if lazy else layout.put(data)
    group_keys = layout.group_keys(jax.random.split(rng_key, num_chains))
    example_args = (
        layout.replicate(layout.take(starts, layout.groups[0])),
        layout.replicate(group_keys[0]),
        data_spec,
    )
    identity = _program_identity(program_identity, spec, chain_method)
    programs = _compile_chain_programs(spec, layout, example_args, identity)
    release_free_heap()  # the compiler's scratch memory, before the data and the sampler
    compile_seconds = time.perf_counter() - compile_start
    device_data = layout.put(data.load()) if lazy else data_spec

    if resume_from is None:
        finished = _no_finished_chains(programs, num_draws)
    else:
        finished = _chains_finished_before(resume_from, plan, layout, programs)
    bar = progress_bar(num_chains * plan.num_steps, progress)
    if resume_from is not None:
        bar.update(resume_from.steps_done)
    loop = HostLoop(plan, programs, device_data, bar, on_chunk, layout.replicate, stop_when)
    sampling_start = time.perf_counter()
    finished, converged = _sample_groups(loop, layout, starts, group_keys, finished, resume_from)
    bar.close()
    sampling_seconds = time.perf_counter() - sampling_start
    return RunOutput(
        finished.draws,
        finished.tuning,
        compile_seconds,
        sampling_seconds,
        converged=None if stop_when is None else converged,
    )


def _for_every_chain(tuning: Tuning, num_chains: int) -> Tuning:
    """``tuning`` repeated along a new leading axis of num_chains."""
    return jax.tree.map(lambda a: np.repeat(np.asarray(a)[None], num_chains, axis=0), tuning)


def _chunk_size(num_warmup: int, num_draws: int, max_chunks: int, checked: bool) -> int:
    """Steps per compiled call; ``checked``: at most 1/40 of the kept draws (at least 10
    steps), so that a run with ``stop_when`` stops soon after its draws are enough."""
    num_steps = num_warmup + num_draws
    size = max(1, math.ceil(num_steps / max(1, min(max_chunks, num_steps))))
    return min(size, max(10, math.ceil(num_draws / 40))) if checked else size


def _chain_spec(
    plan: RunPlan,
    make_kernel: Callable[[Any], Kernel],
    adaptation: Adaptation | None,
    tunings: Tuning,
    initial_positions: Any,
) -> ChainSpec:
    return ChainSpec(
        make_kernel=make_kernel,
        adaptation=adaptation,
        tuning_spec=one_chain_spec(tunings),
        num_warmup=plan.num_warmup,
        num_steps=plan.num_steps,
        chunk_size=plan.chunk_size,
        position_spec=one_chain_spec(initial_positions),
    )


# ---------------------------------------------------------------------------------------
# Compiling the programs.
# ---------------------------------------------------------------------------------------


def _program_identity(program_identity: Any, spec: ChainSpec, chain_method: str):
    """``role -> identity`` of the run's programs for the program store (None: not stored).

    ``program_identity`` names what ``make_kernel`` and the adaptation close over; the
    rest of what the programs close over is added here.
    """
    others = (
        spec.adaptation is None,
        spec.num_warmup,
        spec.num_steps,
        spec.chunk_size,
        tuple((leaf.shape, str(leaf.dtype)) for leaf in jax.tree.leaves(spec.tuning_spec)),
        chain_method,
    )

    def identity(role: str):
        return None if program_identity is None else (role, program_identity, others)

    return identity


def _compile_chain_programs(
    spec: ChainSpec,
    layout: ChainLayout,
    example_args: tuple[Any, jax.Array, Any],
    identity: Callable[[str], Any],
) -> ChainPrograms:
    """Compile the programs of :mod:`bgmm.samplers.chain_programs`, batched over a group.

    Parameters
    ----------
    spec : ChainSpec
    layout : ChainLayout
    example_args : ((positions, tunings), chain_keys, data)
        Of one group: positions, initial tunings and keys with leading axis G; the data as
        placed on the device(s), or their ShapeDtypeStructs.
    identity : role -> identity for the program store, or None

    Returns
    -------
    ChainPrograms
    """
    (positions, tunings), chain_keys, data = example_args

    def compile_batched(fn, in_axes, args, role):
        # compile_program looked up here, at call time: a benchmark wraps this module's name.
        return compile_program(
            layout.batch(fn, in_axes), args, identity=identity(role), devices=layout.devices
        )

    # The roles ("init", "steps", "final") are part of the stored programs' keys.
    init = compile_batched(
        build_init_program(spec), (0, 0, None), (positions, tunings, data), "init"
    )
    carry = init.out_info
    start = jnp.asarray(0, jnp.int32)
    run_chunk = compile_batched(
        build_chunk_program(spec), (0, 0, None, None), (carry, chain_keys, start, data), "steps"
    )
    final_tuning = compile_batched(build_final_tuning_program(spec), (0,), (carry,), "final")
    return ChainPrograms(init, run_chunk, final_tuning)


# ---------------------------------------------------------------------------------------
# The host loop: groups of chains, each in chunks.
# ---------------------------------------------------------------------------------------


def _no_finished_chains(programs: ChainPrograms, num_draws: int) -> FinishedChains:
    """Results of no chains, with the shapes and dtypes of the records and tuning, so that
    a state always has every record."""
    draws = {
        name: np.empty((0, num_draws, *info.shape[2:]), info.dtype)
        for name, info in programs.run_chunk.out_info[1].items()
    }
    tuning = jax.tree.map(
        lambda info: np.empty((0, *info.shape[1:]), info.dtype), programs.final_tuning.out_info
    )
    return FinishedChains(draws, tuning)


def _chains_finished_before(
    state: RunnerState, plan: RunPlan, layout: ChainLayout, programs: ChainPrograms
) -> FinishedChains:
    """The chains ``state`` had finished, once ``state`` is checked to be of this run
    (ValueError otherwise)."""
    record_info = programs.run_chunk.out_info[1]
    check_resumable(state, plan, layout.groups, programs.init.out_info, record_info)
    return FinishedChains(state.draws, state.tuning)


def _sample_groups(
    loop: HostLoop,
    layout: ChainLayout,
    starts: Any,
    group_keys: list[jax.Array],
    finished: FinishedChains,
    resume_from: RunnerState | None,
) -> FinishedChains:
    """Run every group not finished yet, in order, from the one ``resume_from`` stopped in.

    Parameters
    ----------
    loop : HostLoop
    layout : ChainLayout
    starts : (positions, tunings), every leaf with leading axis num_chains
    group_keys : list of PRNG key arrays, each shape (G,)
    finished : FinishedChains
        Of the groups before the first to run.
    resume_from : RunnerState or None

    Returns
    -------
    FinishedChains
        Of all chains.
    bool
        Whether ``loop.stop_when`` ended the run early (one group only).
    """
    first_group = 0 if resume_from is None else resume_from.group
    for index in range(first_group, loop.plan.num_groups):
        chains = layout.groups[index]
        num_real = min(len(chains), loop.plan.num_chains - int(chains[0]))  # the rest: padding
        if index == first_group and resume_from is not None:
            group = _resumed_group(resume_from, num_real)
        else:
            group = _new_group(loop, index, num_real, layout.take(starts, chains), finished)
        group = _run_group(loop, group, group_keys[index], finished)
        finished = _add_finished_group(finished, group, loop.programs.final_tuning)
    return finished, group.converged


def _new_group(
    loop: HostLoop, index: int, num_real: int, starts: Any, finished: FinishedChains
) -> GroupProgress:
    """Start the group ``index`` from ``starts``, its (positions, tunings) with leading axis
    G, ``num_real`` of them real."""
    positions, tunings = loop.replicate(starts)
    carry = loop.programs.init(positions, tunings, loop.data)
    no_draws = {
        name: np.empty((num_real, 0, *a.shape[2:]), a.dtype) for name, a in finished.draws.items()
    }
    return GroupProgress(index, num_real, carry, 0, (no_draws,))


def _resumed_group(state: RunnerState, num_real: int) -> GroupProgress:
    """The group in progress in ``state``, its carry back in JAX's types."""
    carry = carry_from_host(state.carry, state.carry_key_impls)
    draws = (state.group_draws,)
    return GroupProgress(state.group, num_real, carry, state.next_step, draws, state.converged)


def _run_group(
    loop: HostLoop, group: GroupProgress, chain_keys: jax.Array, finished: FinishedChains
) -> GroupProgress:
    """Run ``group``'s remaining chunks, or those until ``loop.stop_when`` finds the draws
    enough; after each, offer ``loop.on_chunk`` the state.

    Raises
    ------
    StopRequested
        When ``loop.on_chunk`` returned True.
    """
    plan = loop.plan
    chain_keys = loop.replicate(chain_keys)
    first = plan.num_steps if group.converged else group.next_step
    for start in range(first, plan.num_steps, plan.chunk_size):
        carry, records = loop.programs.run_chunk(
            loop.replicate(group.carry),
            chain_keys,
            loop.replicate(jnp.asarray(start, jnp.int32)),
            loop.data,
        )
        kept = _kept_draws(plan, records, start, group.num_real)
        if kept is None:
            jax.block_until_ready(carry)  # nothing to copy back waits for the chunk
        steps_run = min(plan.chunk_size, plan.num_steps - start)
        pieces = group.draw_pieces if kept is None else (*group.draw_pieces, kept)
        group = group._replace(carry=carry, next_step=start + steps_run, draw_pieces=pieces)
        loop.progress_bar.update(group.num_real * steps_run)
        if loop.stop_when is not None and kept is not None:
            group = group._replace(draw_pieces=(_join(group.draw_pieces, axis=1),))
            group = group._replace(converged=bool(loop.stop_when(group.draw_pieces[0])))
        if loop.on_chunk is not None:
            # Joined once per chunk, not once per state, and kept joined.
            group = group._replace(draw_pieces=(_join(group.draw_pieces, axis=1),))
            state = _runner_state(plan, group, finished)
            if loop.on_chunk(state):
                loop.progress_bar.close()
                raise StopRequested(state)
        if group.converged:
            break
    return group


def _kept_draws(
    plan: RunPlan, records: dict[str, jax.Array], start: int, num_real: int
) -> dict[str, np.ndarray] | None:
    """The draws of a chunk from step ``start`` that are kept: after warm-up, before the
    padded tail of the last chunk, of the real chains; None if there are none.

    Parameters
    ----------
    records : dict of arrays, each (G, chunk_size, ...)

    Returns
    -------
    dict of numpy arrays, each (num_real, S_kept, ...), or None
    """
    first = max(plan.num_warmup - start, 0)
    last = min(plan.chunk_size, plan.num_steps - start)
    if first >= last:
        return None
    # Sliced on the host: slicing the device arrays would compile a program per shape.
    return jax.tree.map(lambda a: np.asarray(a)[:num_real, first:last], records)


def _runner_state(plan: RunPlan, group: GroupProgress, finished: FinishedChains) -> RunnerState:
    """The host's copy of the run, its group's draws already joined into one piece."""
    (group_draws,) = group.draw_pieces
    carry, key_impls = carry_to_host(group.carry)
    return RunnerState(
        **plan._asdict(),
        group=group.index,
        next_step=group.next_step,
        carry=carry,
        carry_key_impls=key_impls,
        draws=finished.draws,
        tuning=finished.tuning,
        group_draws=group_draws,
        converged=group.converged,
    )


def _add_finished_group(
    finished: FinishedChains, group: GroupProgress, final_tuning: Callable
) -> FinishedChains:
    """``finished`` with the real chains of the completed ``group`` appended."""
    group_tuning = jax.tree.map(
        lambda a: np.asarray(a)[: group.num_real], final_tuning(group.carry)
    )
    # One array per record for all finished chains, which every later state shares.
    tuning = jax.tree.map(lambda *a: np.concatenate(a, axis=0), finished.tuning, group_tuning)
    group_draws = _join(group.draw_pieces, axis=1)
    if group.converged:  # the only group (run_chains), with fewer than num_draws draws
        return FinishedChains(group_draws, tuning)
    return FinishedChains(_join([finished.draws, group_draws], axis=0), tuning)


def _join(parts: list[dict[str, np.ndarray]], axis: int) -> dict[str, np.ndarray]:
    """Concatenate dicts of arrays name by name along ``axis`` (one part: itself, no copy)."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts], axis=axis) for name in parts[0]}
