"""bgmm: honest posterior draws for Bayesian Gaussian mixtures with HMC on JAX.

Importing bgmm turns on JAX's 64-bit mode: float64 is the default precision (as in the
TFP tutorial), and float32 runs pass their dtype explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)

from bgmm.api import BayesianGMM, FitResult, demo  # noqa: E402
from bgmm.model import Params, Priors, default_priors, tutorial_priors  # noqa: E402
from bgmm.tutorial import tutorial_data  # noqa: E402

__all__ = [
    "BayesianGMM",
    "FitResult",
    "Params",
    "Priors",
    "default_priors",
    "demo",
    "tutorial_data",
    "tutorial_priors",
]
