"""The machine's memory: how much there is, what a run's draws need, and giving freed memory back.

Nothing here imports numpy or JAX, so that the data loader and the sampler runner can both use
it at no cost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

from bgmm.errors import UserError

__all__ = [
    "check_draws_memory",
    "draws_memory_bytes",
    "format_bytes",
    "physical_memory_bytes",
    "release_free_heap",
]

#: Float64 arrays of shape (C, S, K, D, D) that the results hold at once, at their peak (see
#: :func:`draws_memory_bytes`).
DRAWS_COPIES_AT_PEAK = 8


def physical_memory_bytes() -> int | None:
    """Total memory of the machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(num_bytes: int) -> str:
    """``'1.5 GiB'`` from 1 GiB up, else ``'0.3 MiB'``: one decimal, for messages."""
    if num_bytes >= 2**30:
        return f"{num_bytes / 2**30:.1f} GiB"
    return f"{num_bytes / 2**20:.1f} MiB"


def draws_memory_bytes(
    num_chains: int, num_draws: int, num_components: int, num_features: int
) -> int:
    """Memory the draws of a fit take at their peak, in bytes (an estimate, float64).

    The results hold about eight (C, S, K, D, D) arrays at once (Cholesky factors as sampled,
    in data units and relabelled; precisions; covariances; the summary's table; the NetCDF
    bytes), and the rest (means and weights, of shapes (C, S, K, D) and (C, S, K)) is small
    beside them.

    Parameters
    ----------
    num_chains, num_draws : int
        C chains of S draws each.
    num_components, num_features : int
        K components in D features.

    Returns
    -------
    int
        Bytes.
    """
    square_values = DRAWS_COPIES_AT_PEAK * num_features**2  # the (D, D) copies
    small_values = 2 * num_features + 4  # means, weights and the like
    values_per_draw = num_components * (square_values + small_values)
    return 8 * int(num_chains) * int(num_draws) * values_per_draw  # 8 bytes per float64


def check_draws_memory(
    num_chains: int, num_draws: int, num_components: int, num_features: int
) -> None:
    """Refuse a run whose draws would not fit in this machine's memory.

    Parameters
    ----------
    num_chains, num_draws, num_components, num_features : int
        As for :func:`draws_memory_bytes`.

    Raises
    ------
    bgmm.errors.UserError
        With ``option="num_draws"``, naming chains, draws, K and D, when
        :func:`draws_memory_bytes` exceeds the machine's memory
        (:func:`physical_memory_bytes`). Nothing is checked where the system does not say
        how much memory it has.
    """
    need = draws_memory_bytes(num_chains, num_draws, num_components, num_features)
    have = physical_memory_bytes()
    if have is not None and need > have:
        # The draws per chain are the usual lever; the message names chains and features too.
        raise UserError(
            f"{num_chains} chains x {num_draws} draws of K={num_components} components in "
            f"D={num_features} features need about {format_bytes(need)} of memory for the "
            f"draws, more than this machine's {format_bytes(have)}; use fewer chains, draws "
            "or features",
            option="num_draws",
        )


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return None


def release_free_heap() -> None:
    """Return the C heap's free pages to the system, where the C library allows (glibc).

    XLA's compiler frees many small allocations after compiling a sampler, but glibc keeps
    those pages in the process, so they would add to the peak while the sampler runs
    (docs/benchmarks.md, "Memory"). No library does this; on other C libraries it does
    nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
