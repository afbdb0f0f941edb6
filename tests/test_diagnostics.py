"""Label-invariant diagnostics and the detection of chains in other modes."""

import warnings

import numpy as np
import pytest

from bgmm.diagnostics import (
    chain_mcse,
    detect_component_disagreement,
    detect_mode_disagreement,
    invariant_diagnostics,
)


def _ar1(rng, shape, rho=0.5):
    """Stationary AR(1) draws along axis 1 with unit marginal variance."""
    eps = rng.standard_normal(shape)
    x = np.empty(shape)
    x[:, 0] = eps[:, 0]
    for t in range(1, shape[1]):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * eps[:, t]
    return x


def test_invariant_diagnostics_of_iid_draws():
    rng = np.random.default_rng(0)
    c, s = 4, 1000
    out = invariant_diagnostics({"lp": rng.standard_normal((c, s)) - 100.0})
    lp = out["lp"]
    assert set(lp) == {
        "mean",
        "sd",
        "mcse",
        "rhat",
        "ess_bulk",
        "ess_tail",
        "constant",
        "flagged",
        "message",
    }
    # Mean and sd of n = 4000 iid N(-100, 1) draws against the truth, with their exact
    # standard errors 1 / sqrt(n) and (normal fourth moment) 1 / sqrt(2 (n - 1)): |z| < 4.5,
    # P(false failure) < 2e-5 over the 2.
    n = c * s
    z = np.array([(lp["mean"] + 100.0) * np.sqrt(n), (lp["sd"] - 1.0) * np.sqrt(2 * (n - 1))])
    assert np.all(np.abs(z) < 4.5), z
    # Not z-tests: R-hat, ESS and MCSE are estimators with no MCSE of their own (no closed
    # form for their sampling sd); these bounds are wide ranges around their iid values 1, n
    # and 1 / sqrt(n).
    assert 0.99 < lp["rhat"] < 1.01
    assert 0.6 * n < lp["ess_bulk"] < 1.5 * n
    assert 0.6 * n < lp["ess_tail"] < 1.5 * n
    assert lp["mcse"] == pytest.approx(1 / np.sqrt(n), rel=0.3)
    assert not lp["constant"] and not lp["flagged"] and lp["message"] is None


def test_invariant_diagnostics_of_one_chain():
    rng = np.random.default_rng(1)
    out = invariant_diagnostics(
        {
            "lp": rng.standard_normal((1, 2000)),
            "drifting": np.linspace(0.0, 5.0, 2000)[None] + rng.standard_normal((1, 2000)),
        }
    )
    # Not z-tests (R-hat and ESS have no MCSE): wide ranges around the iid values 1 and 2000.
    assert 0.99 < out["lp"]["rhat"] < 1.01
    assert 1200 < out["lp"]["ess_bulk"] < 3000
    assert not out["lp"]["flagged"]
    # One chain's two halves disagree when it drifts.
    assert out["drifting"]["rhat"] > 1.1
    assert out["drifting"]["flagged"]
    assert "drifting" in out["drifting"]["message"]


def test_invariant_diagnostics_of_constant_and_nearly_constant_quantities():
    occupied = np.full((4, 500), 3.0)
    nearly = occupied.copy()
    nearly[1, 10:20] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = invariant_diagnostics({"num_occupied": occupied, "nearly": nearly})
    const = out["num_occupied"]
    assert const["constant"] and not const["flagged"] and const["message"] is None
    assert const["mean"] == 3.0 and const["sd"] == 0.0
    for key in ("rhat", "ess_bulk", "ess_tail", "mcse"):
        assert np.isnan(const[key])
    assert not out["nearly"]["constant"]
    assert np.isfinite(out["nearly"]["rhat"])
    with pytest.raises(ValueError, match="shape"):
        invariant_diagnostics({"lp": np.zeros(5)})


def test_mode_disagreement_flags_a_chain_shifted_by_fifty_nats():
    rng = np.random.default_rng(2)
    lp = -1200.0 + 3.0 * _ar1(rng, (4, 500))
    lp[2] -= 50.0
    out = detect_mode_disagreement(lp)
    assert out["chains_in_other_modes"] == [2]
    assert out["best_chain"] in (0, 1, 3)
    assert len(out["chain_lp_means"]) == 4
    assert out["z_scores"][2] > 5
    message = out["message"]
    assert message.startswith(f"chain 2 is in a different mode from chain {out['best_chain']}")
    assert f"{out['chain_lp_means'][2]:.1f} vs" in message
    assert "\n" not in message

    lp[3] -= 80.0
    out = detect_mode_disagreement(lp)
    assert out["chains_in_other_modes"] == [2, 3]
    assert out["message"].startswith("chains 2, 3 are in a different mode")
    assert " and " in out["message"]


def test_mode_disagreement_does_not_flag_chains_of_one_distribution():
    # Under agreement z is a difference of chain means over its standard error; flagging needs
    # z > 5 against the best of 4 chains, about 6 * P(N(0, 1) > 5) ~ 2e-6 per run if the MCSE
    # were exact (its estimation error raises that somewhat). 30 runs should never flag.
    rng = np.random.default_rng(3)
    for _ in range(30):
        out = detect_mode_disagreement(-500.0 + 4.0 * _ar1(rng, (4, 400)))
        assert out["chains_in_other_modes"] == []
        assert out["message"] is None
    # One chain: nothing to compare.
    out = detect_mode_disagreement(rng.standard_normal((1, 100)))
    assert out == {
        "chain_lp_means": out["chain_lp_means"],
        "chain_lp_mcse": out["chain_lp_mcse"],
        "z_scores": [0.0],
        "best_chain": 0,
        "chains_in_other_modes": [],
        "message": None,
    }


def test_mode_disagreement_needs_the_minimum_gap():
    rng = np.random.default_rng(4)
    lp = -10.0 + 0.01 * rng.standard_normal((3, 1000))
    lp[1] -= 0.5  # hundreds of standard errors, but half a nat
    assert detect_mode_disagreement(lp)["chains_in_other_modes"] == []
    assert detect_mode_disagreement(lp, min_gap=0.1)["chains_in_other_modes"] == [1]


def test_mode_disagreement_with_constant_or_infinite_chains():
    lp = np.full((3, 50), -10.0)
    lp[2] = -20.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = detect_mode_disagreement(lp)
    assert out["chains_in_other_modes"] == [2]
    lp[1, 5] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_mode_disagreement(lp)["chains_in_other_modes"] == [1, 2]


def _component_means(rng, c=4, s=500):
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    return centres + 0.1 * _ar1(rng, (c, s, 3, 2))


def test_component_disagreement_flags_a_shifted_chain():
    rng = np.random.default_rng(5)
    means = _component_means(rng)
    assert detect_component_disagreement(means) == []
    means[1, :, 0] += 1.0
    assert detect_component_disagreement(means) == [1]
    # A 2-2 split flags one pair; with two chains both are flagged.
    means[3, :, 0] += 1.0
    flagged = detect_component_disagreement(means)
    assert flagged in ([0, 2], [1, 3])
    assert detect_component_disagreement(means[:2]) == [0, 1]
    assert detect_component_disagreement(means[:1]) == []


def test_component_disagreement_has_no_false_flags():
    rng = np.random.default_rng(6)
    for _ in range(10):
        assert detect_component_disagreement(_component_means(rng, s=300)) == []


def test_chain_mcse_shape_and_value():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2000, 2, 2))
    mcse = chain_mcse(x)
    assert mcse.shape == (3, 2, 2)
    # Not a z-test: an MCSE estimate has no MCSE of its own; rtol 0.25 is a wide range
    # around the iid value 1 / sqrt(2000).
    np.testing.assert_allclose(mcse, 1 / np.sqrt(2000), rtol=0.25)


def test_empty_components_are_flagged_when_most_draws_have_one():
    from bgmm.diagnostics import empty_components_warning

    all_occupied = np.full((2, 100), 3)
    assert empty_components_warning(all_occupied, 3) is None
    # Half the draws with an empty component is not "most".
    half = np.concatenate([np.full((2, 50), 3), np.full((2, 50), 2)], axis=1)
    assert empty_components_warning(half, 3) is None
    mostly_two = np.where(np.arange(100) < 80, 2, 3)[None].repeat(2, axis=0)
    message = empty_components_warning(mostly_two, 3)
    assert "empty" in message and "80%" in message and "typically 2 occupied" in message


def test_too_many_components_are_reported_empty_in_the_summary():
    """Two clusters fitted with K = 5: the summary says components are empty."""
    import bgmm

    rng = np.random.default_rng(4)
    data = np.concatenate([rng.normal(-5, 1, (60, 2)), rng.normal(5, 1, (60, 2))])
    result = (
        bgmm.BayesianGMM(
            5,
            num_chains=2,
            num_warmup=200,
            num_draws=100,
            chain_method="sequential",
            random_state=2,
        )
        .fit(data)
        .result_
    )
    empty = [w for w in result.summary["warnings"] if w.startswith("empty components")]
    assert len(empty) == 1, result.summary["warnings"]
    assert "of the 5 components" in empty[0]
