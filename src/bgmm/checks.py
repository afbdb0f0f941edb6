"""The tutorial's sanity check of the Cholesky-precision normal (docs/design.md section 1.1).

loc = [1, -1], L = [[1, 0], [2, 8]]: 10^6 draws must reproduce the mean and the
covariance (L L')^{-1} = [[1.0625, -0.03125], [-0.03125, 0.015625]].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.model.normal import mvn_chol_precision_sample
from bgmm.plumbing.precision import float64_scope

__all__ = ["MvnCheck", "chol_precision_normal_check"]

CHECK_LOC = np.array([1.0, -1.0])
CHECK_CHOL_PRECISION = np.array([[1.0, 0.0], [2.0, 8.0]])


class MvnCheck(NamedTuple):
    """True and sample moments; shapes (2,) and (2, 2)."""

    true_mean: np.ndarray
    sample_mean: np.ndarray
    true_cov: np.ndarray
    sample_cov: np.ndarray
    num_samples: int

    def to_dict(self) -> dict:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self._asdict().items()
        }

    def report(self) -> str:
        def fmt(a):
            return np.array2string(a, precision=6, suppress_small=True)

        return "\n".join(
            [
                f"Cholesky-precision normal check ({self.num_samples:.0e} draws):",
                f"true mean: {fmt(self.true_mean)}",
                f"sample mean: {fmt(self.sample_mean)}",
                f"true cov:\n{fmt(self.true_cov)}",
                f"sample cov:\n{fmt(self.sample_cov)}",
            ]
        )


@float64_scope
def chol_precision_normal_check(seed: int = 42, num_samples: int = 1_000_000) -> MvnCheck:
    """Draw ``num_samples`` from N(CHECK_LOC, (L L')^{-1}) and compare the moments."""
    x = np.asarray(
        mvn_chol_precision_sample(
            jax.random.key(seed),
            jnp.asarray(CHECK_LOC),
            jnp.asarray(CHECK_CHOL_PRECISION),
            num_samples,
        )
    )
    true_cov = np.linalg.inv(CHECK_CHOL_PRECISION @ CHECK_CHOL_PRECISION.T)
    centred = x - x.mean(axis=0)
    return MvnCheck(
        CHECK_LOC, x.mean(axis=0), true_cov, centred.T @ centred / num_samples, num_samples
    )
