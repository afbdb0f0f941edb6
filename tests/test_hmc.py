"""Our HMC trajectory (values only at the end point) against BlackJAX's velocity Verlet, and
the adapter through which bgmm reaches BlackJAX."""

import pathlib
import re

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.mcmc import integrators, metrics

from bgmm.samplers import blackjax_adapter
from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc, leapfrog_trajectory

# A correlated Gaussian on a pytree position (a vector and a matrix), like the mixture's.
_PRECISION = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])


def _logdensity(position):
    x = jnp.concatenate([position["a"], position["b"].ravel()])
    return -0.5 * x[:3] @ _PRECISION @ x[:3] - 0.25 * jnp.sum(x[3:] ** 4)


_START = {"a": jnp.array([0.3, -1.2]), "b": jnp.array([[0.5, 0.1], [-0.7, 1.1]])}
_INVERSE_MASS = jnp.array([1.0, 0.5, 2.0, 1.5, 0.8, 1.2])


@pytest.mark.parametrize("num_steps", [1, 2, 7])
def test_trajectory_equals_blackjax_velocity_verlet(num_steps):
    metric = metrics.default_metric(_INVERSE_MASS)
    momentum = metric.sample_momentum(jax.random.key(0), _START)
    value, grad = jax.value_and_grad(_logdensity)(_START)
    state = integrators.IntegratorState(_START, momentum, value, grad)
    expected = state
    one_step = integrators.velocity_verlet(_logdensity, metric.kinetic_energy)
    for _ in range(num_steps):
        expected = one_step(expected, 0.1)
    ours = jax.jit(lambda s, n: leapfrog_trajectory(_logdensity, metric.kinetic_energy, s, 0.1, n))(
        state, num_steps
    )
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", range(6))
def test_transition_equals_blackjax_hmc(seed):
    """Same key, same momentum and Metropolis draw: the same next state and info.

    At this step size seeds 0, 3 and 4 accept and 1, 2 and 5 reject.
    """
    tuning = Tuning(jnp.asarray(0.55), _INVERSE_MASS)
    state = init_hmc(_START, _logdensity)
    key = jax.random.key(seed)
    ours, our_info = jax.jit(build_hmc_step(_logdensity, 5))(key, state, tuning)
    theirs, their_info = jax.jit(
        lambda k, s: blackjax.hmc.build_kernel()(
            k, s, _logdensity, tuning.step_size, tuning.inverse_mass_matrix, 5
        )
    )(key, state)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert bool(our_info.is_accepted) == bool(their_info.is_accepted)
    np.testing.assert_allclose(our_info.acceptance_rate, their_info.acceptance_rate, rtol=1e-10)
    np.testing.assert_allclose(our_info.energy, their_info.energy, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# The BlackJAX adapter: an upgrade that moves or changes a name bgmm uses fails here.
# ---------------------------------------------------------------------------------------


def test_blackjax_internals_exist_with_the_fields_bgmm_uses():
    internals = blackjax_adapter.blackjax_internals()
    for name, fields in blackjax_adapter.BLACKJAX_FIELDS_READ.items():
        named_tuple = getattr(internals, name)
        assert set(fields) <= set(named_tuple._fields), (name, named_tuple._fields)
    # Built by keyword: every field without a default must be one the adapter gives.
    for name in ("HMCInfo", "IntegratorState"):
        named_tuple = getattr(internals, name)
        required = set(named_tuple._fields) - set(named_tuple._field_defaults)
        assert required <= set(blackjax_adapter.BLACKJAX_FIELDS_READ[name]), name
    for name, value in internals._asdict().items():
        assert callable(value), name


def test_blackjax_adapter_builds_blackjax_types():
    internals = blackjax_adapter.blackjax_internals()
    momentum = {"a": jnp.ones(2), "b": jnp.zeros((2, 2))}
    state = blackjax_adapter.integrator_state(
        position=_START, momentum=momentum, logdensity=jnp.zeros(()), logdensity_grad=_START
    )
    assert isinstance(state, internals.IntegratorState) and state.momentum is momentum
    info = blackjax_adapter.hmc_info(
        momentum=momentum,
        acceptance_rate=0.5,
        is_accepted=True,
        is_divergent=False,
        energy=1.0,
        proposal=state,
        num_integration_steps=3,
    )
    assert isinstance(info, internals.HMCInfo) and info.num_integration_steps == 3
    da_init, _, _ = blackjax_adapter.dual_averaging_adaptation(0.8)
    assert isinstance(da_init(jnp.asarray(0.1)), internals.DualAveragingAdaptationState)
    for dense, inverse_mass_matrix in ((False, jnp.ones(3)), (True, jnp.eye(3))):
        mm_init, _, _ = blackjax_adapter.mass_matrix_adaptation(dense)
        state = mm_init(3, inverse_mass_matrix)
        assert isinstance(state, internals.MassMatrixAdaptationState)
        assert state.inverse_mass_matrix.shape == inverse_mass_matrix.shape
    assert blackjax_adapter.window_schedule(100).shape == (100, 2)


def test_only_the_adapter_imports_blackjax():
    """The samplers reach BlackJAX through bgmm.samplers.blackjax_adapter alone."""
    samplers = pathlib.Path(blackjax_adapter.__file__).parent
    direct = re.compile(r"^\s*(import blackjax|from blackjax)|import_blackjax\(\)\.", re.M)
    offenders = [
        path.name
        for path in samplers.glob("*.py")
        if path.name != "blackjax_adapter.py" and direct.search(path.read_text())
    ]
    assert offenders == []
