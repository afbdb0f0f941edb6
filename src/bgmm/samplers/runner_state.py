"""Where a run stands between chunks, on the host: enough to resume it bit for bit.

:class:`RunnerState` is what :func:`bgmm.samplers.runner.run_chains` hands ``on_chunk`` and
takes back as ``resume_from``; :mod:`bgmm.checkpoint` writes it to files. It holds numpy
arrays only (PRNG keys as their key data), so saving it needs no JAX types.
:class:`FinishedChains` and :class:`GroupProgress` are the runner's own records of the same
progress while it runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.samplers.hmc import Tuning

__all__ = [
    "FinishedChains",
    "GroupProgress",
    "RunPlan",
    "RunnerState",
    "StopRequested",
    "carry_from_host",
    "carry_to_host",
    "check_resumable",
]


class RunPlan(NamedTuple):
    """The layout of a run: what a resumed run must share with the one it resumes.

    Attributes
    ----------
    chain_method : "sequential", "vectorized" or "parallel" (resolved, never "auto")
    num_chains, num_warmup, num_draws : int
    chunk_size : int
        Steps per compiled call.
    num_groups : int
        Groups of chains run one after another (:class:`~bgmm.samplers.chain_layout.
        ChainLayout`).
    """

    chain_method: str
    num_chains: int
    num_warmup: int
    num_draws: int
    chunk_size: int
    num_groups: int

    @property
    def num_steps(self) -> int:
        """Warm-up and kept steps of each chain."""
        return self.num_warmup + self.num_draws


class RunnerState(NamedTuple):
    """Where :func:`~bgmm.samplers.runner.run_chains` stands after a chunk: all it needs to
    carry on, on the host.

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
    converged : bool
        The run's ``stop_when`` found the draws so far enough: the run ends here, with
        fewer than num_draws draws (a resumed run ends here too).
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
    converged: bool = False

    @property
    def plan(self) -> RunPlan:
        """The layout fields of the run this state is of."""
        return RunPlan(*self[: len(RunPlan._fields)])

    @property
    def num_steps(self) -> int:
        """Warm-up and kept steps of each chain."""
        return self.num_warmup + self.num_draws

    @property
    def steps_done(self) -> int:
        """Chain steps run so far, over all chains (padding chains not counted)."""
        chains_done = _num_chains_in(self.draws)
        return chains_done * self.num_steps + _num_chains_in(self.group_draws) * self.next_step

    @property
    def finished(self) -> bool:
        """Every chain has run all its steps, or the draws were found enough."""
        last_group = self.group == self.num_groups - 1
        return self.converged or (last_group and self.next_step == self.num_steps)


class FinishedChains(NamedTuple):
    """The results of the chains whose groups are done, in chain order.

    Attributes
    ----------
    draws : dict of numpy arrays, each shape (C_done, num_draws, ...)
    tuning : Tuning of numpy arrays with leading axis C_done
    """

    draws: dict[str, np.ndarray]
    tuning: Tuning


class GroupProgress(NamedTuple):
    """The group of chains in progress.

    Attributes
    ----------
    index : int
        Its place in the layout's groups.
    num_real : int
        Its chains that are not padding (the first ``num_real`` of its G).
    carry : tuple of arrays, each (G, ...)
        On the device, or host arrays just after a resume.
    next_step : int
        Steps run so far.
    draw_pieces : tuple of dicts of numpy arrays, each (num_real, S_piece, ...)
        Draws kept so far, in pieces along the draw axis (joined when a state needs them).
    converged : bool
        ``stop_when`` found the draws enough: the group runs no further.
    """

    index: int
    num_real: int
    carry: tuple
    next_step: int
    draw_pieces: tuple[dict[str, np.ndarray], ...]
    converged: bool = False


class StopRequested(Exception):
    """Raised by :func:`~bgmm.samplers.runner.run_chains` when ``on_chunk`` asked it to stop.

    Attributes
    ----------
    state : RunnerState
        Where the run stopped; ``resume_from=state`` carries on from there.
    """

    def __init__(self, state: RunnerState):
        super().__init__(f"stopped after {state.steps_done} chain steps on request")
        self.state = state


def _num_chains_in(draws: dict[str, np.ndarray]) -> int:
    return next(iter(draws.values())).shape[0] if draws else 0


def _is_key(a: Any) -> bool:
    return jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def carry_to_host(carry: tuple) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    """A group's flat carry as numpy arrays (numpy has no key dtype: keys as their key data),
    and for each array its PRNG implementation's name, or ""."""
    arrays = tuple(np.asarray(jax.random.key_data(a) if _is_key(a) else a) for a in carry)
    key_impls = tuple(str(jax.random.key_impl(a)) if _is_key(a) else "" for a in carry)
    return arrays, key_impls


def carry_from_host(carry: tuple[np.ndarray, ...], key_impls: tuple[str, ...]) -> tuple:
    """Undo :func:`carry_to_host`: key data wrapped back into keys."""
    return tuple(
        jax.random.wrap_key_data(a, impl=impl) if impl else a
        for a, impl in zip(carry, key_impls, strict=True)
    )


def check_resumable(
    state: RunnerState,
    plan: RunPlan,
    groups: list[np.ndarray],
    carry_info: Any,
    record_info: dict[str, Any],
) -> None:
    """Refuse a state that another run (or this run on other devices) left.

    Parameters
    ----------
    state : RunnerState
    plan : RunPlan
        This run's.
    groups : list of int arrays
        This run's groups of chains (:attr:`ChainLayout.groups`).
    carry_info : sequence of jax.ShapeDtypeStruct, each shape (G, ...)
        The compiled programs' carry.
    record_info : dict of jax.ShapeDtypeStruct, each shape (G, chunk_size, ...)
        The compiled chunk program's records.

    Raises
    ------
    ValueError
        Naming what does not fit.
    """
    if state.plan != plan:
        raise ValueError(
            f"the saved state is of another run ({state.plan._asdict()}; this run "
            f"{plan._asdict()}: another max_chunks, or another number of devices?)"
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
    restored = carry_from_host(state.carry, state.carry_key_impls)
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
