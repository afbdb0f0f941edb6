"""What the SBC run of ``benchmarks/sbc.py`` consists of: its constants, the problem
configurations, the chain length of each sampler, and the negative controls."""

from __future__ import annotations

import numpy as np

from bgmm.model import Priors

L_DRAWS = 99  # thinned draws per replication: ranks 0..99
NUM_BINS = 20  # 100 rank values, 5 per bin
RETRY_FACTOR = 4  # a chain whose min bulk ESS < L is rerun this much longer ...
MAX_ATTEMPTS = 3  # ... at most twice


def _exchangeable(k: int, d: int) -> Priors:
    """bgmm's default priors when docs/sbc.md was measured (alpha0 = 1, m0 = 0, s0 = 2,
    nu = D + 2, S = I), pinned: the default has since become S = K^(2/D) I
    (docs/priors.md), and the SBC records must stay reproducible."""
    return Priors(np.ones(k), np.zeros((k, d)), 2.0, float(d + 2), np.eye(d))


# name -> K, D, N and the priors the parameters are drawn from (and sampled under).
CONFIGS: dict[str, dict] = {
    # Exchangeable priors (bgmm's earlier defaults for standardised data): every test
    # quantity is a symmetric function of the components.
    "K2-D1-N20": {"K": 2, "D": 1, "N": 20, "priors": _exchangeable(2, 1)},
    "K2-D2-N30": {"K": 2, "D": 2, "N": 30, "priors": _exchangeable(2, 2)},
    # Symmetry-breaking priors in the style of the tutorial's (distinct m0_k, s0 = 1),
    # spread so far apart that the labels are identified: per-component quantities too.
    "K3-D1-N50": {
        "K": 3,
        "D": 1,
        "N": 50,
        "priors": Priors(
            concentration=np.ones(3),
            mean_loc=np.array([[-3.0], [0.0], [3.0]]),
            mean_scale=1.0,
            wishart_df=5.0,
            wishart_scale=np.eye(1),
        ),
    },
}

# Warm-up and kept draws per chain, sized from pilot runs so that the smallest bulk ESS over
# the test quantities exceeds L = 99 in most replications; a chain below it is rerun
# RETRY_FACTOR times longer, at most MAX_ATTEMPTS - 1 times (Talts et al. 2018, section 5.1:
# thin by the effective sample size, lengthen the chain where it is too small).
SAMPLERS = {
    "hmc": {"num_warmup": 1000, "num_draws": 2000},
    "nuts": {"num_warmup": 1000, "num_draws": 1000},
    "gibbs": {"num_warmup": 500, "num_draws": 4000},
}
LENGTH_OVERRIDES = {
    # Gibbs mixes slowly where a component is (nearly) empty: the per-label weights of the
    # identifying priors need the longest chains.
    ("gibbs", "K3-D1-N50"): {"num_warmup": 1000, "num_draws": 16000},
}


def chain_lengths(sampler: str, config: str) -> dict:
    """``num_warmup`` and ``num_draws`` of ``sampler`` on the configuration ``config``."""
    return {**SAMPLERS[sampler], **LENGTH_OVERRIDES.get((sampler, config), {})}


# Kernels that sample another posterior than the one the data were simulated from.
NEGATIVE_CONTROLS = {
    "hmc-tutorial-target": {
        "sampler": "hmc",
        "target": "tutorial",
        "description": 'HMC with target="tutorial": the Wishart density of L_k without the '
        "Jacobian of T = L L' (the TFP tutorial's prior), data simulated from the model as written",
    },
    "gibbs-df-plus-1": {
        "sampler": "gibbs",
        "target": "correct",
        "df_shift": 1.0,
        "description": "Gibbs with the Wishart degrees of freedom nu + 1 in every conditional "
        "(an off-by-one in the precision update), data simulated with nu",
    },
}
NEGATIVE_CONFIG = "K2-D2-N30"
