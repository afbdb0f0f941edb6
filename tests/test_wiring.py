"""Wiring: the parts a run is assembled from must be used, not only exist.

Each test here was written against a mutant that passed the other tests (docs/mutation.md):
the window adaptation's mass matrix never estimated (or its step size never adapted), and
Stephens relabelling doing nothing.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import bgmm
from bgmm.model import Params
from bgmm.relabel import undo_permutations
from bgmm.samplers.adaptation import window_adaptation
from bgmm.samplers.hmc import Tuning, import_blackjax
from bgmm.samplers.runner import Kernel, run_chains

# ---------------------------------------------------------------------------
# Window adaptation against Stan's formula
# ---------------------------------------------------------------------------

# A Gaussian target whose scales differ by a factor 100: an identity mass matrix (the
# initial one) or 1e-3 (Stan's regulariser alone, what an empty Welford window gives) is
# off by two orders of magnitude in at least one coordinate.
VARIANCES = np.array([0.01, 1.0, 100.0])
NUM_WARMUP = 300
# Stan's schedule for 300 warm-up steps (75-step initial buffer, 50-step terminal buffer,
# slow windows of 25, 50 and the rest): the mass matrix is that of the last slow window.
LAST_SLOW_WINDOW = slice(150, 250)
INITIAL_STEP_SIZE = 0.1


def _gaussian_logdensity(x):
    return -0.5 * jnp.sum(x**2 / jnp.asarray(VARIANCES))


def _stan_inverse_mass_matrix(window: np.ndarray) -> np.ndarray:
    """(n / (n + 5)) var + 1e-3 * 5 / (n + 5), var the unbiased sample variance of the
    window's positions (Stan's regularised diagonal metric), in float64 with NumPy."""
    n = len(window)
    return n / (n + 5) * np.var(window, axis=0, ddof=1) + 1e-3 * 5 / (n + 5)


@functools.partial(jax.jit, static_argnums=1)
def _adapted_warm_up(rng_key, target_acceptance_rate=0.8):
    """bgmm's window adaptation driving BlackJAX's NUTS, as the runner drives it (tuning
    from ``current`` for every warm-up step, ``update`` with the new position and the
    acceptance rate); returns the positions and acceptance rates of every step and the
    final tuning."""
    nuts = import_blackjax().nuts
    kernel = nuts.build_kernel()
    rule = window_adaptation(NUM_WARMUP, target_acceptance_rate)

    def body(carry, index):
        state, adapt = carry
        tuning = rule.current(adapt)
        state, info = kernel(
            jax.random.fold_in(rng_key, index),
            state,
            _gaussian_logdensity,
            tuning.step_size,
            tuning.inverse_mass_matrix,
        )
        adapt = rule.update(adapt, index, state.position, info.acceptance_rate)
        return (state, adapt), (state.position, info.acceptance_rate)

    start = (
        nuts.init(jnp.ones(3), _gaussian_logdensity),
        rule.init(INITIAL_STEP_SIZE, 3, jnp.float64),
    )
    (_, adapt), (positions, acceptance) = jax.lax.scan(body, start, jnp.arange(NUM_WARMUP))
    return positions, acceptance, rule.final(adapt)


def _assert_near_the_true_variances(inverse_mass_matrix: np.ndarray) -> None:
    """The diagonal within a factor 2 of the true variances (the relative sd of a variance
    from 100 nearly independent draws is about sqrt(2 / 100) = 0.14: a factor 2 is 5 sd)
    and more than 1.5 orders of magnitude from the initial 1 and from the 1e-3 of an empty
    window in every coordinate whose true variance is 100 times from them."""
    ratio = inverse_mass_matrix / VARIANCES
    assert np.all((ratio > 0.5) & (ratio < 2.0)), f"inverse mass matrix / truth = {ratio}"
    for stuck in (1.0, 1e-3):
        far = np.abs(np.log10(VARIANCES / stuck)) >= 2  # (0.01, 100) and (1, 100) resp.
        assert np.all(np.abs(np.log10(inverse_mass_matrix[far] / stuck)) > 1.5), stuck


def test_window_adaptation_mass_matrix_is_stans_estimate_of_the_last_window():
    positions, acceptance, tuning = _adapted_warm_up(jax.random.key(0))
    positions = np.asarray(positions)
    imm = np.asarray(tuning.inverse_mass_matrix)
    assert imm.shape == (3,) and imm.dtype == np.float64
    # Exact: Welford in the adaptation, two-pass NumPy here; they differ by rounding only.
    expected = _stan_inverse_mass_matrix(positions[LAST_SLOW_WINDOW])
    np.testing.assert_allclose(imm, expected, rtol=1e-9)
    # Not an estimate from another window (a schedule off by one window would match here
    # only by chance: the windows' variances differ by more than this tolerance).
    for other in (slice(75, 100), slice(100, 150), slice(149, 249), slice(151, 251)):
        assert not np.allclose(imm, _stan_inverse_mass_matrix(positions[other]), rtol=1e-6)
    _assert_near_the_true_variances(imm)
    step = float(tuning.step_size)
    assert np.isfinite(step) and step > 0
    assert abs(np.log(step / INITIAL_STEP_SIZE)) > np.log(2.0), step
    # The dual averaging aims at 0.8 in the terminal fast window (a step size left at 0.1
    # on the whitened target accepts nearly everything).
    late = float(np.mean(np.asarray(acceptance)[250:]))
    assert 0.6 < late < 0.95, late


def test_window_adaptation_step_size_follows_the_target():
    """On the whitened target a step size near 1 happens to accept about 80%: a step size
    that never adapts can pass the test above. Other targets must move it, and the
    acceptance of the terminal fast window must follow."""
    results = {target: _adapted_warm_up(jax.random.key(0), target) for target in (0.6, 0.95)}
    for target, (_, acceptance, _) in results.items():
        late = float(np.mean(np.asarray(acceptance)[250:]))
        assert abs(late - target) < 0.1, (target, late)
    low, high = (float(results[t][2].step_size) for t in (0.6, 0.95))
    assert low > 1.5 * high, (low, high)


def _gaussian_kernel(data) -> Kernel:
    nuts = import_blackjax().nuts
    kernel = nuts.build_kernel()

    def step(rng_key, state, tuning: Tuning):
        return kernel(
            rng_key, state, _gaussian_logdensity, tuning.step_size, tuning.inverse_mass_matrix
        )

    return Kernel(
        init=lambda position: nuts.init(position, _gaussian_logdensity),
        step=step,
        acceptance_rate=lambda info: info.acceptance_rate,
        position=lambda state: state.position,
        record=lambda state, info, tuning: {"x": state.position},
    )


def test_runner_feeds_the_window_adaptation():
    """Through :func:`run_chains`: the runner hands the adaptation the chain's positions and
    returns the adapted tuning, per chain."""
    run = run_chains(
        jax.random.key(1),
        _gaussian_kernel,
        window_adaptation(NUM_WARMUP, 0.8),
        np.ones((2, 3)),
        num_warmup=NUM_WARMUP,
        num_draws=2,
        initial_tuning=Tuning(np.asarray(INITIAL_STEP_SIZE), np.ones(3)),
        chain_method="vectorized",
    )
    imm = np.asarray(run.tuning.inverse_mass_matrix)
    assert imm.shape == (2, 3)
    for chain in imm:
        _assert_near_the_true_variances(chain)
    assert not np.array_equal(imm[0], imm[1])  # each chain its own estimate
    steps = np.asarray(run.tuning.step_size)
    assert np.all(np.isfinite(steps)) and np.all(
        np.abs(np.log(steps / INITIAL_STEP_SIZE)) > np.log(2.0)
    )


# ---------------------------------------------------------------------------
# Stephens relabelling through the public API
# ---------------------------------------------------------------------------

# Two far-apart clusters of unequal size (80 and 40 points, sd 0.5, centres 8 apart): in
# a short run no chain switches labels by itself, so the starts decide each chain's labels.
_CENTRES = np.array([[-4.0, -4.0], [4.0, 4.0]])


def _two_clusters() -> np.ndarray:
    rng = np.random.default_rng(21)
    return np.concatenate(
        [rng.normal(_CENTRES[0], 0.5, size=(80, 2)), rng.normal(_CENTRES[1], 0.5, size=(40, 2))]
    )


def _swapped_starts() -> Params:
    """Chain 0 has component 0 on the first cluster, chain 1 on the second (data units)."""
    weights = np.array([[2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    means = np.stack([_CENTRES, _CENTRES[::-1]])
    chol = np.broadcast_to(2.0 * np.eye(2), (2, 2, 2, 2)).copy()  # precision 4: sd 0.5
    return Params(weights, means, chol)


def _per_chain_disagreement(draws: np.ndarray) -> float:
    """max |chain-0 mean - chain-1 mean| / within-chain posterior sd over the scalars of
    (C, S, ...): small when the chains sample the same labelled posterior, large (here
    about 100 for the means) when their labels are swapped."""
    gap = np.abs(draws[0].mean(axis=0) - draws[1].mean(axis=0))
    return float(np.max(gap / draws.std(axis=1, ddof=1).mean(axis=0)))


def test_stephens_relabelling_through_the_api():
    model = bgmm.BayesianGMM(
        2,
        relabel="stephens",
        sampler="gibbs",
        num_chains=2,
        num_warmup=20,
        num_draws=50,
        seed=3,
        chain_method="sequential",
    )
    result = model.fit(_two_clusters(), initial=_swapped_starts())
    idata = result.idata
    assert result.settings["relabel"] == "stephens"
    assert idata.posterior.attrs["relabel"] == "stephens"

    perms = np.asarray(idata.sample_stats["label_permutation"].values)
    assert perms.shape == (2, 50, 2)
    assert np.issubdtype(perms.dtype, np.integer)
    np.testing.assert_array_equal(
        np.sort(perms, axis=-1), np.broadcast_to(np.arange(2), perms.shape)
    )

    means = np.asarray(idata.posterior["means"].values)  # (chain, draw, K, D), relabelled
    weights = np.asarray(idata.posterior["weights"].values)
    raw_means = undo_permutations(means, perms)
    raw_weights = undo_permutations(weights, perms)
    # The raw draws disagree: the chains started (and stayed) with swapped labels...
    np.testing.assert_allclose(raw_means[0].mean(axis=0), _CENTRES, atol=0.5)
    np.testing.assert_allclose(raw_means[1].mean(axis=0), _CENTRES[::-1], atol=0.5)
    assert _per_chain_disagreement(raw_means) > 20
    assert _per_chain_disagreement(raw_weights) > 5
    # ... so the permutations differ between the chains ...
    assert np.all(perms[0] != perms[1])
    # ... and the relabelled draws agree, component by component, within 5 posterior sds
    # (the chains' means differ by about sd * sqrt(2 / ESS) when they agree).
    assert _per_chain_disagreement(means) < 5
    assert _per_chain_disagreement(weights) < 5
    chol = np.asarray(idata.posterior["chol_precision"].values)
    assert chol.shape == (2, 50, 2, 2, 2)
    assert _per_chain_disagreement(chol[..., [0, 1, 1], [0, 0, 1]]) < 5
