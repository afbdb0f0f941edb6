"""Prior hyper-parameters of the Bayesian Gaussian mixture, and their presets."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Priors",
    "default_priors",
    "is_exchangeable",
    "tutorial_priors",
    "validate_priors",
]


class Priors(NamedTuple):
    """Hyper-parameters of the model (docs/design.md section 1).

    theta ~ Dirichlet(concentration); mu_k ~ Normal(mean_loc[k], mean_scale^2 I);
    T_k ~ Wishart(wishart_df, wishart_scale).

    Attributes
    ----------
    concentration : array, shape (K,)
        Dirichlet concentration alpha0.
    mean_loc : array, shape (K, D)
        Prior means m0 of the component locations.
    mean_scale : float
        Prior standard deviation s0 of every location coordinate.
    wishart_df : float
        Wishart degrees of freedom nu, > D - 1.
    wishart_scale : array, shape (D, D)
        Wishart scale matrix S (symmetric positive definite).
    """

    concentration: np.ndarray
    mean_loc: np.ndarray
    mean_scale: float
    wishart_df: float
    wishart_scale: np.ndarray

    @property
    def num_components(self) -> int:
        return int(np.shape(self.concentration)[0])

    @property
    def num_features(self) -> int:
        return int(np.shape(self.mean_loc)[1])

    def astype(self, dtype) -> Priors:
        """The same priors with every array cast to ``dtype``."""
        return Priors(
            np.asarray(self.concentration, dtype),
            np.asarray(self.mean_loc, dtype),
            float(self.mean_scale),
            float(self.wishart_df),
            np.asarray(self.wishart_scale, dtype),
        )


def tutorial_priors(num_features: int = 2) -> Priors:
    """The TFP tutorial's priors: K = 3, alpha0 = 0.1, m0 = (-1, 0, 1), s0 = 1, nu = 5, S = I.

    The different prior means break the label symmetry, as in the tutorial. Valid for
    D <= 5 (the Wishart needs nu > D - 1).
    """
    d = num_features
    return Priors(
        concentration=np.full(3, 0.1),
        mean_loc=np.stack([-np.ones(d), np.zeros(d), np.ones(d)]),
        mean_scale=1.0,
        wishart_df=5.0,
        wishart_scale=np.eye(d),
    )


def default_priors(num_components: int, num_features: int) -> Priors:
    """Exchangeable, weakly informative priors for standardised data.

    Meant for data that were centred and scaled to unit variance per feature
    (``bgmm fit`` does this and reports results back in data units):

    - alpha0 = 1 for every component: uniform on the simplex.
    - m0 = 0, s0 = 2: every location a priori anywhere within about +-4 standard
      deviations of the data's centre; the same for every component (exchangeable).
    - nu = D + 2, S = K^(2/D) I: Fraley and Raftery's (2007) scale. The covariance
      Sigma = T^{-1} is inverse Wishart with scale S^{-1} = I / K^(2/D), so
      E[covariance] = S^{-1} / (nu - D - 1) = I / K^(2/D): K components of equal size
      that share the data's unit volume, each 1/K of it. The prior adds to each
      component's scatter matrix that of one pseudo-observation per feature of variance
      K^(-2/D), and nu = D + 2 is the fewest degrees of freedom that keep E[covariance]
      finite; a cluster of n points with covariance C in standard units gets a
      posterior covariance near (I / K^(2/D) + n C) / (n + 1). K = 1 gives S = I.
      (Fraley and Raftery use the data's covariance, on standardised data the
      correlation matrix; I keeps the prior a function of K and D alone and did as well
      in docs/priors.md.) The earlier default S = I (E[covariance] = I, a component as
      wide as the whole data) inflated tight components and merged or misassigned them
      more often: docs/priors.md has the comparison.
    """
    k, d = num_components, num_features
    return Priors(
        concentration=np.ones(k),
        mean_loc=np.zeros((k, d)),
        mean_scale=2.0,
        wishart_df=float(d + 2),
        wishart_scale=float(k) ** (2.0 / d) * np.eye(d),
    )


def validate_priors(priors: Priors) -> None:
    """Raise ``ValueError`` with a one-line reason if the priors are not a valid model."""
    alpha = np.asarray(priors.concentration, dtype=float)
    m0 = np.asarray(priors.mean_loc, dtype=float)
    scale = np.asarray(priors.wishart_scale, dtype=float)
    if alpha.ndim != 1 or alpha.size < 1:
        raise ValueError("concentration must be a vector of K >= 1 values")
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError("concentration must be positive and finite")
    if m0.ndim != 2 or m0.shape[0] != alpha.size:
        raise ValueError(f"mean_loc must have shape (K, D) = ({alpha.size}, D)")
    if not np.all(np.isfinite(m0)):
        raise ValueError("mean_loc must be finite")
    d = m0.shape[1]
    if not np.isfinite(priors.mean_scale) or priors.mean_scale <= 0:
        raise ValueError("mean_scale must be positive")
    if not (np.isfinite(priors.wishart_df) and priors.wishart_df > d - 1):
        raise ValueError(f"wishart_df must exceed D - 1 = {d - 1}")
    if scale.shape != (d, d) or not np.all(np.isfinite(scale)) or not np.allclose(scale, scale.T):
        raise ValueError(f"wishart_scale must be a finite symmetric ({d}, {d}) matrix")
    if np.any(np.linalg.eigvalsh(scale) <= 0):
        raise ValueError("wishart_scale must be positive definite")


def is_exchangeable(priors: Priors) -> bool:
    """True when relabelling the components leaves the prior unchanged (label switching)."""
    alpha = np.asarray(priors.concentration)
    m0 = np.asarray(priors.mean_loc)
    return bool(np.all(alpha == alpha[0]) and np.all(m0 == m0[0]))
