"""The TFP tutorial's data set, start, sampler settings and printout, embedded.

Data: numpy RandomState(43); true_loc = [[-2, -2], [0, 0], [2, 2]]; z = randint(0, 3, 1000);
y = true_loc[z] + randn(1000, 2), float64 (docs/design.md section 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bgmm.model.priors import tutorial_priors

__all__ = [
    "TUTORIAL_PRINTOUT",
    "TUTORIAL_SAMPLER",
    "TUTORIAL_TRUE_LOC",
    "TutorialSampler",
    "tutorial_data",
    "tutorial_priors",
    "tutorial_start",
]

TUTORIAL_TRUE_LOC = np.array([[-2.0, -2.0], [0.0, 0.0], [2.0, 2.0]])


class TutorialSampler(NamedTuple):
    """The tutorial's HMC configuration."""

    step_size: float = 0.065
    num_leapfrog_steps: int = 5
    num_adaptation_steps: int = 400
    num_burnin: int = 500
    num_draws: int = 2000
    num_chains: int = 1
    target_accept_prob: float = 0.75
    adaptation_rate: float = 0.01


TUTORIAL_SAMPLER = TutorialSampler()

# What the tutorial printed from its own run (one chain of 2000 draws).
TUTORIAL_PRINTOUT = {
    "acceptance_rate": 0.5305,
    "weights": np.array([0.25248723, 0.60729516, 0.1402176]),
    "means": np.array(
        [[-1.96466753, -2.12047249], [0.27628865, 0.22944732], [2.06461244, 2.54216122]]
    ),
    "chol_precision": np.array(
        [
            [[1.05105032, 0.0], [0.12699955, 1.06553113]],
            [[0.76058015, 0.0], [-0.50332767, 0.77947431]],
            [[1.22770457, 0.0], [0.70670027, 1.50914164]],
        ]
    ),
}


def tutorial_data(num_samples: int = 1000) -> np.ndarray:
    """The tutorial's observations, shape (num_samples, 2), float64, bit for bit."""
    random = np.random.RandomState(seed=43)
    hidden = random.randint(0, 3, num_samples)
    return TUTORIAL_TRUE_LOC[hidden] + random.randn(num_samples, 2)


def tutorial_start() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tutorial's initial state: weights 1/3, locations at the truth, L = I.

    Returns
    -------
    weights : (3,), means : (3, 2), chol_precision : (3, 2, 2)
    """
    return np.full(3, 1.0 / 3.0), TUTORIAL_TRUE_LOC.copy(), np.stack([np.eye(2)] * 3)
