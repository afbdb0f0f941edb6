"""Which component each observation belongs to, and how sure the posterior is.

The membership probability of observation i in component k is the posterior mean, over the
(relabelled) draws, of theta_k N(y_i | mu_k, T_k^-1) / sum_j theta_j N(y_i | mu_j, T_j^-1);
its posterior spread is the sd over the draws. Computed for row batches, so that memory is
C x S x batch x K floats whatever N.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bgmm.plumbing.batches import padded_batches
from bgmm.plumbing.precision import float64_scope
from bgmm.relabel import classification_moments

__all__ = ["Memberships", "membership_probabilities"]

# Rows per batch: S x ROWS x K float64 values at once on the device, one chain at a time
# (1000 x 1024 x 3: 25 MB).
BATCH_ROWS = 1024


class Memberships(NamedTuple):
    """Membership probabilities over the posterior.

    Attributes
    ----------
    mean : array, shape (N, K)
        Posterior mean; rows sum to one.
    sd : array, shape (N, K)
        Posterior sd over the draws.
    """

    mean: np.ndarray
    sd: np.ndarray


@float64_scope
def membership_probabilities(
    data: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    batch_rows: int = BATCH_ROWS,
) -> Memberships:
    """Posterior mean and sd of each observation's membership probabilities.

    Parameters
    ----------
    data : array, shape (N, D)
        In the units of ``means``.
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    batch_rows : int
        Observations per batch (memory: S x batch_rows x K floats).

    Returns
    -------
    Memberships
        ``mean`` (N, K), rows summing to one, and ``sd`` (N, K), over the draws.
    """
    data = np.asarray(data, np.float64)
    k = np.shape(weights)[-1]
    mean = np.empty((len(data), k))
    sd = np.empty((len(data), k))
    num_draws = np.shape(weights)[1]
    for start, count, batch in padded_batches(data, batch_rows):
        moments = classification_moments(batch, weights, means, chol_precision)[..., :count, :]
        chain_means, chain_m2 = moments[:, 0], moments[:, 1]
        pooled = chain_means.mean(axis=0)
        # Chan's update over equal-sized chains: within plus between sums of squares.
        m2 = chain_m2.sum(axis=0) + num_draws * ((chain_means - pooled) ** 2).sum(axis=0)
        mean[start : start + count] = pooled
        sd[start : start + count] = np.sqrt(m2 / (num_draws * len(chain_means)))
    return Memberships(mean, sd)
