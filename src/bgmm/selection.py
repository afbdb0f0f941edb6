"""Choosing the number of components and the covariance structure by PSIS-LOO.

Each model of the grid is fitted with the same options; its expected log pointwise
predictive density (elpd) is estimated by Pareto-smoothed importance sampling leave-one-out
(Vehtari, Gelman and Gabry 2017, ArviZ's ``loo``) from the stored pointwise
log-likelihood. Models are compared with the best by the difference of their pointwise
elpd and its standard error, sqrt(N var(d_i)), which is far smaller than either model's
own standard error when the models predict alike. The rule (docs/design.md section 15):
among the models whose elpd is within ``SE_RULE`` standard errors of the difference from
the best, the one with the fewest parameters (then the smallest K) is chosen, since the
data cannot tell them apart and the simpler one is easier to read.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bgmm.errors import UserError

__all__ = [
    "SE_RULE",
    "SPARSE_CONCENTRATION",
    "Selection",
    "SparseMixture",
    "check_grid",
    "num_parameters",
    "parse_components",
    "select",
    "sparse_mixture",
]

# A model within this many standard errors (of its elpd difference from the best) of the
# best is as good as the data can tell.
SE_RULE = 2.0
# Pareto k above this: the observation's importance weights are unreliable (ArviZ's limit
# for S >= 2,000 draws; Vehtari et al. 2024).
PARETO_K_LIMIT = 0.7
# The Dirichlet concentration of an overfitted sparse mixture: small enough that
# superfluous components empty (Malsiner-Walli, Fruehwirth-Schnatter and Gruen 2016 use
# 0.01 for K up to about 10).
SPARSE_CONCENTRATION = 0.01


def num_parameters(n_components: int, num_features: int, covariance_type: str) -> int:
    """Free parameters of a mixture: K - 1 weights, K x D means and the covariances
    (full: K D (D + 1) / 2; diag: K D; tied: D (D + 1) / 2; spherical: K)."""
    k, d = n_components, num_features
    covariances = {
        "full": k * d * (d + 1) // 2,
        "diag": k * d,
        "tied": d * (d + 1) // 2,
        "spherical": k,
    }[covariance_type]
    return k - 1 + k * d + covariances


@dataclass
class Selection:
    """The grid's fits, their scores and the chosen model.

    Attributes
    ----------
    table : list of dict
        One row per model, best elpd first: ``k``, ``covariance``, ``elpd_loo``, ``se``,
        ``p_loo``, ``elpd_diff`` and ``se_diff`` (from the best), ``num_parameters``,
        ``pareto_k_max``, ``pareto_k_bad`` (observations with k > 0.7), ``rhat_max``,
        ``ess_bulk_min``, ``converged``, ``chosen``, ``seconds``, ``warnings``.
    best : dict
        ``{"k": ..., "covariance": ...}`` of the chosen model.
    model : BayesianGMM
        The chosen model, fitted.
    models : dict
        Every fitted model by ``(k, covariance)``.
    rule : str
        How the model was chosen, in words.
    sparse : SparseMixture or None
        The overfitted sparse mixture, when it was fitted too.
    """

    table: list[dict[str, Any]]
    best: dict[str, Any]
    model: Any
    models: dict[tuple[int, str], Any] = field(repr=False)
    rule: str = ""
    sparse: SparseMixture | None = None

    def to_dict(self) -> dict[str, Any]:
        """``selection.json``: ``best``, ``rule``, ``models`` (the table) and ``sparse``."""
        record = {"best": self.best, "rule": self.rule, "models": self.table}
        if self.sparse is not None:
            record["sparse"] = self.sparse.to_dict()
        return record

    def report(self) -> str:
        """The table as printed by ``bgmm select``."""
        header = (
            f"{'K':>3} {'covariance':<10} {'elpd_loo':>11} {'se':>8} {'elpd_diff':>10} "
            f"{'se_diff':>8} {'p_loo':>7} {'params':>6} {'k>0.7':>5} {'r_hat':>6}"
        )
        lines = [header]
        for row in self.table:
            mark = "  <- chosen" if row["chosen"] else ""
            lines.append(
                f"{row['k']:>3} {row['covariance']:<10} {row['elpd_loo']:>11.2f} "
                f"{row['se']:>8.2f} {row['elpd_diff']:>10.2f} {row['se_diff']:>8.2f} "
                f"{row['p_loo']:>7.2f} {row['num_parameters']:>6} {row['pareto_k_bad']:>5} "
                f"{row['rhat_max']:>6.3f}{mark}"
            )
        lines.append(f"rule: {self.rule}")
        if self.sparse is not None:
            lines.append(self.sparse.report())
        for row in self.table:
            for warning in row["warnings"]:
                lines.append(f"warning: K = {row['k']}, {row['covariance']}: {warning}")
        return "\n".join(lines)


@dataclass
class SparseMixture:
    """An overfitted mixture with a sparse Dirichlet prior on the weights.

    Attributes
    ----------
    model : BayesianGMM
        The fitted overfitted model (K components, concentration ``concentration``).
    occupied : dict of int to float
        Posterior probability of each number of occupied components (components that hold
        at least one observation: sampled allocations for Gibbs, expected counts >= 1 for
        HMC and NUTS).
    concentration : float
    """

    model: Any
    occupied: dict[int, float]
    concentration: float

    @property
    def most_probable(self) -> int:
        """The number of occupied components with the highest posterior probability."""
        return max(self.occupied, key=self.occupied.get)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": int(self.model.n_components),
            "concentration": self.concentration,
            "occupied": {str(k): p for k, p in self.occupied.items()},
            "most_probable": self.most_probable,
        }

    def report(self) -> str:
        shares = ", ".join(f"{k}: {p:.3g}" for k, p in self.occupied.items())
        return (
            f"sparse overfitted mixture (K = {self.model.n_components}, concentration "
            f"{self.concentration:g}): posterior of the number of occupied components "
            f"{{{shares}}}, most probable {self.most_probable}"
        )


def sparse_mixture(
    X,
    n_components: int = 10,
    concentration: float = SPARSE_CONCENTRATION,
    *,
    feature_names: list[str] | None = None,
    progress: bool = False,
    source: str = "data",
    **options: Any,
) -> SparseMixture:
    """Fit an overfitted mixture whose sparse Dirichlet prior empties the components the
    data do not need, and report the posterior of how many are occupied.

    The priors are the default ones on standardised data with every concentration set to
    ``concentration`` (Malsiner-Walli et al. 2016). Empty components' weights mix slowly
    under HMC and NUTS; their number of occupied components is label-invariant and mixes
    well, and Gibbs samples the allocations exactly.

    Parameters
    ----------
    X : array-like or DataFrame, shape (N, D)
    n_components : int
        K, more than the data are expected to need.
    concentration : float
        The Dirichlet concentration of every weight.
    feature_names, progress, source, **options
        As for :func:`select` (``options`` may not set ``priors`` or ``standardize``).

    Returns
    -------
    SparseMixture
    """
    from bgmm.api import BayesianGMM
    from bgmm.fit_result import as_data
    from bgmm.model.priors import default_priors

    for name in ("priors", "standardize", "n_components"):
        if name in options:
            raise TypeError(f"sparse_mixture sets {name!r} itself")
    if not (isinstance(concentration, int | float) and 0 < concentration < float("inf")):
        raise UserError(
            f"expected a positive number, got {concentration!r}", option="concentration"
        )
    num_features = as_data(X).shape[1]
    priors = default_priors(int(n_components), num_features)._replace(
        concentration=np.full(int(n_components), float(concentration))
    )
    model = BayesianGMM(int(n_components), priors=priors, standardize=True, **options)
    model.fit(X, feature_names=feature_names, progress=progress, source=source)
    counts = model.idata_.sample_stats["num_occupied"].values.ravel()
    occupied = {int(k): float(np.mean(counts == k)) for k in np.unique(counts)}
    return SparseMixture(model, occupied, float(concentration))


def parse_components(text: str) -> list[int]:
    """``"1-8"``, ``"2,3,5"`` or ``"4"`` as a sorted list of distinct K >= 1."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 1 or last < first or last - first > 1000:
                raise ValueError
            values.update(range(first, last + 1))
    except ValueError:
        raise UserError(
            f"expected K >= 1 as a range or list like 1-8 or 2,3,5, got {text!r}",
            option="n_components",
        ) from None
    return sorted(values)


def select(
    X,
    n_components: Iterable[int] = range(1, 9),
    covariance_types: Sequence[str] = ("full",),
    *,
    feature_names: list[str] | None = None,
    progress: bool = False,
    source: str = "data",
    sparse: bool = False,
    **options: Any,
) -> Selection:
    """Fit every (K, covariance) of the grid and choose one by PSIS-LOO.

    Parameters
    ----------
    X : array-like or DataFrame, shape (N, D)
    n_components : iterable of int
        The K to try (each at most N).
    covariance_types : sequence of str
        The structures to try (:data:`bgmm.config.COVARIANCE_TYPES`).
    feature_names, progress, source
        As for :meth:`bgmm.BayesianGMM.fit`.
    sparse : bool
        Also fit an overfitted sparse mixture with the largest K (:func:`sparse_mixture`)
        and report its posterior of the number of occupied components.
    **options
        Options of every fit (:class:`bgmm.config.RunConfig` fields), except
        ``n_components`` and ``covariance_type``.

    Returns
    -------
    Selection
    """
    from bgmm.api import BayesianGMM

    grid = check_grid(n_components, covariance_types, options)
    models: dict[tuple[int, str], Any] = {}
    seconds: dict[tuple[int, str], float] = {}
    for k, covariance in grid:
        start = time.perf_counter()
        model = BayesianGMM(k, covariance_type=covariance, **options)
        models[k, covariance] = model.fit(
            X, feature_names=feature_names, progress=progress, source=source
        )
        seconds[k, covariance] = time.perf_counter() - start
    table = _score(models, seconds)
    chosen = _choose(table)
    best = {"k": chosen["k"], "covariance": chosen["covariance"]}
    rule = (
        f"the fewest parameters among the models within {SE_RULE:g} standard errors of the "
        "best elpd_loo (se of the difference)"
    )
    overfitted = None
    if sparse:
        fit_options = {k: v for k, v in options.items() if k not in ("priors", "standardize")}
        overfitted = sparse_mixture(
            X,
            max(k for k, _ in grid),
            feature_names=feature_names,
            progress=progress,
            source=source,
            **fit_options,
        )
    chosen_model = models[chosen["k"], chosen["covariance"]]
    return Selection(table, best, chosen_model, models, rule, overfitted)


def check_grid(
    n_components: Iterable[int], covariance_types: Sequence[str], options: dict[str, Any]
) -> list[tuple[int, str]]:
    """The grid of (K, covariance) to fit, checked with the options of its fits."""
    from bgmm.config import COVARIANCE_TYPES

    for name in ("n_components", "covariance_type"):
        if name in options:
            raise TypeError(
                f"select got {name!r}: give the grid as n_components and covariance_types"
            )
    ks = sorted({int(k) for k in n_components})
    if not ks or ks[0] < 1:
        raise UserError(f"expected K >= 1, got {ks}", option="n_components")
    types = list(dict.fromkeys(covariance_types))
    for covariance in types:
        if covariance not in COVARIANCE_TYPES:
            raise UserError(
                f"expected one of {', '.join(COVARIANCE_TYPES)}, got {covariance!r}",
                option="covariance_type",
            )
    if options.get("store_log_likelihood") is False:
        raise UserError(
            "model selection needs the pointwise log-likelihood", option="store_log_likelihood"
        )
    if options.get("split_rows"):
        raise UserError(
            "model selection needs every row's log-likelihood (PSIS-LOO), which a run on "
            "split rows does not keep",
            option="split_rows",
        )
    return [(k, covariance) for covariance in types for k in ks]


def _score(models, seconds) -> list[dict[str, Any]]:
    """The table's rows, best elpd first, with differences from the best."""
    import arviz as az

    rows, pointwise = [], {}
    for (k, covariance), model in models.items():
        idata = model.idata_
        if "log_likelihood" not in idata.groups():
            raise UserError(
                f"K = {k}: the pointwise log-likelihood was not stored (too large for the "
                "default budget); select with store_log_likelihood=True "
                "(--log-likelihood) or on a subsample of the rows",
                option="store_log_likelihood",
            )
        # The Pareto-k warning is said once per model in its warnings below, with the
        # count, not per call. ArviZ's weights of its Pareto fits overflow to inf for an
        # unlikely fit, which gives it the intended weight 0: no warning either.
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto", UserWarning)
            loo = az.loo(idata, pointwise=True)
        pointwise[k, covariance] = np.asarray(loo.loo_i).ravel()
        pareto_k = np.asarray(loo.pareto_k).ravel()
        summary = model.result_.summary
        notes = list(summary["warnings"])
        bad = int(np.sum(pareto_k > PARETO_K_LIMIT))
        if bad:
            notes.append(
                f"{bad} observation(s) with Pareto k > {PARETO_K_LIMIT}: their LOO terms, and "
                "so elpd_loo, are unreliable"
            )
        rows.append(
            {
                "k": k,
                "covariance": covariance,
                "elpd_loo": float(loo.elpd_loo),
                "se": float(loo.se),
                "p_loo": float(loo.p_loo),
                "num_parameters": num_parameters(k, model.n_features_in_, covariance),
                "pareto_k_max": float(np.max(pareto_k)),
                "pareto_k_bad": bad,
                "rhat_max": summary["rhat_max"],
                "ess_bulk_min": summary["ess_bulk_min"],
                "converged": bool(model.converged_),
                "seconds": seconds[k, covariance],
                "warnings": notes,
            }
        )
    rows.sort(key=lambda row: -row["elpd_loo"])
    best = pointwise[rows[0]["k"], rows[0]["covariance"]]
    for row in rows:
        difference = best - pointwise[row["k"], row["covariance"]]
        row["elpd_diff"] = float(np.sum(difference))
        row["se_diff"] = float(np.sqrt(len(difference) * np.var(difference)))
    return rows


def _choose(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule: within SE_RULE standard errors of the best, the fewest parameters."""
    close = [row for row in table if row["elpd_diff"] <= SE_RULE * row["se_diff"]]
    chosen = min(close, key=lambda row: (row["num_parameters"], row["k"]))
    for row in table:
        row["chosen"] = row is chosen
    return chosen
