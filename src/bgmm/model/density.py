"""Prior, joint and unconstrained target log densities of the mixture model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.stats import dirichlet, norm
from jax.sharding import Mesh

from bgmm.model.covariance import check_covariance_type, precision_log_prior
from bgmm.model.gemm_likelihood import Features, gemm_log_likelihood
from bgmm.model.likelihood import log_likelihood
from bgmm.model.priors import Priors
from bgmm.model.sharded import sharded_gemm_log_likelihood
from bgmm.model.transforms import (
    Params,
    UnconstrainedParams,
    to_constrained,
    unconstrained_log_det_jacobian,
)

__all__ = ["TARGETS", "Target", "log_joint", "log_prior", "make_logdensity"]

Target = Literal["correct", "tutorial"]
TARGETS: tuple[str, ...] = ("correct", "tutorial")


def log_prior(
    params: Params, priors: Priors, target: Target = "correct", covariance_type: str = "full"
) -> jax.Array:
    """log p(params) of one parameter set (shapes in :class:`Params`), a scalar.

    ``target="correct"`` is the model as written: the Wishart density of L includes the
    Jacobian of T = L L'. ``target="tutorial"`` drops it, exactly as the TFP tutorial
    ('full' only). ``covariance_type`` says which parameters of ``params.chol_precision``
    are free and their prior (docs/design.md 1.6).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    check_covariance_type(covariance_type)
    if target == "tutorial" and covariance_type != "full":
        raise ValueError("target 'tutorial' is for covariance_type 'full' only")
    dtype = params.means.dtype
    lp_weights = dirichlet.logpdf(params.weights, jnp.asarray(priors.concentration, dtype))
    lp_means = jnp.sum(
        norm.logpdf(params.means, jnp.asarray(priors.mean_loc, dtype), priors.mean_scale)
    )
    lp_precision = precision_log_prior(
        params.chol_precision, priors, covariance_type, include_jacobian=target == "correct"
    )
    return lp_weights + lp_means + lp_precision


def log_joint(
    params: Params,
    data: jax.Array | Features,
    priors: Priors,
    target: Target = "correct",
    covariance_type: str = "full",
    likelihood_scale: jax.Array | float = 1.0,
) -> jax.Array:
    """log p(params) + s log p(data | params), a scalar, s = ``likelihood_scale``.

    ``data`` is the (N, D) array (the direct likelihood) or its :class:`Features` (the
    two-GEMM likelihood); both give the same value. s = N / n on a subsample of n of N
    rows stands in for the whole likelihood (the warm-up on a subsample,
    docs/design.md 18); s = 1 is the model.
    """
    lp = log_prior(params, priors, target, covariance_type)
    if isinstance(data, Features):
        return lp + likelihood_scale * gemm_log_likelihood(params, data, covariance_type)
    return lp + likelihood_scale * log_likelihood(params, data)


def make_logdensity(
    data: jax.Array | Features,
    priors: Priors,
    target: Target = "correct",
    covariance_type: str = "full",
    mesh: Mesh | None = None,
    likelihood_scale: jax.Array | float = 1.0,
) -> Callable[[UnconstrainedParams], jax.Array]:
    """The sampler's target: the log joint in the unconstrained space (with its log|J|).

    Parameters
    ----------
    data : array, shape (N, D), or its Features; N may be 0 for a prior-only run.
    priors : Priors
    target : "correct" or "tutorial"
    covariance_type : "full", "diag", "tied" or "spherical" (docs/design.md 1.6)
    mesh : jax.sharding.Mesh, optional
        ``data`` are Features whose rows are split over the mesh's ``data`` axis
        (:func:`bgmm.model.sharded.sharded_features`); the likelihood adds up the blocks.
    likelihood_scale : array of shape () or float
        Multiplies the log-likelihood (:func:`log_joint`); not with ``mesh``.

    Returns
    -------
    callable
        ``logdensity(position: UnconstrainedParams) -> scalar``.
    """
    num_features = priors.num_features

    def joint(params: Params) -> jax.Array:
        if mesh is None:
            return log_joint(params, data, priors, target, covariance_type, likelihood_scale)
        return log_prior(params, priors, target, covariance_type) + sharded_gemm_log_likelihood(
            params, data, mesh, covariance_type
        )

    def logdensity(position: UnconstrainedParams) -> jax.Array:
        params = to_constrained(position, num_features, covariance_type)
        return joint(params) + unconstrained_log_det_jacobian(
            position, num_features, covariance_type
        )

    return logdensity
