"""A fit whose rows are split over devices and processes: what the processes agree on.

Each process holds only its own block of the rows (docs/design.md 16). The likelihood adds
the blocks up inside the sampler (:mod:`bgmm.model.sharded`); everything else a fit reads
of the data must be the same on every process, or the chains would differ between them:

- the column moments of all rows (standardisation, the features' centre), added up from
  each block's count, mean and scatter;
- a sample of the rows drawn from every block, for the start search, the relabelling and
  the observed data of the results.

Both are gathered with JAX's own collectives (``multihost_utils.process_allgather``), so
they run wherever the sampler runs: one process with several devices, or several
processes on JAX's distributed runtime. jax and numpy only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from bgmm.data.errors import DataError
from bgmm.model.gemm_likelihood import Features
from bgmm.model.sharded import DATA_AXIS, gather_over_processes, sharded_features

__all__ = [
    "SAMPLE_ROWS",
    "SplitRows",
    "data_mesh",
    "gather_split_rows",
    "split_features",
]

# Rows of all blocks kept on every process: the start search scores on 10^4 (as an unsplit
# fit does) and the relabelling uses 10^3.
SAMPLE_ROWS = 10_000


class SplitRows(NamedTuple):
    """What every process knows of the whole data.

    Attributes
    ----------
    mesh : jax.sharding.Mesh
        Every device of every process, along ``data``.
    num_rows : int
        N, the rows of all blocks.
    block_rows : int
        Rows of each process's features: the largest block, rounded up to a multiple of
        the process's devices (the shorter blocks are padded with rows the likelihood
        leaves out).
    center, scale : arrays, shape (D,)
        Column means and population standard deviations of all rows.
    sample : array, shape (min(N, SAMPLE_ROWS) or about, D)
        Rows drawn uniformly from every block, in process order; the same on every process.
    """

    mesh: Mesh
    num_rows: int
    block_rows: int
    center: np.ndarray
    scale: np.ndarray
    sample: np.ndarray


def data_mesh() -> Mesh:
    """Every device of every process on one ``data`` axis, in process order."""
    return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def gather_split_rows(
    local_rows: np.ndarray, seed: int, source: str = "data", standardize: bool = True
) -> SplitRows:
    """Agree on the moments and a sample of all rows; every process calls it with its block.

    Parameters
    ----------
    local_rows : array, shape (N_p, D)
        This process's rows.
    seed : int
        For the sample; each process draws from its block with its own stream.
    source : str
        Name of the data in error messages.
    standardize : bool
        The fit standardises the data: a column constant over all rows is an error (as
        :meth:`bgmm.data.Standardizer.fit` makes it in a fit that is not split).

    Returns
    -------
    SplitRows

    Raises
    ------
    DataError
        A column constant over all rows (when standardising), or a process with no rows.
    """
    mesh = data_mesh()
    local_rows = np.asarray(local_rows, np.float64)
    counts = gather_over_processes(np.asarray(len(local_rows), np.int64))
    if counts.min() == 0:
        raise DataError(f"{source}: process {int(np.argmin(counts))} has no rows")
    num_rows = int(counts.sum())
    center, scale = _moments(local_rows, counts, source if standardize else None)
    per_process = math.ceil(min(num_rows, SAMPLE_ROWS) / len(counts))
    sample = _gathered_sample(local_rows, per_process, seed)
    local_devices = len(mesh.local_devices)
    block_rows = local_devices * math.ceil(int(counts.max()) / local_devices)
    return SplitRows(mesh, num_rows, block_rows, center, scale, sample)


def split_features(
    split: SplitRows, model_rows: np.ndarray, center: np.ndarray, dtype, covariance_type: str
) -> Features:
    """This process's features, rows split over ``split.mesh``
    (:func:`bgmm.model.sharded.sharded_features`), padded to ``split.block_rows``.

    Parameters
    ----------
    model_rows : array, shape (N_p, D)
        This process's rows in the model's units.
    center : array, shape (D,)
        The same on every process.
    """
    return sharded_features(
        model_rows, split.mesh, center, jnp.dtype(dtype), covariance_type, num_rows=split.block_rows
    )


def _moments(local_rows: np.ndarray, counts: np.ndarray, source: str | None):
    """Column means and population standard deviations of all rows, from each block's
    mean and scatter about it (Chan et al.'s pairwise update: no cancellation); with a
    ``source``, a constant column is an error."""
    means = gather_over_processes(local_rows.mean(axis=0))
    scatters = gather_over_processes(((local_rows - local_rows.mean(axis=0)) ** 2).sum(axis=0))
    lows = gather_over_processes(local_rows.min(axis=0)).min(axis=0)
    highs = gather_over_processes(local_rows.max(axis=0)).max(axis=0)
    weights = counts[:, None] / counts.sum()
    center = (weights * means).sum(axis=0)
    scatter = scatters.sum(axis=0) + (counts[:, None] * (means - center) ** 2).sum(axis=0)
    scale = np.sqrt(scatter / counts.sum())
    constant = (scale == 0) | (lows == highs)
    if source is not None and constant.any():
        j = int(np.argmax(constant))
        raise DataError(
            f"{source}: column {j + 1} is constant (every value is {lows[j]:g}); "
            "it carries no information for clustering, remove it"
        )
    return center, scale


def _gathered_sample(local_rows: np.ndarray, per_process: int, seed: int) -> np.ndarray:
    """Up to ``per_process`` rows of every block, drawn without replacement, in order."""
    process = jax.process_index()
    rng = np.random.default_rng([seed, process])
    size = min(per_process, len(local_rows))
    rows = local_rows[np.sort(rng.choice(len(local_rows), size=size, replace=False))]
    padded = np.full((per_process, local_rows.shape[1]), np.nan)
    padded[:size] = rows
    blocks = gather_over_processes(padded)
    sizes = gather_over_processes(np.asarray(size, np.int64))
    return np.concatenate([block[:n] for block, n in zip(blocks, sizes, strict=True)])
