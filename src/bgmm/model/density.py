"""Prior, joint and unconstrained target log densities of the mixture model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import dirichlet, norm

from bgmm.model.gemm_likelihood import Features, gemm_log_likelihood
from bgmm.model.likelihood import log_likelihood
from bgmm.model.priors import Priors
from bgmm.model.transforms import (
    Params,
    UnconstrainedParams,
    to_constrained,
    unconstrained_log_det_jacobian,
)
from bgmm.model.wishart import wishart_log_prob_cholesky

__all__ = ["TARGETS", "Target", "log_joint", "log_prior", "make_logdensity"]

Target = Literal["correct", "tutorial"]
TARGETS: tuple[str, ...] = ("correct", "tutorial")


def log_prior(params: Params, priors: Priors, target: Target = "correct") -> jax.Array:
    """log p(params) of one parameter set (shapes in :class:`Params`), a scalar.

    ``target="correct"`` is the model as written: the Wishart density of L includes the
    Jacobian of T = L L'. ``target="tutorial"`` drops it, exactly as the TFP tutorial.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    dtype = params.means.dtype
    scale = np.asarray(priors.wishart_scale, dtype=np.float64)
    scale_inv = jnp.asarray(np.linalg.inv(scale), dtype)
    scale_log_det = float(np.linalg.slogdet(scale)[1])
    lp_weights = dirichlet.logpdf(params.weights, jnp.asarray(priors.concentration, dtype))
    lp_means = jnp.sum(
        norm.logpdf(params.means, jnp.asarray(priors.mean_loc, dtype), priors.mean_scale)
    )
    lp_precision = jnp.sum(
        wishart_log_prob_cholesky(
            params.chol_precision,
            priors.wishart_df,
            scale_inv,
            scale_log_det,
            include_jacobian=target == "correct",
        )
    )
    return lp_weights + lp_means + lp_precision


def log_joint(
    params: Params, data: jax.Array | Features, priors: Priors, target: Target = "correct"
) -> jax.Array:
    """log p(params) + log p(data | params), a scalar.

    ``data`` is the (N, D) array (the direct likelihood) or its :class:`Features` (the
    two-GEMM likelihood); both give the same value.
    """
    if isinstance(data, Features):
        return log_prior(params, priors, target) + gemm_log_likelihood(params, data)
    return log_prior(params, priors, target) + log_likelihood(params, data)


def make_logdensity(
    data: jax.Array | Features, priors: Priors, target: Target = "correct"
) -> Callable[[UnconstrainedParams], jax.Array]:
    """The sampler's target: the log joint in the unconstrained space (with its log|J|).

    Parameters
    ----------
    data : array, shape (N, D), or its Features; N may be 0 for a prior-only run.
    priors : Priors
    target : "correct" or "tutorial"

    Returns
    -------
    callable
        ``logdensity(position: UnconstrainedParams) -> scalar``.
    """
    num_features = priors.num_features

    def logdensity(position: UnconstrainedParams) -> jax.Array:
        params = to_constrained(position, num_features)
        return log_joint(params, data, priors, target) + unconstrained_log_det_jacobian(
            position, num_features
        )

    return logdensity
