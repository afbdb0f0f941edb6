"""Relabelling recovers known permutations and makes swapped chains agree."""

import numpy as np
import pytest

from bgmm.relabel import apply_permutations, pivot_permutations, undo_permutations


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
