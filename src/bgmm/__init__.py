"""bgmm: honest posterior draws for Bayesian Gaussian mixtures with HMC on JAX.

Importing bgmm turns on JAX's 64-bit mode: float64 is the default precision (as in the
TFP tutorial), and float32 runs pass their dtype explicitly. It also exposes each CPU core
as a JAX device (when JAX has not started yet and XLA_FLAGS does not say otherwise), so
that chains run side by side: see :func:`bgmm.devices.use_cpu_cores`.
"""

import jax

from bgmm.devices import use_cpu_cores

use_cpu_cores()
jax.config.update("jax_enable_x64", True)

from bgmm.api import BayesianGMM, FitResult, demo, resume  # noqa: E402
from bgmm.cache import enable_compilation_cache  # noqa: E402
from bgmm.model import Params, Priors, default_priors, tutorial_priors  # noqa: E402
from bgmm.tutorial import tutorial_data  # noqa: E402

__all__ = [
    "BayesianGMM",
    "FitResult",
    "Params",
    "Priors",
    "default_priors",
    "demo",
    "enable_compilation_cache",
    "resume",
    "tutorial_data",
    "tutorial_priors",
]
