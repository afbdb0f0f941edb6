"""Which rows the warm-up reads: all of them, or a random subsample (docs/design.md 18).

On large data most of a run's passes over the rows are warm-up, which needs only the
posterior's shape; a subsample of n rows with its log-likelihood scaled by N / n has that
shape. This module decides when and how many rows, and draws them; the run itself is
:func:`bgmm.inference.sample_posterior`'s. jax and numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import numpy as np

from bgmm.data.subsample import subsample_rows
from bgmm.model.gemm_likelihood import Features
from bgmm.samplers.runner import LazyData

if TYPE_CHECKING:
    from bgmm.inference import SamplerSettings

__all__ = [
    "FULL_WARMUP_FRACTION",
    "MIN_FULL_WARMUP",
    "MIN_SUBSAMPLED_WARMUP",
    "SUBSAMPLE_KEY",
    "WARMUP_ROWS_WORDS",
    "WARMUP_SUBSAMPLE_FROM_ROWS",
    "WARMUP_SUBSAMPLE_ROWS",
    "Subsample",
    "full_warmup_steps",
    "num_rows_of",
    "warmup_subsample_rows",
]

# "auto" draws WARMUP_SUBSAMPLE_ROWS rows from data of at least WARMUP_SUBSAMPLE_FROM_ROWS;
# the last FULL_WARMUP_FRACTION of the warm-up (at least MIN_FULL_WARMUP steps) runs on all
# rows. Warm-ups shorter than MIN_SUBSAMPLED_WARMUP steps run on all rows throughout.
WARMUP_ROWS_WORDS: tuple[str, ...] = ("auto", "all")
WARMUP_SUBSAMPLE_ROWS = 10_000
WARMUP_SUBSAMPLE_FROM_ROWS = 4 * WARMUP_SUBSAMPLE_ROWS
FULL_WARMUP_FRACTION = 0.15
MIN_FULL_WARMUP = 50
MIN_SUBSAMPLED_WARMUP = 200
# Folded into the run's key for the subsample's rows and for its chains.
SUBSAMPLE_KEY = 0x5342


def warmup_subsample_rows(settings: SamplerSettings, num_rows: int) -> int | None:
    """The rows of the subsample the warm-up runs on for data of ``num_rows`` rows, or None
    when it runs on all of them.

    ``settings.warmup_rows`` "auto" means WARMUP_SUBSAMPLE_ROWS rows from
    WARMUP_SUBSAMPLE_FROM_ROWS rows on; an integer means that many rows when there are more.
    Only HMC and NUTS with the window adaptation and a warm-up of MIN_SUBSAMPLED_WARMUP
    steps or more warm up on a subsample.
    """
    rows = settings.warmup_rows
    if (
        rows in (None, "all")
        or settings.adaptation != "window"
        or settings.num_warmup < MIN_SUBSAMPLED_WARMUP
    ):
        return None
    if rows == "auto":
        return WARMUP_SUBSAMPLE_ROWS if num_rows >= WARMUP_SUBSAMPLE_FROM_ROWS else None
    return int(rows) if rows < num_rows else None


def full_warmup_steps(num_warmup: int) -> int:
    """The warm-up steps on all rows after the subsample's: its last FULL_WARMUP_FRACTION,
    at least MIN_FULL_WARMUP."""
    return max(MIN_FULL_WARMUP, round(FULL_WARMUP_FRACTION * num_warmup))


def num_rows_of(data: np.ndarray | LazyData | jax.Array | Features) -> int:
    """The rows of the sampler's data in any of the forms sample_posterior takes (padding
    rows of prepared features included: they only ever come from large data)."""
    if isinstance(data, LazyData):
        return data.shapes.shape[0]
    return np.shape(data.phi if isinstance(data, Features) else data)[0]


class Subsample(NamedTuple):
    """The rows a warm-up on a subsample reads: ``num_rows`` of the ``total_rows`` rows of
    ``data`` (an (N, D) array or LazyData of one)."""

    data: np.ndarray | LazyData
    num_rows: int
    total_rows: int

    @classmethod
    def of(cls, data: np.ndarray | LazyData, settings: SamplerSettings) -> Subsample | None:
        """The subsample ``settings`` ask for on ``data``, or None (all rows)."""
        total = num_rows_of(data)
        rows = warmup_subsample_rows(settings, total)
        return None if rows is None else cls(data, rows, total)

    @property
    def likelihood_scale(self) -> float:
        """N / n: the subsample's log-likelihood times this stands in for all rows'."""
        return self.total_rows / self.num_rows

    def rows(self, rng_key: jax.Array) -> np.ndarray:
        """A uniform random choice of ``num_rows`` rows without replacement, in row order,
        shape (num_rows, D), seeded by ``rng_key``."""
        full = self.data.load() if isinstance(self.data, LazyData) else np.asarray(self.data)
        seed = int(jax.random.bits(rng_key, dtype=np.uint32))
        return subsample_rows(full, self.num_rows, seed)
