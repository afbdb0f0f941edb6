"""Relabelling recovers known permutations and makes swapped chains agree."""

import numpy as np
import pytest

from bgmm.relabel import (
    RELABEL_METHODS,
    apply_permutations,
    classification_probabilities,
    expected_counts,
    order_by_weight,
    pivot_permutations,
    relabel_draws,
    stephens_permutations,
    undo_permutations,
)


def _well_separated_draws(rng, c=2, s=300, k=3, d=2):
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])[:k, :d]
    means = centres + 0.1 * rng.standard_normal((c, s, k, d))
    chol = np.broadcast_to(np.eye(d) * 2.0, (c, s, k, d, d)) + 0.05 * np.tril(
        rng.standard_normal((c, s, k, d, d)), -1
    )
    weights = rng.dirichlet([30, 20, 10][:k], size=(c, s))
    lp = -np.sum((means - centres) ** 2, axis=(-2, -1))
    return weights, means, chol, lp


def test_pivot_recovers_known_permutations():
    rng = np.random.default_rng(0)
    weights, means, chol, lp = _well_separated_draws(rng)
    scramble = np.stack(
        [[rng.permutation(3) for _ in range(means.shape[1])] for _ in range(means.shape[0])]
    )
    # Labels are recovered up to one global permutation: the pivot's. Keep the pivot's labels.
    scramble[np.unravel_index(np.argmax(lp), lp.shape)] = np.arange(3)
    scrambled = [apply_permutations(a, scramble) for a in (weights, means, chol)]
    perms = pivot_permutations(scrambled[1], scrambled[2], lp)
    for original, mixed in zip((weights, means, chol), scrambled, strict=True):
        np.testing.assert_array_equal(apply_permutations(mixed, perms), original)
    np.testing.assert_array_equal(undo_permutations(apply_permutations(means, perms), perms), means)


def test_relabelling_makes_label_swapped_chains_agree():
    import arviz as az

    rng = np.random.default_rng(1)
    weights, means, chol, lp = _well_separated_draws(rng)
    swapped = np.broadcast_to(np.array([[0, 1, 2], [2, 0, 1]])[:, None, :], weights.shape)
    mixed = [apply_permutations(a, swapped) for a in (weights, means, chol)]
    before = float(np.max(az.rhat(mixed[0][..., 0])))
    perms = pivot_permutations(mixed[1], mixed[2], lp)
    after = float(np.max([az.rhat(apply_permutations(mixed[0], perms)[..., j]) for j in range(3)]))
    # Not z-tests (R-hat has no MCSE): the users' warning threshold 1.01 on synthetic iid
    # draws whose labels the relabelling must restore, and 1.1 for the swapped chains.
    assert before > 1.1
    assert after <= 1.01


@pytest.mark.parametrize("shape", [(1, 5, 4, 3), (2, 3, 1, 2)])
def test_apply_and_undo_are_inverse(shape):
    rng = np.random.default_rng(2)
    values = rng.standard_normal((*shape, 2))
    c, s, k = shape[:3]
    perms = np.stack([[rng.permutation(k) for _ in range(s)] for _ in range(c)])
    np.testing.assert_array_equal(
        undo_permutations(apply_permutations(values, perms), perms), values
    )


def _random_permutations(rng, c, s, k):
    return np.stack([[rng.permutation(k) for _ in range(s)] for _ in range(c)])


def _relabel_responsibilities(p, perms):
    """apply_permutations for (C, S, N, K): the component is on axis 3."""
    return np.moveaxis(apply_permutations(np.moveaxis(p, 3, 2), perms), 2, 3)


def _clustered_responsibilities(rng, c=3, s=200, n=60, k=3):
    """Draws of p_ik with clear clusters: observation i belongs mostly to component i % k."""
    truth = np.arange(n) % k
    logits = 3.0 * np.eye(k)[truth] + 0.7 * rng.standard_normal((c, s, n, k))
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


def _data_near(rng, centres, per_cluster=30):
    return np.concatenate([ctr + 0.5 * rng.standard_normal((per_cluster, 2)) for ctr in centres])


def test_stephens_recovers_known_permutations():
    rng = np.random.default_rng(3)
    p = _clustered_responsibilities(rng)
    c, s, _, k = p.shape
    params = rng.standard_normal((c, s, k, 2))  # stands for any per-component array
    scramble = _random_permutations(rng, c, s, k)
    scramble[0, 0] = np.arange(k)
    mixed_p = _relabel_responsibilities(p, scramble)
    mixed_params = apply_permutations(params, scramble)
    perms = stephens_permutations(mixed_p)
    # Labels are recovered up to one global permutation, read off draw (0, 0) (unscrambled).
    glob = np.broadcast_to(perms[0, 0], perms.shape)
    np.testing.assert_array_equal(
        _relabel_responsibilities(mixed_p, perms), _relabel_responsibilities(p, glob)
    )
    np.testing.assert_array_equal(
        apply_permutations(mixed_params, perms), apply_permutations(params, glob)
    )
    # Started from the answer, it stays there.
    exact = np.argsort(scramble, axis=-1)
    np.testing.assert_array_equal(stephens_permutations(mixed_p, initial=exact), exact)


def test_classification_probabilities_match_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(4)
    weights, means, chol, _ = _well_separated_draws(rng, c=2, s=3)
    data = _data_near(rng, means[0, 0], per_cluster=4)
    p = classification_probabilities(data, weights, means, chol)
    assert p.shape == (2, 3, 12, 3)
    cov = np.linalg.inv(chol @ np.swapaxes(chol, -1, -2))
    for c, s in np.ndindex(2, 3):
        dens = np.stack(
            [
                weights[c, s, j] * multivariate_normal(means[c, s, j], cov[c, s, j]).pdf(data)
                for j in range(3)
            ],
            axis=-1,
        )
        np.testing.assert_allclose(p[c, s], dens / dens.sum(-1, keepdims=True), atol=1e-12)


def test_expected_counts_sum_the_classification_probabilities():
    rng = np.random.default_rng(6)
    weights, means, chol, _ = _well_separated_draws(rng, c=2, s=3)
    data = _data_near(rng, means[0, 0], per_cluster=5)
    counts = expected_counts(data, weights, means, chol)
    assert counts.shape == (2, 3, 3)
    probabilities = classification_probabilities(data, weights, means, chol)
    np.testing.assert_allclose(counts, probabilities.sum(axis=2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts.sum(-1), len(data), rtol=1e-12)


def test_pivot_and_stephens_agree_on_well_separated_draws():
    rng = np.random.default_rng(5)
    weights, means, chol, lp = _well_separated_draws(rng, c=2, s=200)
    data = _data_near(rng, np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]))
    scramble = _random_permutations(rng, *weights.shape)
    mixed = [apply_permutations(a, scramble) for a in (weights, means, chol)]
    p = classification_probabilities(data, *mixed)
    pivot = pivot_permutations(mixed[1], mixed[2], lp)
    stephens = stephens_permutations(p)
    # The same labelling up to one global permutation g: stephens[c, s] = pivot[c, s][g].
    glob = np.argsort(pivot[0, 0])[stephens[0, 0]]
    np.testing.assert_array_equal(stephens, pivot[:, :, glob])
    # Started from the pivot's labelling, Stephens keeps it.
    np.testing.assert_array_equal(stephens_permutations(p, initial=pivot), pivot)


def test_stephens_makes_label_swapped_chains_agree():
    import arviz as az

    rng = np.random.default_rng(6)
    weights, means, chol, _ = _well_separated_draws(rng)
    data = _data_near(rng, np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]))
    swapped = np.broadcast_to(np.array([[0, 1, 2], [2, 0, 1]])[:, None, :], weights.shape)
    mixed = [apply_permutations(a, swapped) for a in (weights, means, chol)]
    before = float(np.max(az.rhat(mixed[0][..., 0])))
    perms = stephens_permutations(classification_probabilities(data, *mixed))
    after = float(np.max([az.rhat(apply_permutations(mixed[0], perms)[..., j]) for j in range(3)]))
    # Not z-tests (R-hat has no MCSE): the users' warning threshold 1.01 on synthetic iid
    # draws whose labels the relabelling must restore, and 1.1 for the swapped chains.
    assert before > 1.1
    assert after <= 1.01


def test_stephens_edge_cases_and_validation():
    rng = np.random.default_rng(7)
    one = np.ones((2, 3, 5, 1))
    np.testing.assert_array_equal(stephens_permutations(one), np.zeros((2, 3, 1), dtype=int))
    p = _clustered_responsibilities(rng, c=1, s=4, n=6)
    with pytest.raises(ValueError, match="shape"):
        stephens_permutations(p[0])
    with pytest.raises(ValueError, match="shape"):
        stephens_permutations(p, initial=np.zeros((1, 4, 2), dtype=int))
    with pytest.raises(ValueError, match="permutation"):
        stephens_permutations(p, initial=np.zeros((1, 4, 3), dtype=int))
    # Zeros in p (and so possibly in q) stay finite.
    hard = np.eye(3)[np.arange(6) % 3][None, None].repeat(4, axis=1)
    assert np.array_equal(stephens_permutations(hard), np.broadcast_to(np.arange(3), (1, 4, 3)))
    assert RELABEL_METHODS == ("none", "pivot", "stephens")


def test_stephens_warns_when_it_runs_out_of_iterations():
    rng = np.random.default_rng(8)
    p = _clustered_responsibilities(rng, c=2, s=50)
    scramble = _random_permutations(rng, 2, 50, 3)
    with pytest.warns(RuntimeWarning, match="max_iterations"):
        stephens_permutations(_relabel_responsibilities(p, scramble), max_iterations=1)


def _draws_dict(weights, means, chol, lp):
    return {"weights": weights, "means": means, "chol_precision": chol, "lp": lp}


@pytest.mark.parametrize("method", ["pivot", "stephens"])
def test_relabelled_components_come_in_order_of_weight(method):
    """Two runs whose draws differ only in their labels (as an HMC and a Gibbs run on the same
    data may) report the components in the same order, heaviest first, and
    label_permutation still maps the sampler's labels to the reported ones."""
    rng = np.random.default_rng(9)
    # Weights 10 : 30 : 20 in centre order: the pivot's labels are not the weights' order.
    weights, means, chol, lp = _well_separated_draws(rng, s=100)
    weights = weights[..., [2, 0, 1]]
    data = _data_near(rng, np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]))
    scramble = _random_permutations(rng, *weights.shape)  # the pivot draw's labels too
    runs = [
        relabel_draws(_draws_dict(weights, means, chol, lp), data, method, seed=0),
        relabel_draws(
            _draws_dict(*(apply_permutations(a, scramble) for a in (weights, means, chol)), lp),
            data,
            method,
            seed=0,
        ),
    ]
    for name in ("weights", "means", "chol_precision"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    weights_mean = runs[0]["weights"].mean(axis=(0, 1))
    assert np.all(np.diff(weights_mean) <= 0), weights_mean
    # Heaviest first: the component at (4, 0), then (0, 4), then (0, 0).
    np.testing.assert_allclose(
        runs[0]["means"].mean(axis=(0, 1)), [[4.0, 0.0], [0.0, 4.0], [0.0, 0.0]], atol=0.05
    )
    for run, raw in zip(runs, (weights, apply_permutations(weights, scramble)), strict=True):
        perms = run["label_permutation"]
        np.testing.assert_array_equal(apply_permutations(raw, perms), run["weights"])
        np.testing.assert_array_equal(undo_permutations(run["weights"], perms), raw)


def test_relabel_none_keeps_the_sampler_order():
    rng = np.random.default_rng(10)
    weights, means, chol, lp = _well_separated_draws(rng, s=20)
    weights = weights[..., ::-1]  # lightest first
    data = _data_near(rng, np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]))
    out = relabel_draws(_draws_dict(weights, means, chol, lp), data, "none", seed=0)
    np.testing.assert_array_equal(out["weights"], weights)
    np.testing.assert_array_equal(out["means"], means)
    assert "label_permutation" not in out
    assert out["num_occupied"].shape == lp.shape


def test_order_by_weight_composes_with_the_permutations():
    weights = np.array([[[0.2, 0.5, 0.3], [0.5, 0.3, 0.2]]])  # (1, 2, 3)
    perms = np.array([[[0, 1, 2], [2, 0, 1]]])  # relabelled: [.2 .5 .3] and [.2 .5 .3]
    ordered = order_by_weight(weights, perms)
    np.testing.assert_array_equal(ordered, [[[1, 2, 0], [0, 1, 2]]])
    np.testing.assert_array_equal(apply_permutations(weights, ordered), [[[0.5, 0.3, 0.2]] * 2])
    # Ties keep the relabelled order.
    even = np.full((1, 2, 3), 1 / 3)
    np.testing.assert_array_equal(order_by_weight(even, perms), perms)
