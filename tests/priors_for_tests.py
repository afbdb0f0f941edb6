"""Priors shared by the statistical tests: K = 2, D = 2, non-exchangeable, non-identity S."""

import numpy as np

from bgmm.model import Priors

TEST_PRIORS = Priors(
    concentration=np.array([2.0, 3.0]),
    mean_loc=np.array([[-1.0, 0.0], [1.0, 0.5]]),
    mean_scale=1.0,
    wishart_df=5.0,
    wishart_scale=np.array([[1.0, 0.3], [0.3, 0.5]]),
)
