"""scikit-learn's own estimator checks, run on BayesianGMM.

All of ``check_estimator``'s checks for a density estimator run here, except:

- ``check_estimators_unfitted``: it wants scikit-learn's ``NotFittedError`` class. bgmm
  raises its own :class:`bgmm.errors.NotFittedError`, a ``ValueError`` and an
  ``AttributeError`` as scikit-learn's is, since bgmm does not depend on scikit-learn
  (tests/test_estimator.py checks it).
- ``check_array_api_input``: skipped by scikit-learn itself unless SCIPY_ARRAY_API is set;
  bgmm converts input to numpy (its sampler runs on JAX).
"""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks

import bgmm

# Tiny runs: the checks test the estimator's conventions, not the posterior.
TINY = {"num_chains": 1, "num_warmup": 5, "num_draws": 5, "n_init": 1}
NOT_APPLICABLE = {
    "check_estimators_unfitted": "bgmm raises its own NotFittedError (no scikit-learn "
    "dependency); a ValueError and AttributeError as scikit-learn's",
}


@parametrize_with_checks(
    [bgmm.BayesianGMM(2, **TINY)], expected_failed_checks=lambda _: NOT_APPLICABLE
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
