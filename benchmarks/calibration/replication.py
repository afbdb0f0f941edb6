"""One SBC replication (simulate, sample, thin, rank the truth) and one experiment (many
replications of a sampler x configuration)."""

from __future__ import annotations

import time

import jax
import numpy as np
from harness import log
from scipy import stats

from bgmm.config import RunConfig
from bgmm.inference import sample_posterior
from bgmm.model import Params
from calibration.design import CONFIGS, L_DRAWS, MAX_ATTEMPTS, RETRY_FACTOR, SAMPLERS
from calibration.simulation import simulate, test_quantities
from calibration.uniformity import analyse


def bulk_ess(x: np.ndarray) -> np.ndarray:
    """Bulk ESS of one chain, per column: x (S, Q) -> (Q,); NaN for a constant column.

    ArviZ's ``ess(method="bulk")`` vectorised over columns (ArviZ's own takes one column
    at a time, slow on chains this long): split the chain in halves, rank-normalise, FFT
    autocovariances, Geyer's initial positive and monotone sequence (Vehtari et al. 2021).
    Agrees with ArviZ to floating-point rounding.
    """
    s, q = x.shape
    n = s // 2
    halves = np.stack([x[:n], x[s - n :]])  # (2, n, Q); an odd S loses its middle draw
    flat = halves.reshape(2 * n, q)
    ranks = stats.rankdata(flat, axis=0)
    z = stats.norm.ppf((ranks - 0.375) / (2 * n + 0.25)).reshape(2, n, q)
    centred = z - z.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n  # (2, n, Q)
    chain_var = acov[:, 0] * n / (n - 1.0)  # (2, Q)
    mean_var = chain_var.mean(0)
    var_plus = mean_var * (n - 1.0) / n + z.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var - acov.mean(0)) / var_plus  # (n, Q)
        rho[0] = 1.0
        out = np.empty(q)
        for j in range(q):
            r = rho[:, j]
            if not np.isfinite(var_plus[j]) or var_plus[j] <= 0 or np.ptp(x[:, j]) == 0:
                out[j] = np.nan
                continue
            # Geyer: sums of adjacent pairs, while positive, made monotone.
            pairs = r[0 : n - 1 : 2][: (n - 1) // 2 + 1] + r[1:n:2][: (n - 1) // 2 + 1]
            m = len(pairs)
            stop = np.flatnonzero(pairs <= 0)
            m = stop[0] if stop.size else m
            pairs = np.minimum.accumulate(pairs[:m]) if m else pairs[:0]
            tau = -1.0 + 2.0 * np.sum(pairs)
            # ArviZ adds the last positive autocorrelation when the sequence was cut short.
            if m and 2 * m < n and r[2 * m] > 0:
                tau += r[2 * m]
            out[j] = 2 * n / max(tau, 1.0 / np.log10(2 * n))
    return out


def keep_programs_in_memory() -> bool:
    """Compile each of the sampler's programs once per process, not once per call.

    ``sample_posterior`` builds its programs afresh on every call (from bgmm's program store
    or JAX's compilation cache when they are on), which takes longer than the sampling
    itself at these sizes (docs/sbc.md). Programs are keyed here exactly as bgmm keys its
    program store (``program_key``: everything the program closes over, argument shapes,
    devices), so a replication reuses the compiled program of the previous one with the
    same shapes and settings. Only compilation is shared; every call runs the whole of
    ``sample_posterior``. Returns False (and changes nothing) if bgmm's internals are not
    as expected.
    """
    try:
        from bgmm.plumbing import programs
        from bgmm.samplers import runner

        original = runner.compile_program
        key_of = programs.program_key
    except (ImportError, AttributeError):
        return False
    memo: dict = {}

    def compile_program(fn, example_args, *, identity, devices):
        if identity is None:
            return original(fn, example_args, identity=identity, devices=devices)
        key = key_of(identity, example_args, devices)
        if key not in memo:
            memo[key] = original(fn, example_args, identity=identity, devices=devices)
        return memo[key]

    runner.compile_program = compile_program
    return True


def run_chain(key, data, priors, start, sampler, num_warmup, num_draws, target) -> dict:
    """One sequential chain of ``sample_posterior`` from ``start``; its draws (chain axis 1)."""
    settings = RunConfig(
        sampler=sampler,
        target=target,
        num_warmup=num_warmup,
        num_draws=num_draws,
        chain_method="sequential",
    ).sampler_settings()
    init = Params(*(np.asarray(p)[None] for p in start))
    out = sample_posterior(key, data, priors, init, settings)
    return out.draws


def one_replication(
    seed, config_name, replication, sampler, lengths, target="correct", df_shift=0.0, rng_tag=0
) -> dict:
    """Simulate a data set, sample its posterior, and rank the truth among L thinned draws.

    Parameters
    ----------
    seed : int
        The run's seed; with the configuration, replication, sampler and ``rng_tag`` it
        seeds every random number of the replication.
    config_name : str
        A key of ``CONFIGS``.
    replication : int
        The replication's index.
    sampler : str
        "hmc", "nuts" or "gibbs".
    lengths : dict
        ``num_warmup`` and ``num_draws`` of the first attempt.
    target : str
        ``sample_posterior``'s target ("tutorial" for a negative control).
    df_shift : float
        Added to the Wishart degrees of freedom the sampler sees (a negative control).
    rng_tag : int
        Separates the random numbers of negative controls from the main run's.

    Returns
    -------
    dict
        ``ranks`` and ``ess_bulk`` per test quantity, ``min_ess``, ``attempts``, ``thin``,
        ``seconds``, ``finite`` and, but for Gibbs, acceptance, divergences, step size.
    """
    config_index = list(CONFIGS).index(config_name)
    config = CONFIGS[config_name]
    truth, data, start = simulate(seed, config_index, replication, config)
    priors = config["priors"]
    run_priors = priors._replace(wishart_df=priors.wishart_df + df_shift) if df_shift else priors
    true_q = test_quantities(
        truth.weights[None], truth.means[None], truth.chol_precision[None], data, config
    )
    names = list(true_q)
    sampler_index = list(SAMPLERS).index(sampler)
    t0 = time.perf_counter()

    def sample(attempt: int, num_draws: int):
        key = jax.random.key(
            np.random.default_rng(
                [seed, config_index, replication, 2, sampler_index, rng_tag, attempt]
            ).integers(2**31)
        )
        draws = run_chain(
            key, data, run_priors, start, sampler, lengths["num_warmup"], num_draws, target
        )
        w, m, c = (draws[n][0] for n in ("weights", "means", "chol_precision"))
        q = test_quantities(w, m, c, data, config)
        return draws, np.stack([q[n] for n in names], axis=1)

    draws, matrix, ess, attempts = sample_until_ess(sample, lengths["num_draws"])
    num_draws = attempts[-1]["num_draws"]
    step = num_draws // L_DRAWS
    idx = num_draws - L_DRAWS * step + step * np.arange(L_DRAWS)  # the last L*step, every step-th
    tie_rng = np.random.default_rng([seed, config_index, replication, 3, sampler_index, rng_tag])
    record = {
        "ranks": rank_truth(true_q, matrix[idx], tie_rng),
        "ess_bulk": {
            n: (None if not np.isfinite(e) else round(float(e), 1))
            for n, e in zip(names, ess, strict=True)
        },
        "min_ess": attempts[-1]["min_ess"],
        "attempts": attempts,
        "thin": int(step),
        "seconds": time.perf_counter() - t0,
        "finite": bool(np.all(np.isfinite(matrix))),
    }
    if sampler != "gibbs":
        record["acceptance_rate"] = float(np.mean(draws["acceptance_rate"]))
        record["divergences"] = int(np.sum(draws["diverging"]))
        record["step_size"] = float(np.asarray(draws["step_size"])[0, -1])
    return record


def sample_until_ess(sample, num_draws: int):
    """Rerun a chain ``RETRY_FACTOR`` times longer while its min bulk ESS is below L.

    Parameters
    ----------
    sample : callable
        ``sample(attempt, num_draws) -> (draws, matrix)``, the matrix (draws, quantities).
    num_draws : int
        The first attempt's length.

    Returns
    -------
    tuple
        The last attempt's draws, matrix and bulk ESS per quantity (NaN where not finite),
        and ``attempts``: ``num_draws`` and ``min_ess`` of each.
    """
    attempts = []
    for attempt in range(MAX_ATTEMPTS):
        draws, matrix = sample(attempt, num_draws)
        finite = bool(np.all(np.isfinite(matrix)))
        ess = bulk_ess(matrix) if finite else np.full(matrix.shape[1], np.nan)
        min_ess = float(np.nanmin(ess)) if finite else 0.0
        attempts.append({"num_draws": num_draws, "min_ess": min_ess})
        if min_ess >= L_DRAWS or attempt == MAX_ATTEMPTS - 1:
            break
        num_draws *= RETRY_FACTOR
    return draws, matrix, ess, attempts


def rank_truth(true_q: dict, thinned: np.ndarray, tie_rng: np.random.Generator) -> dict:
    """Rank of each true quantity among the thinned draws; ties broken at random."""
    ranks = {}
    for j, (n, truth) in enumerate(true_q.items()):
        t = truth[0]
        below = int(np.sum(thinned[:, j] < t))
        ties = int(np.sum(thinned[:, j] == t))
        ranks[n] = below + int(tie_rng.integers(ties + 1))
    return ranks


def run_experiment(label, seed, config_name, sampler, lengths, replications, **kwargs) -> dict:
    """Run the replications of one sampler x configuration and test their ranks.

    Parameters
    ----------
    label : str
        Names the experiment in progress messages.
    seed, config_name, sampler, lengths
        As for ``one_replication``.
    replications : int
        How many.
    **kwargs
        ``target``, ``df_shift``, ``rng_tag``: passed to ``one_replication``.

    Returns
    -------
    dict
        ``summary`` (settings, wall time, retries, ESS, acceptance), ``analysis`` (the
        tests, ``uniformity.analyse``) and ``records`` (one per replication).
    """
    records = []
    t0 = time.perf_counter()
    for rep in range(replications):
        records.append(one_replication(seed, config_name, rep, sampler, lengths, **kwargs))
        if (rep + 1) % max(1, replications // 5) == 0 or rep == 0:
            log(
                f"  {label}: {rep + 1}/{replications} replications, "
                f"{time.perf_counter() - t0:.0f} s"
            )
    wall = time.perf_counter() - t0
    analysis = analyse(records, seed)
    retried = sum(len(rec["attempts"]) > 1 for rec in records)
    low_ess = sum(rec["min_ess"] < L_DRAWS for rec in records)
    summary = {
        "config": config_name,
        "sampler": sampler,
        "num_warmup": lengths["num_warmup"],
        "num_draws": lengths["num_draws"],
        "replications": replications,
        "wall_seconds": round(wall, 1),
        "retried_longer": retried,
        "min_ess_below_L_after_retry": low_ess,
        "non_finite": sum(not rec["finite"] for rec in records),
        "median_min_ess": float(np.median([rec["min_ess"] for rec in records])),
        "median_thin": float(np.median([rec["thin"] for rec in records])),
    }
    if sampler != "gibbs":
        summary["divergences"] = int(sum(rec["divergences"] for rec in records))
        summary["median_acceptance_rate"] = float(
            np.median([rec["acceptance_rate"] for rec in records])
        )
    summary.update({k: v for k, v in kwargs.items() if k in ("target", "df_shift")})
    log(
        f"{label}: {wall:.0f} s, min p {analysis['min_p']:.3g}, "
        f"min Holm p {analysis['min_p_holm']:.3g}, retried {retried}, ESS<L {low_ess}"
    )
    return {"summary": summary, "analysis": analysis, "records": records}


def compact(experiment: dict) -> dict:
    """What the JSON keeps of an experiment: per-replication columns instead of records."""
    records = experiment["records"]
    names = list(records[0]["ranks"])
    columns = {
        "ranks": {n: [rec["ranks"][n] for rec in records] for n in names},
        "min_ess": [round(rec["min_ess"], 1) for rec in records],
        "num_draws": [rec["attempts"][-1]["num_draws"] for rec in records],
        "attempts": [len(rec["attempts"]) for rec in records],
        "thin": [rec["thin"] for rec in records],
        "seconds": [round(rec["seconds"], 3) for rec in records],
    }
    if "divergences" in records[0]:
        columns["acceptance_rate"] = [round(rec["acceptance_rate"], 3) for rec in records]
        columns["divergences"] = [rec["divergences"] for rec in records]
    analysis = experiment["analysis"]
    for n in names:
        ess = [rec["ess_bulk"][n] for rec in records if rec["ess_bulk"][n] is not None]
        analysis["quantities"][n]["median_ess_bulk"] = float(np.median(ess)) if ess else None
    return {"summary": experiment["summary"], "analysis": analysis, "replications": columns}
