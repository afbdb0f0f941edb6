"""The Bayesian Gaussian mixture model: priors, densities and transforms (jax and numpy only)."""

from bgmm.model.density import TARGETS, Target, log_joint, log_prior, make_logdensity
from bgmm.model.likelihood import component_log_joint, log_likelihood, pointwise_log_likelihood
from bgmm.model.normal import mvn_chol_precision_log_prob, mvn_chol_precision_sample
from bgmm.model.priors import Priors, default_priors, tutorial_priors, validate_priors
from bgmm.model.transforms import (
    Params,
    UnconstrainedParams,
    to_constrained,
    to_unconstrained,
    unconstrained_log_det_jacobian,
)
from bgmm.model.wishart import cholesky_jacobian_log_det, wishart_log_prob_cholesky

__all__ = [
    "TARGETS",
    "Params",
    "Priors",
    "Target",
    "UnconstrainedParams",
    "cholesky_jacobian_log_det",
    "component_log_joint",
    "default_priors",
    "log_joint",
    "log_likelihood",
    "log_prior",
    "make_logdensity",
    "mvn_chol_precision_log_prob",
    "mvn_chol_precision_sample",
    "pointwise_log_likelihood",
    "to_constrained",
    "to_unconstrained",
    "tutorial_priors",
    "unconstrained_log_det_jacobian",
    "validate_priors",
    "wishart_log_prob_cholesky",
]
