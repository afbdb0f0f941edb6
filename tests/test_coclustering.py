"""Co-clustering: the posterior similarity matrix, sampled partitions, the Binder and VI point
partitions, and the similarity heatmap. Draws are built synthetically (no MCMC run)."""

import itertools
import os

import matplotlib
import numpy as np
import pytest

from bgmm.coclustering import (
    binder_partition,
    expected_binder_loss,
    expected_vi,
    point_partition,
    sample_allocations,
    similarity_matrix,
    vi_partition,
)
from bgmm.data.subsample import subsample_rows
from bgmm.plots import similarity as similarity_plot

matplotlib.use("Agg")

CENTRES = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])


def _draws(c: int, s: int, jitter: float, seed: int, chol_scale: float = 1.0):
    """Draws of 3 components around CENTRES: weights (C, S, 3), means (C, S, 3, 2) and
    chol_precision (C, S, 3, 2, 2), lower triangular with a positive diagonal."""
    rng = np.random.default_rng(seed)
    k, d = CENTRES.shape
    weights = rng.dirichlet(20 * np.ones(k), size=(c, s))
    means = CENTRES + jitter * rng.standard_normal((c, s, k, d))
    chol = np.zeros((c, s, k, d, d))
    chol[..., 0, 0] = chol_scale * rng.uniform(0.8, 1.2, (c, s, k))
    chol[..., 1, 1] = chol_scale * rng.uniform(0.8, 1.2, (c, s, k))
    chol[..., 1, 0] = 0.2 * rng.standard_normal((c, s, k))
    return weights, means, chol


def _data(n: int, seed: int, spread: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, 3, n)] + spread * rng.standard_normal((n, 2))


def _probabilities(data, weights, means, chol) -> np.ndarray:
    """Classification probabilities (C, S, N, K) written out from the Gaussian density."""
    diff = data[None, None, :, None, :] - means[:, :, None]  # (C, S, N, K, D)
    projected = np.einsum("csnkd,cskde->csnke", diff, chol)  # L^T (y - mu)
    log_det = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (C, S, K)
    logits = np.log(weights)[:, :, None] + log_det[:, :, None] - 0.5 * np.sum(projected**2, -1)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def _set_partitions(n: int):
    """Every partition of n items, as restricted growth strings (877 for n = 7)."""

    def grow(prefix, top):
        if len(prefix) == n:
            yield np.array(prefix)
            return
        for k in range(top + 2):
            yield from grow([*prefix, k], max(top, k))

    yield from grow([0], 0)


def _mixed_psm(n: int, seed: int) -> np.ndarray:
    """A valid similarity matrix with conflicting evidence: a weighted mix of the co-clustering
    matrices of random partitions."""
    rng = np.random.default_rng(seed)
    partitions = rng.integers(0, 3, size=(6, n))
    weights = rng.dirichlet(np.ones(6))
    return np.einsum("t,tij->ij", weights, partitions[:, :, None] == partitions[:, None, :])


def _noisy_allocations(n: int, t: int, seed: int) -> np.ndarray:
    """T partitions: two base partitions, each item relabelled at random with probability 0.3."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 3, size=(2, n))
    out = bases[rng.integers(0, 2, t)]
    flip = rng.random((t, n)) < 0.3
    return np.where(flip, rng.integers(0, 4, (t, n)), out)


def _vi(a: np.ndarray, b: np.ndarray) -> float:
    """Variation of information in bits, H(a) + H(b) - 2 I(a, b), from joint frequencies."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0 / len(a))
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mutual = np.sum(joint[nz] * np.log2(joint[nz] / np.outer(pa, pb)[nz]))
    entropy = -sum(np.sum(p[p > 0] * np.log2(p[p > 0])) for p in (pa, pb))
    return float(entropy - 2 * mutual)


def _ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie 1985)."""
    a = np.unique(a, return_inverse=True)[1].ravel()
    b = np.unique(b, return_inverse=True)[1].ravel()
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)

    def pairs(x):
        return np.sum(x * (x - 1) / 2)

    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array(len(a)))
    return float((index - expected) / ((rows + cols) / 2 - expected))


def _no_single_move_helps(labels: np.ndarray, loss) -> bool:
    """True when moving any one item to another cluster or a new one does not lower ``loss``."""
    here = loss(labels)
    for i in range(len(labels)):
        for k in range(labels.max() + 2):
            moved = labels.copy()
            moved[i] = k
            if loss(moved) < here - 1e-9:
                return False
    return True


# ----------------------------------------------------------------------------------------------
# the similarity matrix
# ----------------------------------------------------------------------------------------------


def test_similarity_is_symmetric_in_the_unit_interval_with_unit_diagonal():
    weights, means, chol = _draws(2, 40, jitter=0.5, seed=0)
    data = _data(30, seed=1)
    sim = similarity_matrix(data, weights, means, chol)
    assert sim.matrix.shape == (30, 30)
    np.testing.assert_array_equal(sim.rows, np.arange(30))
    np.testing.assert_array_equal(sim.matrix, sim.matrix.T)
    np.testing.assert_array_equal(np.diag(sim.matrix), 1.0)
    assert sim.matrix.min() >= 0.0 and sim.matrix.max() <= 1.0
    assert 0.05 < np.median(sim.matrix) < 0.95  # overlapping clusters: not a trivial matrix
    for batch_draws in (1, 7, 80, 1000):  # batches (the last padded) change nothing
        again = similarity_matrix(data, weights, means, chol, batch_draws=batch_draws)
        np.testing.assert_allclose(again.matrix, sim.matrix, rtol=1e-12, atol=1e-14)


def test_similarity_equals_enumeration_of_all_allocations():
    """Per draw, P(z_i = z_j) summed over all K^N joint allocations of independent rows, then
    averaged over the draws: the exact formula mean_s P_s P_s^T off the diagonal."""
    weights, means, chol = _draws(2, 3, jitter=0.8, seed=2)
    data = _data(5, seed=3)
    p = _probabilities(data, weights, means, chol).reshape(6, 5, 3)
    brute = np.zeros((5, 5))
    for z in itertools.product(range(3), repeat=5):
        z = np.array(z)
        chance = np.prod(p[:, np.arange(5), z], axis=1).mean()  # P(z), averaged over draws
        brute += chance * (z[:, None] == z[None, :])
    sim = similarity_matrix(data, weights, means, chol, batch_draws=4)
    np.testing.assert_allclose(sim.matrix, brute, rtol=1e-10, atol=1e-12)
    # Not sum_k p_ik^2 on the diagonal: row i is always with itself.
    assert np.all((p**2).sum(axis=-1).mean(axis=0) < 0.99)


def test_similarity_agrees_with_monte_carlo_over_sampled_allocations():
    """The co-clustering frequency over T sampled partitions, one per draw, estimates the
    similarity with sd sqrt(sum_s q_s (1 - q_s)) / T <= sqrt(PSM (1 - PSM) / T) (q_s: the
    per-draw chance). |estimate - exact| / that bound < 4.5 on each of 28 pairs: a false
    failure rate below 28 x 6.8e-6 = 2e-4 for a correct implementation (normal approximation,
    T = 2000 and PSM in [0.02, 0.98])."""
    weights, means, chol = _draws(2, 1000, jitter=0.7, seed=4)
    data = _data(8, seed=5)
    sim = similarity_matrix(data, weights, means, chol)
    pairs = np.triu_indices(8, 1)
    exact = sim.matrix[pairs]
    assert exact.min() > 0.02 and exact.max() < 0.98
    allocations = sample_allocations(data, weights, means, chol, num_partitions=2000, seed=6)
    assert allocations.shape == (2000, 8) and set(np.unique(allocations)) <= {0, 1, 2}
    estimate = np.mean(allocations[:, :, None] == allocations[:, None, :], axis=0)[pairs]
    mcse = np.sqrt(exact * (1 - exact) / 2000)
    assert np.max(np.abs(estimate - exact) / mcse) < 4.5
    # The test has power: the product of the mean memberships, which forgets that the draws
    # vary together, is far from the sampled frequencies.
    q = _probabilities(data, weights, means, chol).mean(axis=(0, 1))
    assert np.max(np.abs(estimate - (q @ q.T)[pairs]) / mcse) > 10


def test_similarity_subsamples_above_max_rows():
    weights, means, chol = _draws(1, 20, jitter=0.3, seed=7)
    data = _data(300, seed=8)
    sim = similarity_matrix(data, weights, means, chol, max_rows=50, seed=3)
    assert sim.matrix.shape == (50, 50) and sim.rows.shape == (50,)
    assert np.all(np.diff(sim.rows) > 0) and 0 <= sim.rows[0] and sim.rows[-1] < 300
    np.testing.assert_array_equal(sim.rows, subsample_rows(np.arange(300), 50, seed=3))
    direct = similarity_matrix(data[sim.rows], weights, means, chol, max_rows=1000)
    np.testing.assert_allclose(sim.matrix, direct.matrix, rtol=1e-12, atol=1e-14)
    other_seed = similarity_matrix(data, weights, means, chol, max_rows=50, seed=4)
    assert not np.array_equal(other_seed.rows, sim.rows)
    np.testing.assert_array_equal(
        similarity_matrix(data, weights, means, chol, max_rows=300).rows, np.arange(300)
    )


# ----------------------------------------------------------------------------------------------
# expected losses and point partitions
# ----------------------------------------------------------------------------------------------


def test_expected_losses_match_their_definitions():
    psm = _mixed_psm(6, seed=0)
    allocations = _noisy_allocations(6, 10, seed=1)
    for labels in _set_partitions(6):
        brute = sum(
            abs(float(labels[i] == labels[j]) - psm[i, j])
            for i in range(6)
            for j in range(i + 1, 6)
        )
        assert expected_binder_loss(labels, psm) == pytest.approx(brute, abs=1e-12)
        vi = np.mean([_vi(labels, a) for a in allocations])
        assert expected_vi(labels * 7 + 3, allocations) == pytest.approx(vi, abs=1e-12)
    assert expected_vi(allocations[0], allocations[:1]) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binder_partition_reaches_the_minimum_over_all_partitions(seed):
    psm = _mixed_psm(7, seed)
    weights, means, chol = _draws(1, 50, jitter=0.6, seed=seed)
    from_draws = similarity_matrix(_data(7, seed=10 + seed), weights, means, chol)
    for similarity in (psm, from_draws):
        best = min(expected_binder_loss(p, similarity) for p in _set_partitions(7))
        labels = binder_partition(similarity, seed=seed)
        assert expected_binder_loss(labels, similarity) == pytest.approx(best, abs=1e-10)
        sizes = np.bincount(labels)
        assert np.all(sizes > 0) and np.all(np.diff(sizes) <= 0)  # 0..m-1, largest first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vi_partition_reaches_the_minimum_over_all_partitions(seed):
    allocations = _noisy_allocations(7, 15, seed)
    best = min(expected_vi(p, allocations) for p in _set_partitions(7))
    labels = vi_partition(allocations, seed=seed)
    assert expected_vi(labels, allocations) == pytest.approx(best, abs=1e-10)
    sizes = np.bincount(labels)
    assert np.all(sizes > 0) and np.all(np.diff(sizes) <= 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweeps_reach_a_partition_no_single_move_improves(seed):
    """From one start and no random starts, the result is a local minimum that the start was
    not: only the sweeps can have made it one. Binder: from everything together; VI: from the
    best sampled partition (the sampled partitions are always candidates), which is noisy."""
    psm = _mixed_psm(60, seed)
    together = np.zeros((1, 60), int)
    labels = binder_partition(psm, together, num_starts=0)
    assert expected_binder_loss(labels, psm) < expected_binder_loss(together[0], psm) - 1
    assert _no_single_move_helps(labels, lambda c: expected_binder_loss(c, psm))

    rng = np.random.default_rng(seed)
    flip = rng.random((30, 60)) < 0.3
    allocations = np.where(flip, rng.integers(0, 4, (30, 60)), rng.integers(0, 4, 60))
    labels = vi_partition(allocations, num_starts=0, refine_best=1)
    assert _no_single_move_helps(labels, lambda c: expected_vi(c, allocations))
    start = min(expected_vi(a, allocations) for a in allocations)
    assert expected_vi(labels, allocations) < start - 0.1


def test_move_prices_equal_the_change_in_expected_loss():
    """The search prices a move from running per-cluster sums (private classes, tested here
    because a mispriced move can still end at a partition that looks good): for every item and
    every cluster, new or existing, the price difference is the change in the expected loss."""
    from bgmm.partitions import _BinderClusters, _nlogn, _VIClusters

    rng = np.random.default_rng(13)
    psm = _mixed_psm(15, seed=6)
    w = 1.0 - 2.0 * psm
    np.fill_diagonal(w, 0.0)
    allocations = _noisy_allocations(15, 12, seed=7)
    step = np.diff(_nlogn(np.arange(17)))
    labels = rng.integers(0, 4, 15)
    searches = [
        (_BinderClusters(w), lambda c: expected_binder_loss(c, psm)),
        (_VIClusters(allocations, step), lambda c: 15 * expected_vi(c, allocations)),
    ]
    for clusters, loss in searches:
        for i, k in enumerate(labels):
            clusters.add(i, int(k))
        for i in range(15):
            costs = clusters.join_costs(i)
            assert len(costs) > labels.max() + 1  # a new cluster is among the choices
            for k in range(len(costs)):
                moved = labels.copy()
                moved[i] = k
                change = loss(moved) - loss(labels)
                assert costs[k] - costs[labels[i]] == pytest.approx(change, abs=1e-9)


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_point_partition_recovers_well_separated_clusters(loss):
    rng = np.random.default_rng(9)
    truth = rng.permutation(np.repeat([0, 1, 2], [20, 30, 40]))
    data = 10 * CENTRES[truth] + 0.5 * rng.standard_normal((90, 2))
    weights, means, chol = _draws(2, 50, jitter=0.05, seed=10, chol_scale=2.0)
    result = point_partition(data, weights, 10 * means, chol, loss=loss)
    assert _ari(result.labels, truth) == 1.0
    assert _ari(result.labels, np.roll(truth, 1)) < 0.5  # the index can tell partitions apart
    np.testing.assert_array_equal(np.bincount(result.labels), [40, 30, 20])
    np.testing.assert_array_equal(result.rows, np.arange(90))
    assert result.loss == loss and result.expected_loss < 1e-3


# ----------------------------------------------------------------------------------------------
# the heatmap
# ----------------------------------------------------------------------------------------------


def test_plot_writes_a_png_whose_title_states_the_subsample(tmp_path, monkeypatch):
    titles = []
    save = similarity_plot._save

    def recording_save(fig, path):
        titles.append(fig.axes[0].get_title())
        return save(fig, path)

    monkeypatch.setattr(similarity_plot, "_save", recording_save)
    weights, means, chol = _draws(1, 20, jitter=0.3, seed=11)
    data = _data(500, seed=12)
    sim = similarity_matrix(data, weights, means, chol, max_rows=100)
    labels = binder_partition(sim, num_starts=1)
    out = similarity_plot.plot_similarity(
        sim, labels, tmp_path / "a" / "psm.png", num_rows_total=500
    )
    assert out == tmp_path / "a" / "psm.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(out.parent) == ["psm.png"]  # no temporary file left
    assert "100 of 500 rows" in titles[-1]
    similarity_plot.plot_similarity(sim, labels, tmp_path / "b.png")
    assert "subsample" in titles[-1]
    whole = similarity_matrix(data[:60], weights, means, chol)
    similarity_plot.plot_similarity(whole, np.zeros(60, int), tmp_path / "c.png", num_rows_total=60)
    assert "subsample" not in titles[-1] and "60 rows" in titles[-1]


def test_plot_orders_rows_cluster_by_cluster():
    psm = _mixed_psm(12, seed=5)
    labels = np.array([1, 0, 2, 0, 1, 1, 2, 2, 2, 1, 2, 0])  # sizes 3, 4, 5
    order = similarity_plot.similarity_order(psm, labels)
    assert sorted(order) == list(range(12))
    np.testing.assert_array_equal(labels[order], np.repeat([2, 1, 0], [5, 4, 3]))
    for k in range(3):
        members = order[labels[order] == k]
        typical = [psm[i, labels == k].mean() for i in members]
        assert np.all(np.diff(typical) <= 1e-12)
