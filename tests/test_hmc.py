"""Our HMC trajectory (values only at the end point) against BlackJAX's velocity Verlet."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.mcmc import integrators, metrics

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
