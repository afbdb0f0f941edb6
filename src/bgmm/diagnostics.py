"""Label-invariant diagnostics and chains that sit in different modes.

Per-component R-hat and ESS mean something only after relabelling (:mod:`bgmm.relabel`).
Quantities that no relabelling changes (the log joint density, the data log-likelihood, the
number of occupied components) can be diagnosed on the raw draws, and they tell apart two
things that per-component R-hat confuses: chains in different labellings of one mode (harmless,
relabelling fixes it) and chains in different local modes (another clustering of the data,
which no relabelling fixes).

All functions are pure: numpy arrays of shape (chain, draw, ...) in, dicts and lists out.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "chain_mcse",
    "constant_parameters",
    "convergence_statistics",
    "convergence_warnings",
    "detect_component_disagreement",
    "detect_mode_disagreement",
    "diagnosed_parameters",
    "empty_components_warning",
    "invariant_diagnostics",
    "rhat_and_bulk_ess",
    "rhat_chains",
]

RHAT_LIMIT = 1.01  # R-hat above this flags a parameter or quantity
ESS_LIMIT = 400  # bulk or tail ESS below this flags a parameter


def rhat_chains(draws: np.ndarray) -> np.ndarray:
    """The chains whose R-hat is reported: ``draws`` itself, or one chain's two halves.

    ArviZ needs two chains for R-hat; the two halves of a single chain give its split R-hat.

    Parameters
    ----------
    draws : array, shape (C, S, ...)

    Returns
    -------
    array
        ``draws`` when C != 1; for one chain, shape (2, S // 2, ...) (a last odd draw is
        left out).
    """
    if draws.shape[0] != 1:
        return draws
    half = draws.shape[1] // 2
    return np.stack([draws[0, :half], draws[0, half : 2 * half]])


def _arviz_stat(fn, draws: np.ndarray, **kwargs) -> np.ndarray:
    """ArviZ ``fn`` of every scalar of ``draws`` (chain, draw, P), shape (P,)."""
    import arviz as az
    import xarray as xr

    dataset = xr.Dataset({"x": (("chain", "draw", "p"), draws)})
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return np.asarray(getattr(az, fn)(dataset, **kwargs)["x"].values, dtype=np.float64)


def diagnosed_parameters(
    weights: np.ndarray,
    means: np.ndarray,
    chol_precision: np.ndarray,
    covariance_type: str,
    features: list[str],
) -> tuple[np.ndarray, list[str]]:
    """The parameters whose R-hat and ESS are reported, shape (C, S, P), and their names.

    P = K weights, K * D means and the free entries of the Cholesky factors L_k, in that
    order: the lower triangle of each L_k for 'full', its diagonal for 'diag', the lower
    triangle of the one shared factor for 'tied' (named ``chol_precision[tied, i, j]``) and
    one scale per component for 'spherical' (``chol_precision[k, all]``), docs/design.md 1.6.

    Parameters
    ----------
    weights : array, shape (C, S, K)
    means : array, shape (C, S, K, D)
    chol_precision : array, shape (C, S, K, D, D)
    covariance_type : "full", "diag", "tied" or "spherical"
    features : list of D str
        The features' names, for the parameters' names.
    """
    columns, names = [], []
    k = weights.shape[-1]
    for c in range(k):
        columns.append(weights[..., c])
        names.append(f"weights[{c}]")
    for c in range(k):
        for i, f in enumerate(features):
            columns.append(means[..., c, i])
            names.append(f"means[{c}, {f}]")
    for c in range(1 if covariance_type == "tied" else k):
        label = "tied" if covariance_type == "tied" else str(c)
        if covariance_type == "spherical":
            columns.append(chol_precision[..., c, 0, 0])
            names.append(f"chol_precision[{label}, all]")
            continue
        for i in range(len(features)):
            for j in range(i if covariance_type == "diag" else 0, i + 1):
                columns.append(chol_precision[..., c, i, j])
                names.append(f"chol_precision[{label}, {features[i]}, {features[j]}]")
    return np.stack(columns, axis=-1), names


def convergence_statistics(flat: np.ndarray) -> tuple[np.ndarray, ...]:
    """ArviZ's R-hat, bulk ESS, tail ESS and MCSE of every scalar of ``flat`` (C, S, P).

    Returns four arrays of shape (P,). With one chain, R-hat is that chain's split R-hat.
    Constant scalars (the weight when K = 1) get NaN (0/0 inside ArviZ), not a warning.
    """
    rhat, ess_bulk = rhat_and_bulk_ess(flat)
    ess_tail = _arviz_stat("ess", flat, method="tail")
    mcse = _arviz_stat("mcse", flat)
    return rhat, ess_bulk, ess_tail, mcse


def rhat_and_bulk_ess(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's R-hat and bulk ESS of every scalar of ``flat`` (C, S, P), each shape (P,)
    (as :func:`convergence_statistics`)."""
    return _arviz_stat("rhat", rhat_chains(flat)), _arviz_stat("ess", flat, method="bulk")


def chain_mcse(draws: np.ndarray) -> np.ndarray:
    """ArviZ's Monte Carlo standard error of each chain's mean, per chain.

    Parameters
    ----------
    draws : array, shape (C, S, ...)

    Returns
    -------
    array, shape (C, ...)
        The MCSE of ``draws[c].mean(axis=0)`` for every chain c, from that chain alone
        (its effective sample size). NaN where ArviZ cannot estimate it (too few draws,
        non-finite values); zero for a constant chain.
    """
    draws = np.asarray(draws, dtype=np.float64)
    c, s = draws.shape[:2]
    flat = draws.reshape(c, s, -1)
    out = [_arviz_stat("mcse", flat[i : i + 1]) for i in range(c)]
    return np.reshape(out, (c, *draws.shape[2:]))


def constant_parameters(draws: np.ndarray) -> np.ndarray:
    """Which scalars are the same in every draw of every chain.

    Their R-hat and ESS are undefined (0/0: NaN in ArviZ), not a sign of poor mixing: the
    weight of a single component (K = 1) is exactly 1 in every draw.

    Parameters
    ----------
    draws : array, shape (C, S, P)

    Returns
    -------
    array of bool, shape (P,)
    """
    draws = np.asarray(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    if flat.shape[0] == 0:
        return np.zeros(draws.shape[-1], dtype=bool)
    return np.all(flat == flat[:1], axis=0)


def convergence_warnings(
    names: list[str],
    draws: np.ndarray,
    rhat: np.ndarray,
    ess_bulk: np.ndarray,
    ess_tail: np.ndarray,
    rhat_limit: float = RHAT_LIMIT,
    ess_limit: float = ESS_LIMIT,
) -> list[str]:
    """One warning line for R-hat above the limit and one for ESS below it, if any.

    Constant parameters (:func:`constant_parameters`) are left out of both checks; any other
    parameter whose R-hat is not finite (non-finite draws) counts as above the limit.

    Parameters
    ----------
    names : list of P str
    draws : array, shape (C, S, P)
    rhat, ess_bulk, ess_tail : arrays, shape (P,)
    rhat_limit, ess_limit : float

    Returns
    -------
    list of str
        Zero, one or two lines; the maxima and minima quoted are over the checked parameters.
    """
    rhat, ess_bulk, ess_tail = (np.asarray(a, dtype=np.float64) for a in (rhat, ess_bulk, ess_tail))
    checked = ~constant_parameters(draws)
    out = []
    bad_rhat = checked & ~(rhat <= rhat_limit)
    if bad_rhat.any():
        finite = rhat[bad_rhat & np.isfinite(rhat)]
        worst = f"max {finite.max():.3f}" if finite.size else "not computable"
        first = names[int(np.argmax(bad_rhat))]
        out.append(
            f"R-hat above {rhat_limit} for {int(bad_rhat.sum())} parameter(s) ({worst}, "
            f"e.g. {first}): chains disagree; run longer or check for label switching"
        )
    low_ess = checked & (np.minimum(ess_bulk, ess_tail) < ess_limit)
    if low_ess.any():
        out.append(
            f"ESS below {ess_limit} for {int(low_ess.sum())} parameter(s) (bulk min "
            f"{np.nanmin(ess_bulk[checked]):.0f}, tail min {np.nanmin(ess_tail[checked]):.0f}): "
            "draw more for reliable estimates"
        )
    return out


def _z_scores(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    """diff / se, with +-inf where se is zero and diff is not, 0 where both are."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / se
    return np.where((se == 0) & (diff == 0), 0.0, z)


def invariant_diagnostics(
    quantities: dict[str, np.ndarray], rhat_limit: float = RHAT_LIMIT
) -> dict[str, dict[str, Any]]:
    """R-hat, ESS, mean and sd of label-invariant scalars.

    These quantities do not depend on the labelling, so their R-hat is meaningful before
    relabelling: R-hat above the limit for ``lp`` or ``data_log_likelihood`` means the chains
    have not mixed between modes (or are still moving), whatever relabelling does to the
    per-component parameters. They cannot show disagreement between chains that sit at modes of
    the same density and the same number of occupied components.

    Parameters
    ----------
    quantities : dict of str to array, shape (C, S)
        One scalar per draw, e.g. ``lp`` (log joint), ``data_log_likelihood``
        (log p(y | params)) and ``num_occupied`` (number of occupied components).
    rhat_limit : float
        R-hat above this flags the quantity.

    Returns
    -------
    dict of str to dict
        For every quantity: ``mean``, ``sd`` (ddof 1), ``mcse``, ``rhat`` (rank-normalised
        split R-hat; for one chain, the R-hat of its two halves), ``ess_bulk``, ``ess_tail``
        (all float, NaN where undefined), ``constant`` (bool: every draw equal; its R-hat, ESS
        and MCSE are NaN and it is never flagged), ``flagged`` (bool: not constant and R-hat
        above ``rhat_limit`` or not computable, e.g. non-finite draws or too few of them) and
        ``message`` (one line when flagged, else None).
    """
    return {name: _invariant_row(name, values, rhat_limit) for name, values in quantities.items()}


def _invariant_row(name: str, values: np.ndarray, rhat_limit: float) -> dict[str, Any]:
    """One quantity's entry of :func:`invariant_diagnostics`; ``values`` (C, S)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (chains, draws); got {x.shape}")
    with np.errstate(all="ignore"):
        mean = float(np.mean(x)) if x.size else float("nan")
        sd = float(np.std(x, ddof=1)) if x.size > 1 else float("nan")
    constant = bool(x.size > 0 and np.all(x == x.flat[0]))
    nan = float("nan")
    rhat = ess_bulk = ess_tail = mcse = nan
    if not constant and x.size:
        scalars = x[:, :, None]
        rhat = float(_arviz_stat("rhat", rhat_chains(scalars))[0])
        ess_bulk = float(_arviz_stat("ess", scalars, method="bulk")[0])
        ess_tail = float(_arviz_stat("ess", scalars, method="tail")[0])
        mcse = float(_arviz_stat("mcse", scalars)[0])
    flagged = not constant and not rhat <= rhat_limit
    return {
        "mean": mean,
        "sd": sd,
        "mcse": mcse,
        "rhat": rhat,
        "ess_bulk": ess_bulk,
        "ess_tail": ess_tail,
        "constant": constant,
        "flagged": bool(flagged),
        "message": _invariant_message(name, rhat, rhat_limit) if flagged else None,
    }


def _invariant_message(name: str, rhat: float, rhat_limit: float) -> str:
    """The line that flags a label-invariant quantity whose R-hat is above the limit or NaN."""
    if np.isnan(rhat):
        return f"R-hat of {name} could not be computed (non-finite or too few draws)"
    return (
        f"R-hat of {name} is {rhat:.3f} (above {rhat_limit}): the chains disagree "
        "on a label-invariant quantity, so they are in different modes or still "
        "moving; relabelling cannot fix this: run longer or compare chains"
    )


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def detect_mode_disagreement(
    lp: np.ndarray, z_limit: float = 5.0, min_gap: float = 1.0
) -> dict[str, Any]:
    """Chains whose mean log density is clearly below the best chain's: other local modes.

    Relabelling moves draws between the K! symmetric copies of a mode, which all have the same
    density; a chain whose mean log density is lower, beyond Monte Carlo error, is in another
    mode (e.g. two clusters merged and one component empty or split) and its draws describe
    another local solution. For each chain c other than the best (highest mean),

        z_c = (mean_best - mean_c) / sqrt(mcse_best^2 + mcse_c^2)

    with ArviZ's per-chain MCSE, and c is flagged when ``z_c > z_limit`` and the gap exceeds
    ``min_gap`` nats (so that very long chains are not flagged for trivial differences).
    A chain whose mean log density is not finite is flagged too.

    What it cannot catch: distinct modes of (nearly) equal density, modes no chain visited, and
    chains that hop between modes (their means blend; R-hat on ``lp`` from
    :func:`invariant_diagnostics` sees those). Chains still drifting out of warm-up also show as
    gaps; that is a real problem too, but the message then overstates it as another mode. The
    MCSE assumes each chain is stationary; strong autocorrelation underestimated by ArviZ makes
    false flags more likely than the nominal normal tail of ``z_limit``.

    Parameters
    ----------
    lp : array, shape (C, S)
        Log joint density (or any label-invariant log density) of every draw.
    z_limit : float
        Flag chains more than this many standard errors below the best chain.
    min_gap : float
        ...and at least this many nats below it.

    Returns
    -------
    dict
        ``chain_lp_means`` (list of C float), ``chain_lp_mcse`` (list of C float),
        ``z_scores`` (list of C float; 0 for the best chain), ``best_chain`` (int),
        ``chains_in_other_modes`` (sorted list of int) and ``message`` (one line, or None when
        no chain is flagged).
    """
    lp = np.asarray(lp, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"lp must have shape (chains, draws); got {lp.shape}")
    c = lp.shape[0]
    with np.errstate(all="ignore"):
        means = lp.mean(axis=1) if lp.shape[1] else np.full(c, np.nan)
    mcse = chain_mcse(lp) if lp.shape[1] else np.full(c, np.nan)
    finite = np.isfinite(means)
    best = int(np.argmax(np.where(finite, means, -np.inf))) if finite.any() else 0
    z = np.zeros(c)
    flagged: list[int] = []
    if finite.any():
        gap = means[best] - means
        with np.errstate(all="ignore"):
            z = _z_scores(gap, np.sqrt(mcse[best] ** 2 + mcse**2))
        z[best] = 0.0
        for chain in range(c):
            if chain == best:
                continue
            if not finite[chain] or (z[chain] > z_limit and gap[chain] > min_gap):
                flagged.append(chain)
    return {
        "chain_lp_means": [float(v) for v in means],
        "chain_lp_mcse": [float(v) for v in mcse],
        "z_scores": [float(v) for v in z],
        "best_chain": best,
        "chains_in_other_modes": flagged,
        "message": _mode_message(flagged, means, best) if flagged else None,
    }


def _mode_message(flagged: list[int], means: np.ndarray, best: int) -> str:
    """The line naming the ``flagged`` chains; ``means`` (C,) the chains' mean log density."""
    one = len(flagged) == 1
    names = ", ".join(str(i) for i in flagged)
    values = _join([f"{means[i]:.1f}" for i in flagged])
    return (
        f"chain{'' if one else 's'} {names} {'is' if one else 'are'} in a different mode "
        f"from chain {best} (mean log density {values} vs {means[best]:.1f}): "
        f"{'its' if one else 'their'} draws describe another local solution; run longer, "
        "or use more chains and compare"
    )


def detect_component_disagreement(means: np.ndarray, z_limit: float = 5.0) -> list[int]:
    """Chains whose relabelled component means disagree with the other chains'.

    After relabelling, chains that explore the same mode have the same per-component posterior
    means up to Monte Carlo error. Each chain's mean of every scalar ``means[..., k, d]`` is
    compared with the pooled mean of the other chains (the average of their chain means),

        z = (mean_c - mean_rest) / sqrt(mcse_c^2 + sum_{c' != c} mcse_c'^2 / (C - 1)^2),

    with ArviZ's per-chain MCSE. The chain with the largest max |z| over components and
    features is flagged if that exceeds ``z_limit``, then set aside and the comparison repeated
    among the remaining chains, so one far-off chain does not make the others look off too
    (the majority defines agreement; a 2-2 split flags the pair that disagrees more). When
    two chains are left and they disagree, both are flagged: nothing says which one is right.

    What it catches: chains in a different clustering, where relabelling could not align the
    components (e.g. a cluster split in one chain and merged in another), and chains where
    relabelling failed. What it cannot: disagreement in other parameters (weights, covariances;
    pass them through the same function), modes that no chain found, and it assumes equal
    draws per chain and stationary chains. With K*D scalars per chain and C chains there are
    about C*K*D tests; under agreement each exceeds |z| > 5 with probability about 6e-7.

    Parameters
    ----------
    means : array, shape (C, S, K, D)
        Relabelled component means (any (C, S, ...) array works).
    z_limit : float

    Returns
    -------
    list of int
        Indices of the flagged chains, sorted; empty with fewer than two chains.
    """
    means = np.asarray(means, dtype=np.float64)
    c, s = means.shape[:2]
    if c < 2 or s == 0:
        return []
    flat = means.reshape(c, s, -1)
    chain_means = flat.mean(axis=1)  # (C, P)
    mcse = chain_mcse(flat)  # (C, P)
    remaining = list(range(c))
    flagged: list[int] = []
    while len(remaining) >= 2:
        worst = np.full(len(remaining), -np.inf)
        for pos, chain in enumerate(remaining):
            rest = [r for r in remaining if r != chain]
            diff = chain_means[chain] - chain_means[rest].mean(axis=0)
            var = mcse[chain] ** 2 + np.sum(mcse[rest] ** 2, axis=0) / len(rest) ** 2
            with np.errstate(invalid="ignore"):
                z = np.abs(_z_scores(diff, np.sqrt(var)))
            worst[pos] = np.max(np.where(np.isnan(z), -np.inf, z)) if z.size else -np.inf
        if not np.max(worst) > z_limit:
            break
        if len(remaining) == 2:
            flagged.extend(remaining)
            break
        chain = remaining.pop(int(np.argmax(worst)))
        flagged.append(chain)
    return sorted(flagged)


# A component is reported empty when at least one of the K is empty in more than this share
# of the draws: then the data do not support K components.
EMPTY_DRAWS_SHARE = 0.5


def empty_components_warning(num_occupied: np.ndarray, num_components: int) -> str | None:
    """One warning line when, in most draws, some components hold no observation.

    Parameters
    ----------
    num_occupied : array, shape (C, S)
        Components occupied in each draw (expected count of at least one observation, or
        Gibbs' sampled assignments).
    num_components : int
        K.

    Returns
    -------
    str or None
        None when all K components are occupied in at least half the draws.
    """
    occupied = np.asarray(num_occupied)
    share_empty = float(np.mean(occupied < num_components))
    if share_empty <= EMPTY_DRAWS_SHARE:
        return None
    typical = int(np.median(occupied))
    return (
        f"empty components: in {share_empty:.0%} of the draws at least one of the "
        f"{num_components} components holds no observation (typically {typical} occupied): "
        f"the data support fewer components; fit a smaller K"
    )
