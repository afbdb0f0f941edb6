"""Runs several chains of a kernel in compiled chunks: warm-up, then kept draws.

Chunks keep memory flat and let a progress bar move on stderr. The key of step ``t`` of
chain ``c`` is ``fold_in(chain_key[c], t)``, so draws do not depend on the chunk size. They
do depend on the layout: vectorised chains and chains run one after another are compiled
into different programs whose floating-point rounding differs, and chains drift apart. The
same seed and layout on the same machine and versions give bit-identical draws
(docs/design.md, section 9).

Between chunks the host holds everything the run depends on (:class:`RunnerState`): a
callback can save it, and a later run started from it (``resume_from``) calls the same
compiled programs on the same arrays, so its draws are bit-identical to a run that was
never stopped. The runner itself writes no files (see :mod:`bgmm.checkpoint`).
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bgmm.memory import release_free_heap
from bgmm.samplers.adaptation import Adaptation
from bgmm.samplers.hmc import Tuning
from bgmm.samplers.programs import compile_program

__all__ = [
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
    """

    draws: dict[str, np.ndarray]
    tuning: Tuning
    compile_seconds: float
    sampling_seconds: float


class RunnerState(NamedTuple):
    """Where :func:`run_chains` stands after a chunk: all it needs to carry on, on the host.

    The chains run in groups (one chain, all of them, or one per device: the layout);
    groups before ``group`` are finished, and group ``group`` has run its first
    ``next_step`` steps (``num_steps`` when only its final tuning is left to read).

    Attributes
    ----------
    chain_method : "sequential", "vectorized" or "parallel" (resolved, never "auto")
    num_chains, num_warmup, num_draws : int
    chunk_size : int
        Steps per compiled call; a resumed run must use the same (same programs).
    num_groups : int
    group : int
        The group of chains in progress, 0 <= group < num_groups.
    next_step : int
        Steps the group has run, a multiple of chunk_size or num_steps.
    carry : tuple of numpy arrays, each with leading axis G (the group's size, padding
        included)
        The group's flat carry between compiled calls (kernel and adaptation states).
        PRNG keys are kept as their key data (``jax.random.key_data``).
    carry_key_impls : tuple of str
        For each carry array, the PRNG implementation it holds the key data of, or "".
    draws : dict of numpy arrays, each shape (C_done, num_draws, ...)
        Kept draws of the chains of finished groups, in chain order.
    tuning : Tuning of numpy arrays with leading axis C_done
        Final tuning of those chains.
    group_draws : dict of numpy arrays, each shape (C_group, S_kept, ...)
        Draws kept so far by the real (not padding) chains of the group in progress.
    """

    chain_method: str
    num_chains: int
    num_warmup: int
    num_draws: int
    chunk_size: int
    num_groups: int
    group: int
    next_step: int
    carry: tuple[np.ndarray, ...]
    carry_key_impls: tuple[str, ...]
    draws: dict[str, np.ndarray]
    tuning: Tuning
    group_draws: dict[str, np.ndarray]

    @property
    def num_steps(self) -> int:
        """Warm-up and kept steps of each chain."""
        return self.num_warmup + self.num_draws

    @property
    def steps_done(self) -> int:
        """Chain steps run so far, over all chains (padding chains not counted)."""
        chains_done = _leading(self.draws)
        return chains_done * self.num_steps + _leading(self.group_draws) * self.next_step

    @property
    def finished(self) -> bool:
        """Every chain has run all its steps."""
        return self.group == self.num_groups - 1 and self.next_step == self.num_steps


class StopRequested(Exception):
    """Raised by :func:`run_chains` when ``on_chunk`` asked it to stop.

    Attributes
    ----------
    state : RunnerState
        Where the run stopped; ``resume_from=state`` carries on from there.
    """

    def __init__(self, state: RunnerState):
        super().__init__(f"stopped after {state.steps_done} chain steps on request")
        self.state = state


def _leading(arrays: dict[str, np.ndarray]) -> int:
    return next(iter(arrays.values())).shape[0] if arrays else 0


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
    program_identity: Any = None,
    resume_from: RunnerState | None = None,
    on_chunk: Callable[[RunnerState], bool] | None = None,
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
        Step size and inverse mass matrix (shape (P,)) that warm-up starts from.
    chain_method : "sequential", "vectorized" (vmap over chains) or "parallel" (one chain
        per device at a time; on a CPU, see :func:`bgmm.devices.use_cpu_cores`)
    progress : bool
        Show a progress bar on stderr.
    max_chunks : int
        Each chain runs in at most this many compiled calls.
    program_identity : value accepted by :func:`bgmm.samplers.programs.program_key`, or None
        Names everything ``make_kernel`` and ``adaptation`` close over, so that the
        compiled programs can be kept in the program store and loaded by a later run
        (:mod:`bgmm.samplers.programs`). None: never stored.
    resume_from : RunnerState, optional
        Carry on from where a run with the same arguments stopped (``chain_method`` and
        ``max_chunks`` included); the draws are bit-identical to those of a run never
        stopped. ``initial_positions`` still gives the starts of the groups not begun.
    on_chunk : RunnerState -> bool, optional
        Called on the host after every compiled call, with copies of everything needed to
        resume; returning True stops the run (:class:`StopRequested`).

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
    dtype = initial_tuning.inverse_mass_matrix.dtype
    num_dimensions = initial_tuning.inverse_mass_matrix.shape[-1]
    num_steps = num_warmup + num_draws
    chunk = _chunk_size(num_steps, max_chunks)

    position_spec = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], a.dtype), initial_positions
    )

    def initial_adaptation_state():
        if adaptation is None:
            return initial_tuning
        return adaptation.init(initial_tuning.step_size, num_dimensions, dtype)

    def initial_carry(position, data):
        return make_kernel(data).init(position), initial_adaptation_state()

    # The compiled programs pass a chain's carry (kernel state, adaptation state) as a flat
    # tuple of arrays: a stored program keeps the pytree structure of its arguments and
    # results, and loading the kernel state's BlackJAX types would import BlackJAX (0.3 s
    # of a warm demo). The structure is rebuilt while tracing, from shapes alone.
    def carry_structure(data):
        data_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), data)
        return jax.tree.structure(jax.eval_shape(initial_carry, position_spec, data_spec))

    def init_chain(position, data):
        return tuple(jax.tree.leaves(initial_carry(position, data)))

    def tuning_of(adapt_state, is_warmup):
        if adaptation is None:
            return adapt_state
        return jax.tree.map(
            lambda a, b: jnp.where(is_warmup, a, b),
            adaptation.current(adapt_state),
            adaptation.final(adapt_state),
        )

    def final_tuning(carry):
        structure = jax.tree.structure(jax.eval_shape(initial_adaptation_state))
        adapt_state = structure.unflatten(carry[len(carry) - structure.num_leaves :])
        return tuning_of(adapt_state, False)

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

        carry = carry_structure(data).unflatten(carry)
        carry, records = jax.lax.scan(body, carry, start + jnp.arange(chunk))
        return tuple(jax.tree.leaves(carry)), records

    def identity(role: str):
        """What the program ``role`` closes over, for the program store (None: not stored)."""
        if program_identity is None:
            return None
        others = (adaptation is None, num_warmup, num_steps, chunk, initial_tuning, chain_method)
        return (role, program_identity, others)

    layout = _ChainLayout(chain_method, num_chains)
    release_free_heap()  # what the start search freed
    compile_start = time.perf_counter()
    lazy = isinstance(data, LazyData)
    data_spec = layout.abstract(data.shapes) if lazy else layout.put(data)
    example_position = layout.take(initial_positions, layout.groups[0])
    group_keys = _group_keys(jax.random.split(rng_key, num_chains), layout.groups)
    example_key = group_keys[0]
    init_fn = layout.compile(init_chain, (0, DATA), (example_position, data_spec), identity("init"))
    example_carry = init_fn.out_info
    start0 = jnp.asarray(0, jnp.int32)
    steps_fn = layout.compile(
        run_steps,
        (0, 0, None, DATA),
        (example_carry, example_key, start0, data_spec),
        identity("steps"),
    )
    final_fn = layout.compile(final_tuning, (0,), (example_carry,), identity("final"))
    release_free_heap()  # the compiler's scratch memory, before the data and the sampler
    compile_seconds = time.perf_counter() - compile_start
    device_data = layout.put(data.load()) if lazy else data_spec

    # Empty arrays of the recorded shapes, so that a state always has every record.
    record_info = steps_fn.out_info[1]
    no_draws = {
        name: np.empty((0, num_draws, *info.shape[2:]), info.dtype)
        for name, info in record_info.items()
    }
    no_tuning = jax.tree.map(
        lambda info: np.empty((0, *info.shape[1:]), info.dtype), final_fn.out_info
    )
    if resume_from is None:
        first_group, done_draws, done_tuning = 0, no_draws, no_tuning
    else:
        this_run = {
            "chain_method": chain_method,
            "num_chains": num_chains,
            "num_warmup": num_warmup,
            "num_draws": num_draws,
            "chunk_size": chunk,
            "num_groups": len(layout.groups),
        }
        _check_state(resume_from, this_run, layout.groups, init_fn.out_info, record_info)
        first_group = resume_from.group
        done_draws, done_tuning = resume_from.draws, resume_from.tuning

    bar = _progress_bar(num_chains * num_steps, progress)
    if resume_from is not None:
        bar.update(resume_from.steps_done)
    sampling_start = time.perf_counter()
    draws_per_group, tunings = [done_draws], [done_tuning]
    for index in range(first_group, len(layout.groups)):
        group, keys = layout.groups[index], group_keys[index]
        num_real = min(len(group), num_chains - int(group[0]))
        if resume_from is not None and index == resume_from.group:
            carry = _carry_from_host(resume_from.carry, resume_from.carry_key_impls)
            pieces, first_step = [resume_from.group_draws], resume_from.next_step
        else:
            carry = init_fn(layout.take(initial_positions, group), device_data)
            none_yet = {
                name: np.empty((num_real, 0, *a.shape[2:]), a.dtype) for name, a in no_draws.items()
            }
            pieces, first_step = [none_yet], 0
        for start in range(first_step, num_steps, chunk):
            carry, records = steps_fn(carry, keys, jnp.asarray(start, jnp.int32), device_data)
            # Keep only the draws after warm-up and before the padded tail of the last chunk.
            first = max(num_warmup - start, 0)
            last = min(chunk, num_steps - start)
            if first < last:
                # Slice on the host: slicing the device arrays would compile a program per
                # shape, a quarter of a second of a short run's sampling time.
                pieces.append(
                    jax.tree.map(
                        lambda a, i=first, j=last, n=num_real: np.asarray(a)[:n, i:j], records
                    )
                )
            else:
                jax.block_until_ready(carry)
            bar.update(num_real * last)
            if on_chunk is not None:
                pieces = [_concatenate(pieces, axis=1)]  # once per chunk, not once per state
                state = RunnerState(
                    chain_method=chain_method,
                    num_chains=num_chains,
                    num_warmup=num_warmup,
                    num_draws=num_draws,
                    chunk_size=chunk,
                    num_groups=len(layout.groups),
                    group=index,
                    next_step=start + last,
                    carry=_carry_to_host(carry),
                    carry_key_impls=_key_impls(carry),
                    draws=draws_per_group[0],
                    tuning=tunings[0],
                    group_draws=pieces[0],
                )
                if on_chunk(state):
                    bar.close()
                    raise StopRequested(state)
        group_tuning = jax.tree.map(lambda a, n=num_real: np.asarray(a)[:n], final_fn(carry))
        # Finished groups kept as one array each, which every later state shares.
        tunings = [jax.tree.map(lambda *a: np.concatenate(a, axis=0), *tunings, group_tuning)]
        draws_per_group = [_concatenate([*draws_per_group, _concatenate(pieces, axis=1)], axis=0)]
    bar.close()
    sampling_seconds = time.perf_counter() - sampling_start
    return RunOutput(draws_per_group[0], tunings[0], compile_seconds, sampling_seconds)


def _concatenate(parts: list[dict[str, np.ndarray]], axis: int) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts], axis=axis) for name in parts[0]}


def _is_key(a) -> bool:
    return jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def _carry_to_host(carry: tuple) -> tuple[np.ndarray, ...]:
    """The carry as numpy arrays; keys as their key data (numpy has no key dtype)."""
    return tuple(np.asarray(jax.random.key_data(a) if _is_key(a) else a) for a in carry)


def _key_impls(carry: tuple) -> tuple[str, ...]:
    return tuple(str(jax.random.key_impl(a)) if _is_key(a) else "" for a in carry)


def _carry_from_host(carry: tuple[np.ndarray, ...], key_impls: tuple[str, ...]) -> tuple:
    return tuple(
        jax.random.wrap_key_data(a, impl=impl) if impl else a
        for a, impl in zip(carry, key_impls, strict=True)
    )


def _check_state(
    state: RunnerState, run: dict[str, Any], groups: list[np.ndarray], carry_info, record_info
) -> None:
    """Refuse a state that another run (or this run on other devices) left.

    ``run``: the state's settings fields as this run has them; ``carry_info`` and
    ``record_info``: shapes and dtypes of the compiled programs' carry and records.
    """
    saved = {name: getattr(state, name) for name in run}
    if saved != run:
        raise ValueError(
            f"the saved state is of another run ({saved}; this run {run}: another "
            "max_chunks, or another number of devices?)"
        )
    if not 0 <= state.group < state.num_groups or not 0 < state.next_step <= state.num_steps:
        raise ValueError(
            f"the saved state is at no step of the run: {state.group, state.next_step}"
        )
    first = int(groups[state.group][0])  # the chains before it are finished
    num_real = min(len(groups[state.group]), state.num_chains - first)
    kept = min(max(state.next_step - state.num_warmup, 0), state.num_draws)
    expected = {
        "draws": {
            k: ((first, state.num_draws, *i.shape[2:]), i.dtype) for k, i in record_info.items()
        },
        "group_draws": {
            k: ((num_real, kept, *i.shape[2:]), i.dtype) for k, i in record_info.items()
        },
        "carry": [(tuple(i.shape), str(i.dtype)) for i in carry_info],
    }
    restored = _carry_from_host(state.carry, state.carry_key_impls)
    found = {
        "draws": {k: (a.shape, a.dtype) for k, a in state.draws.items()},
        "group_draws": {k: (a.shape, a.dtype) for k, a in state.group_draws.items()},
        "carry": [(tuple(np.shape(a)), str(a.dtype)) for a in restored],
    }
    for part, shapes in expected.items():
        if found[part] != shapes:
            raise ValueError(
                f"the saved state's {part} have shapes and dtypes {found[part]}; this run "
                f"expects {shapes}"
            )
    if state.tuning.step_size.shape[:1] != (first,):
        raise ValueError(
            f"the saved state has the tuning of {len(state.tuning.step_size)} chains, not {first}"
        )


def _group_keys(chain_keys: jax.Array, groups: list[np.ndarray]) -> list[jax.Array]:
    """The keys of each group of chains, selected on the host: indexing the device array
    compiles a small program per selection (a quarter of a second in a warm demo)."""
    if not jnp.issubdtype(chain_keys.dtype, jax.dtypes.prng_key):
        return [np.asarray(chain_keys)[group] for group in groups]
    impl = jax.random.key_impl(chain_keys)
    key_data = np.asarray(jax.random.key_data(chain_keys))
    return [jax.random.wrap_key_data(key_data[group], impl=impl) for group in groups]


class _ChainLayout:
    """How chains map onto compiled calls.

    sequential: one chain per call. vectorized: all chains in one vmapped call. parallel:
    one chain per device per call (shard_map over a mesh of devices), in rounds; the last
    round is padded with copies of real chains, whose draws are dropped, so that one
    compiled program serves every round. Every layout vmaps the chain axis, so the
    compiled functions look alike.
    """

    def __init__(self, chain_method: str, num_chains: int):
        if chain_method == "parallel":
            devices = jax.local_devices()[: max(1, min(num_chains, jax.local_device_count()))]
            self.mesh = Mesh(np.array(devices), ("chains",))
            size = len(devices)
        else:
            self.mesh = None
            size = num_chains if chain_method == "vectorized" else 1
        self.groups = [
            np.minimum(np.arange(first, first + size), num_chains - 1)
            for first in range(0, num_chains, size)
        ]

    def put(self, data):
        """Place the data once (replicated on every device of the mesh)."""
        if self.mesh is None:
            return jax.device_put(data)
        return jax.device_put(data, NamedSharding(self.mesh, PartitionSpec()))

    def abstract(self, shapes):
        """What :meth:`put` will make of data of these shapes, for compiling."""
        sharding = None if self.mesh is None else NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes
        )

    @staticmethod
    def take(tree, group: np.ndarray):
        """The chains of ``group``, selected on the host (no small program per selection)."""
        return jax.tree.map(lambda a: np.asarray(a)[group], tree)

    def compile(self, fn, in_axes, example_args, identity):
        """Compile ``fn`` batched over chains; ``in_axes`` uses DATA for the data argument.

        ``identity`` names the program for the program store (None: not stored).
        """
        axes = tuple(None if a is DATA else a for a in in_axes)
        batched = jax.vmap(fn, in_axes=axes)
        if self.mesh is not None:
            specs = tuple(PartitionSpec() if a is None else PartitionSpec("chains") for a in axes)
            batched = jax.shard_map(
                batched,
                mesh=self.mesh,
                in_specs=specs,
                out_specs=PartitionSpec("chains"),
                check_vma=False,  # BlackJAX's lax.cond branches mix per-chain and shared values
            )
        devices = [_default_device()] if self.mesh is None else list(self.mesh.devices.flat)
        return compile_program(batched, example_args, identity=identity, devices=devices)


def _default_device() -> jax.Device:
    """The device ``jax.jit`` runs a program on when its arguments do not say."""
    default = jax.config.values["jax_default_device"]
    if isinstance(default, jax.Device):
        return default
    return jax.devices(default)[0] if isinstance(default, str) else jax.devices()[0]


DATA = object()  # marks the data argument in _ChainLayout.compile's in_axes


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
