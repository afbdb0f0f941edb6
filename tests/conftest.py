import os
import tempfile

import jax
import numpy as np
import pytest

import bgmm

# The test process is a host like any user's program: it opts in to one device per CPU
# core, and to float64 for the tests' own reference computations (bgmm itself changes
# neither; tests/test_host_state.py checks that in fresh processes).
bgmm.use_cpu_cores()
jax.config.update("jax_enable_x64", True)

# The CLI tests start many `bgmm` processes: let them share one compilation cache (kept out
# of the user's own), so each program compiles once per test session.
os.environ.setdefault("BGMM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "bgmm-test-cache"))


def mcse_of_mean(draws: np.ndarray) -> np.ndarray:
    """ArviZ's Monte Carlo standard error of the mean of every scalar of (chain, draw, ...)."""
    import arviz as az
    import xarray as xr

    c, s = draws.shape[:2]
    flat = draws.reshape(c, s, -1)
    mcse = az.mcse(xr.Dataset({"x": (("chain", "draw", "i"), flat)}))["x"].values
    return mcse.reshape(draws.shape[2:])


def monte_carlo_z(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(mean - truth) / MCSE for every scalar of ``draws`` (chain, draw, ...)."""
    return (draws.mean(axis=(0, 1)) - truth) / mcse_of_mean(draws)


@pytest.fixture
def z_scores():
    return monte_carlo_z


@pytest.fixture
def mcse():
    return mcse_of_mean


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if a fit (and so any compiling or sampling) starts."""
    import bgmm

    def refuse(*args, **kwargs):
        raise AssertionError("the fit started")

    monkeypatch.setattr(bgmm.BayesianGMM, "fit", refuse)
    monkeypatch.setattr(bgmm, "demo", refuse)
