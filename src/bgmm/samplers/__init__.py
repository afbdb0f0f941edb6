"""Samplers: pure kernels, warm-up rules and the chunked chain runner (jax and numpy only)."""

from bgmm.samplers.adaptation import Adaptation, tutorial_step_size_rule, window_adaptation
from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc
from bgmm.samplers.runner import ChainMethod, Kernel, RunOutput, run_chains

__all__ = [
    "Adaptation",
    "ChainMethod",
    "Kernel",
    "RunOutput",
    "Tuning",
    "build_hmc_step",
    "init_hmc",
    "run_chains",
    "tutorial_step_size_rule",
    "window_adaptation",
]
