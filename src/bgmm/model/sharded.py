"""The GEMM likelihood with the data's rows split across devices (docs/design.md 16).

The rows of the feature matrix Phi lie in blocks on the devices of a mesh axis (``data``):
the devices of one machine, or of several processes on JAX's distributed runtime. Each
device computes the sum of logsumexps of its own rows and, in the same pass, their
statistics R' Phi (a K x F matrix, :mod:`bgmm.model.gemm_likelihood`); ``psum`` adds the
values, and the transpose of that ``psum`` adds the statistics, so a value and gradient
moves one scalar and K F numbers per device, whatever N.

The parameters, and the map from them to the component weights W, are the same on every
device (replicated); only the two GEMMs and the logsumexps run on blocks. The 'tied'
structure's term -0.5 <P, Q> needs Q = sum_i y_i y_i' of all rows, which
:func:`sharded_features` adds up once, when the features are built.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from bgmm.model.gemm_likelihood import (
    Features,
    component_weights,
    make_features,
    num_features_of,
    sum_logsumexp,
)
from bgmm.model.transforms import Params

__all__ = [
    "DATA_AXIS",
    "gather_over_processes",
    "sharded_features",
    "sharded_gemm_log_likelihood",
]

DATA_AXIS = "data"


def sharded_gemm_log_likelihood(
    params: Params,
    features: Features,
    mesh: Mesh,
    covariance_type: str = "full",
    axis: str = DATA_AXIS,
) -> jax.Array:
    """log p(y | params) with ``features.phi``'s rows split over ``mesh``'s ``axis``.

    Equal to :func:`bgmm.model.gemm_log_likelihood` of the whole data, to rounding.

    Parameters
    ----------
    params : Params with shapes (K,), (K, D), (K, D, D), replicated
    features : Features from :func:`sharded_features`: phi (N, F) sharded by rows over
        ``axis``; center (D,) and scatter (D, D) replicated
    mesh : jax.sharding.Mesh with an axis named ``axis``
    covariance_type : str

    Returns
    -------
    scalar array, replicated
    """
    d = params.means.shape[-1]
    if features.phi.shape[1] == num_features_of(d, "full") and features.scatter is None:
        covariance_type = "full"  # as gemm_log_likelihood: full features serve every structure
    weights = component_weights(params, features.center, covariance_type)

    def block(weights: jax.Array, phi: jax.Array) -> jax.Array:
        # W is the same on every device; its gradient from one block is not, until the
        # transpose of the pcast adds the blocks' (the psum of the statistics).
        weights = jax.lax.pcast(weights, axis, to="varying")
        return jax.lax.psum(sum_logsumexp(weights, phi), axis)

    value = jax.shard_map(block, mesh=mesh, in_specs=(P(), P(axis)), out_specs=P())(
        weights, features.phi
    )
    if covariance_type == "tied":
        chol = params.chol_precision[0]
        value = value - 0.5 * jnp.sum((chol @ chol.T) * features.scatter)
    return value


def sharded_features(
    local_rows: np.ndarray,
    mesh: Mesh,
    center: np.ndarray,
    dtype=jnp.float64,
    covariance_type: str = "full",
    axis: str = DATA_AXIS,
    num_rows: int | None = None,
) -> Features:
    """Features whose rows are those of every process's ``local_rows``, in process order.

    Each process passes only its own block of the data, ``center`` the same on every
    process (the mean of all rows, say). The blocks' features must have the same number of
    rows on every process: ``num_rows`` pads them with rows that the likelihood leaves out
    (:func:`bgmm.model.gemm_likelihood.make_features`).

    Parameters
    ----------
    local_rows : array, shape (N_p, D)
        This process's rows of the data.
    mesh : jax.sharding.Mesh
        Its ``axis`` runs over the devices that hold the blocks, this process's among them.
    center : array, shape (D,)
        The point the features are built around, the same on every process.
    num_rows : int, optional
        Rows of this process's features (>= N_p, the same on every process); default N_p.

    Returns
    -------
    Features
        phi (N, F) sharded by rows over ``axis``; center and, for 'tied', the scatter of all
        rows replicated.
    """
    local = make_features(local_rows, dtype, covariance_type, num_rows, center=center)
    rows = NamedSharding(mesh, P(axis))
    phi = jax.make_array_from_process_local_data(rows, np.asarray(local.phi))
    replicated = NamedSharding(mesh, P())
    scatter = None
    if covariance_type == "tied":
        # Added in process order, so every process gets the same sum.
        scatter = gather_over_processes(np.asarray(local.scatter)).sum(axis=0)
    return Features(
        phi,
        jax.device_put(jnp.asarray(center, dtype), replicated),
        None if scatter is None else jax.device_put(jnp.asarray(scatter, dtype), replicated),
    )


def gather_over_processes(local: np.ndarray) -> np.ndarray:
    """Every process's ``local`` (the same shape on each), stacked in process order, on
    every process (JAX's ``process_allgather``; one process: ``local[None]``)."""
    return np.asarray(multihost_utils.process_allgather(local, tiled=False))
