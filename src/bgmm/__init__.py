"""bgmm: honest posterior draws for Bayesian Gaussian mixtures with HMC on JAX.

Importing bgmm changes nothing outside it: not JAX's configuration, not the environment.
float64 is the default precision of its runs (as in the TFP tutorial), switched on around
bgmm's own calls only (:mod:`bgmm.plumbing.precision`); float32 runs pass their dtype. Two opt-in
calls change the process: :func:`use_cpu_cores` (each CPU core a JAX device, so that
chains run side by side; the ``bgmm`` command does this) and
:func:`enable_compilation_cache`.
"""

from bgmm.api import BayesianGMM, FitResult, demo, resume
from bgmm.model import Params, Priors, default_priors, tutorial_priors
from bgmm.plumbing.cache import enable_compilation_cache
from bgmm.plumbing.devices import use_cpu_cores
from bgmm.selection import Selection, select, sparse_mixture
from bgmm.tutorial import tutorial_data

__all__ = [
    "BayesianGMM",
    "FitResult",
    "Params",
    "Priors",
    "Selection",
    "default_priors",
    "demo",
    "enable_compilation_cache",
    "resume",
    "select",
    "sparse_mixture",
    "tutorial_data",
    "tutorial_priors",
    "use_cpu_cores",
]
