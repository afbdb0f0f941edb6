"""Clustering against known labels: bgmm's prior candidates, R's mclust and scikit-learn.

    python benchmarks/clustering.py [--quick] [--out benchmarks/clustering_results.json]
        [--datasets iris,wine] [--candidates default,fr_corr] [--seeds 0,1]

For each labelled data set (docs/priors.md lists them) it records the adjusted Rand index
(ARI) of the labels each method gives against the true classes:

- mclust (R, through ``Rscript``; the data go as CSV in a temporary folder):
  ``Mclust(X, G = 1:8)``, the BIC choice of structure and G; and ``Mclust(X, G = K)``, the
  best-BIC structure at the true K. Raw data units, mclust's defaults.
- scikit-learn ``GaussianMixture(covariance_type="full", n_init=10)`` on the standardised
  data, at the true K and at the K that minimises BIC over 1..8.
- bgmm ``BayesianGMM(K, priors=..., standardize=True)`` at the true K for each prior
  candidate (``CANDIDATES``, in standardised units; "default" is the default before
  docs/priors.md, S = I; "fr_eye" the one after; "current" whatever is installed),
  default sampler (HMC), 4 chains, default warm-up and draws, each seed in ``--seeds``:
  ARI of ``predict(X)``, the mean number of occupied components
  (``idata_.sample_stats["num_occupied"]``), R-hat max and min bulk ESS
  (``result_.summary``), and the fit's wall seconds. ``--k-extra E`` fits K + E instead.

Runs are grouped by data set in this one process (fits of the same shape reuse the compiled
programs). Every result is written to the JSON file as soon as it exists. ``--quick``: two
data sets, one seed, 300 warm-up and 300 draws (a smoke test; its numbers are not evidence).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clustering_data import DATASETS, QUICK_DATASETS, load  # noqa: E402
from harness import log, save, show, table  # noqa: E402
from host import git_state, load_average, package_versions  # noqa: E402

MAX_G = 8

# ---------------------------------------------------------------------------------------
# Prior candidates, in standardised units (mean 0, sd 1 per column).
#
# The model puts T_k ~ Wishart(nu, S) on the precision, so E[T] = nu S and the covariance
# Sigma = T^{-1} is inverse Wishart with scale matrix Psi = S^{-1}: E[Sigma] =
# S^{-1} / (nu - D - 1), and Psi is the prior's pseudo-scatter, added to each component's
# scatter matrix in the conditional of T. Fraley & Raftery (2007) put Sigma ~ IW(nu_P,
# Lambda_P) with Lambda_P added to the scatter, nu_P = D + 2 and Lambda_P = var(data) /
# G^(2/D): in our terms Psi = Lambda_P, so S = Lambda_P^{-1} = G^(2/D) var(data)^{-1}
# (on standardised data var = the correlation matrix R), and E[Sigma] = R / G^(2/D).
# Writing S = R / G^(2/D) instead would give E[Sigma] = G^(2/D) R^{-1}: components larger
# than the data, the opposite of the intent.
# ---------------------------------------------------------------------------------------


def _priors(k: int, d: int, scale_inv: np.ndarray, nu: float, s0: float = 2.0, alpha0=1.0):
    import bgmm

    return bgmm.Priors(
        concentration=np.full(k, float(alpha0)),
        mean_loc=np.zeros((k, d)),
        mean_scale=float(s0),
        wishart_df=float(nu),
        wishart_scale=np.linalg.inv(scale_inv),
    )


def candidate_priors(name: str, k: int, corr: np.ndarray):
    """The candidate's ``bgmm.Priors`` for K = k on standardised data with correlation
    matrix ``corr``. Each is described in ``CANDIDATES``."""
    d = corr.shape[0]
    eye = np.eye(d)
    shrink = k ** (2.0 / d)
    if name == "current":
        return "default"  # priors="default": bgmm's own default path, whatever it is now
    if name == "default":
        return _priors(k, d, eye, d + 2)  # Psi = I, E[Sigma] = I
    if name == "fr_corr":
        return _priors(k, d, corr / shrink, d + 2)  # Psi = R / K^(2/D) = E[Sigma]
    if name == "fr_eye":
        return _priors(k, d, eye / shrink, d + 2)  # Psi = I / K^(2/D) = E[Sigma]
    if name == "fr_eye_nu":
        # The same E[Sigma] = I / K^(2/D) with nu = 2D + 2: D + 1 pseudo-observations
        # instead of 1, Psi scaled up to keep the mean.
        return _priors(k, d, (d + 1) * eye / shrink, 2 * d + 2)
    if name == "fr_eye_wrong":
        # The convention slip: S = I / K^(2/D) taken as the Wishart scale itself.
        return _priors(k, d, shrink * eye, d + 2)  # Psi = K^(2/D) I
    raise ValueError(f"unknown candidate {name!r}")


CANDIDATES = {
    "default": "the default until docs/priors.md: alpha0 = 1, m0 = 0, s0 = 2, nu = D + 2, "
    "S = I (E[Sigma] = I)",
    "fr_corr": "Fraley-Raftery: nu = D + 2, S = K^(2/D) R^-1 (E[Sigma] = R / K^(2/D))",
    "fr_eye": "Fraley-Raftery with I for R: nu = D + 2, S = K^(2/D) I (E[Sigma] = I / K^(2/D))",
    "fr_eye_nu": "fr_eye's E[Sigma] with nu = 2D + 2 (D + 1 pseudo-observations)",
    "fr_eye_wrong": "S = I / K^(2/D) read as the Wishart scale (E[Sigma] = K^(2/D) I)",
    "current": "bgmm.default_priors(K, D) as installed (since docs/priors.md: fr_eye)",
}
DEFAULT_CANDIDATES = ["default", "fr_corr", "fr_eye"]

# ---------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------

MCLUST_R = r"""
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
x <- as.matrix(read.csv(args[1]))
k <- as.integer(args[2]); maxg <- as.integer(args[3]); out <- args[4]
t0 <- proc.time()[["elapsed"]]
bic <- Mclust(x, G = 1:maxg, verbose = FALSE)
t1 <- proc.time()[["elapsed"]]
fixed <- Mclust(x, G = k, verbose = FALSE)
t2 <- proc.time()[["elapsed"]]
writeLines(c(
  paste("bic_model", bic$modelName), paste("bic_G", bic$G),
  paste("bic_seconds", t1 - t0), paste("bic_loglik", bic$loglik),
  paste("bic_classification", paste(bic$classification, collapse = ",")),
  paste("k_model", fixed$modelName), paste("k_G", fixed$G),
  paste("k_seconds", t2 - t1), paste("k_loglik", fixed$loglik),
  paste("k_classification", paste(fixed$classification, collapse = ",")),
  paste("version", as.character(packageVersion("mclust")))
), out)
"""


def run_mclust(x: np.ndarray, y: np.ndarray, k: int, workdir: Path) -> dict:
    from sklearn.metrics import adjusted_rand_score

    if shutil.which("Rscript") is None:
        return {"error": "Rscript not found"}
    data, script, out = workdir / "x.csv", workdir / "mclust.R", workdir / "mclust.out"
    np.savetxt(
        data, x, delimiter=",", header=",".join(f"x{j}" for j in range(x.shape[1])), comments=""
    )
    script.write_text(MCLUST_R)
    proc = subprocess.run(
        ["Rscript", str(script), str(data), str(k), str(MAX_G), str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    fields = dict(line.split(" ", 1) for line in out.read_text().splitlines())
    rec = {"version": fields["version"]}
    for key in ("bic", "k"):
        labels = np.array([int(v) for v in fields[f"{key}_classification"].split(",")])
        rec[key] = {
            "model": fields[f"{key}_model"],
            "G": int(fields[f"{key}_G"]),
            "ari": float(adjusted_rand_score(y, labels)),
            "loglik": float(fields[f"{key}_loglik"]),
            "seconds": float(fields[f"{key}_seconds"]),
        }
    return rec


def run_sklearn(z: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> dict:
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    def fit(g):
        t = time.perf_counter()
        m = GaussianMixture(g, covariance_type="full", n_init=10, random_state=seed).fit(z)
        return m, time.perf_counter() - t

    fits = {g: fit(g) for g in range(1, MAX_G + 1)}
    bics = {g: float(m.bic(z)) for g, (m, _) in fits.items()}
    g_best = min(bics, key=bics.get)

    def record(g):
        m, seconds = fits[g]
        return {
            "G": g,
            "ari": float(adjusted_rand_score(y, m.predict(z))),
            "loglik": float(m.score(z) * len(z)),
            "seconds": seconds,
        }

    return {"k": record(k), "bic": record(g_best), "bic_by_G": bics}


def run_bgmm(x, y, k, priors, seed, draws: dict) -> dict:
    from sklearn.metrics import adjusted_rand_score

    import bgmm

    t = time.perf_counter()
    try:
        model = bgmm.BayesianGMM(
            k, priors=priors, standardize=True, random_state=seed, **draws
        ).fit(x)
    except Exception as error:  # a failed run is a result too
        return {"error": f"{type(error).__name__}: {error}"}
    seconds = time.perf_counter() - t
    stats = model.idata_.sample_stats
    occupied = stats["num_occupied"]
    summary = model.result_.summary
    return {
        "ari": float(adjusted_rand_score(y, model.predict(x))),
        "occupied_mean": float(occupied.mean()),
        "occupied_by_chain": [float(v) for v in occupied.mean("draw").values],
        "share_all_occupied": float((occupied >= k).mean()),
        "occupied_share": {str(j): float((occupied == j).mean()) for j in range(1, k + 1)},
        "rhat_max": summary.get("rhat_max"),
        "ess_bulk_min": summary.get("ess_bulk_min"),
        "converged": bool(model.converged_),
        "lp_by_chain": [float(v) for v in stats["lp"].mean("draw").values],
        "loglik_by_chain": [float(v) for v in stats["data_log_likelihood"].mean("draw").values],
        "seconds": seconds,
        "compile_seconds": model.result_.timing.get("compile_seconds"),
    }


def run_select(x, y, max_k: int, seed: int, covariance_types: list[str]) -> dict:
    """``bgmm.select`` over K = 1..max_k (default priors): the chosen model and its ARI."""
    from sklearn.metrics import adjusted_rand_score

    import bgmm

    t = time.perf_counter()
    try:
        selection = bgmm.select(x, range(1, max_k + 1), covariance_types, random_state=seed)
    except Exception as error:  # a failed run is a result too
        return {"error": f"{type(error).__name__}: {error}"}
    model = selection.model
    return {
        "chosen_k": selection.best["k"],
        "chosen_covariance": selection.best["covariance"],
        "ari": float(adjusted_rand_score(y, model.predict(x))),
        "table": selection.table,
        "converged": bool(model.converged_),
        "seconds": time.perf_counter() - t,
    }


# ---------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 2 data sets, short runs")
    p.add_argument("--out", default=str(HERE / "clustering_results.json"))
    p.add_argument("--datasets", help=f"comma-separated subset of {','.join(DATASETS)}")
    p.add_argument(
        "--candidates",
        default=",".join(DEFAULT_CANDIDATES),
        help=f"bgmm prior candidates, of {','.join(CANDIDATES)}",
    )
    p.add_argument("--seeds", default="0,1", help="bgmm seeds (default 0,1; --quick 0)")
    p.add_argument(
        "--k-extra",
        type=int,
        default=0,
        help="bgmm at K + this many components (over-fitted K; default 0: the true K)",
    )
    p.add_argument("--no-reference", action="store_true", help="bgmm only (no mclust, sklearn)")
    p.add_argument(
        "--select",
        type=int,
        default=0,
        metavar="KMAX",
        help="instead of fixed-K fits, bgmm.select over K = 1..KMAX (default priors)",
    )
    p.add_argument("--covariance", default="full", help="structures for --select, comma-separated")
    p.add_argument("--append", action="store_true", help="add to the rows of --out")
    p.add_argument(
        "--report", action="store_true", help="print the markdown tables of --out, run nothing"
    )
    return p


def _run_metadata(opts, candidates: list[str], seeds: list[int], draws: dict) -> dict:
    """What this run was: the date, the command, the machine, the options."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_average(),
            "versions": package_versions(["jax", "numpy", "scikit-learn", "arviz"]),
        },
        "git": git_state(),
        "quick": opts.quick,
        "candidates": {c: CANDIDATES[c] for c in candidates},
        "seeds": seeds,
        "draws": draws or "bgmm defaults",
        "k_extra": opts.k_extra,
    }


def main() -> None:
    opts = parser().parse_args()
    if opts.report:
        print(markdown(json.loads(Path(opts.out).read_text())))
        return
    names = (
        opts.datasets.split(",") if opts.datasets else (QUICK_DATASETS if opts.quick else DATASETS)
    )
    candidates = opts.candidates.split(",")
    for c in candidates:
        if c not in CANDIDATES:
            raise SystemExit(f"unknown candidate {c!r}")
    seeds = [
        int(s) for s in (("0" if opts.quick and opts.seeds == "0,1" else opts.seeds).split(","))
    ]
    draws = {"num_warmup": 300, "num_draws": 300} if opts.quick else {}

    import bgmm

    bgmm.use_cpu_cores()  # chains one per core, as `bgmm fit` runs them
    results = {"rows": []}
    if opts.append and os.path.exists(opts.out):
        results = json.loads(Path(opts.out).read_text())
    results.setdefault("runs", []).append(_run_metadata(opts, candidates, seeds, draws))
    results["candidate_descriptions"] = CANDIDATES
    run_index = len(results["runs"]) - 1
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in names:
            x, y, description = load(name, workdir)
            k = len(np.unique(y))
            z = (x - x.mean(0)) / x.std(0)
            corr = np.corrcoef(z, rowvar=False)
            base = {
                "data": name,
                "description": description,
                "N": x.shape[0],
                "D": x.shape[1],
                "K": k,
                "run": run_index,
            }
            if not opts.no_reference:
                log(f"{name}: mclust")
                rec = run_mclust(x, y, k, workdir)
                results["rows"].append({**base, "method": "mclust", **rec})
                log(f"{name}: scikit-learn")
                rec = run_sklearn(z, y, k)
                results["rows"].append({**base, "method": "sklearn", **rec})
                save(opts.out, results)
            if opts.select:
                for seed in seeds:
                    log(f"{name}: bgmm select K = 1..{opts.select}, seed {seed}")
                    types = opts.covariance.split(",")
                    rec = run_select(x, y, opts.select, seed, types)
                    results["rows"].append({**base, "method": "bgmm_select", "seed": seed, **rec})
                    keys = ("chosen_k", "chosen_covariance", "ari", "seconds", "error")
                    log(f"  {json.dumps({key: rec.get(key) for key in keys})}")
                    save(opts.out, results)
                continue
            for seed in seeds:
                for cand in candidates:
                    log(f"{name}: bgmm {cand} seed {seed}")
                    kk = k + opts.k_extra
                    rec = run_bgmm(x, y, kk, candidate_priors(cand, kk, corr), seed, draws)
                    results["rows"].append(
                        {
                            **base,
                            "method": "bgmm" if not opts.k_extra else "bgmm_k_extra",
                            "n_components": kk,
                            "candidate": cand,
                            "seed": seed,
                            **rec,
                        }
                    )
                    keys = ("ari", "occupied_mean", "rhat_max", "seconds", "error")
                    log(f"  {json.dumps({key: rec.get(key) for key in keys})}")
                    save(opts.out, results)
    results["runs"][run_index]["load_average_end"] = load_average()
    save(opts.out, results)
    show(report(results, names))


def report(results: dict, names: list[str] | None = None) -> str:
    """The ARI table: one row per data set, one column per method (bgmm: seeds joined)."""
    rows = results["rows"]
    names = names or list(dict.fromkeys(r["data"] for r in rows))
    cands = list(dict.fromkeys(r["candidate"] for r in rows if r["method"] == "bgmm"))
    headers = [
        "data",
        "N",
        "D",
        "K",
        "mclust BIC",
        "mclust K",
        "sklearn K",
        "sklearn BIC",
        *[f"bgmm {c}" for c in cands],
    ]
    out = []
    for name in names:
        rs = [r for r in rows if r["data"] == name]
        if not rs:
            continue
        first = rs[0]
        line = [name, first["N"], first["D"], first["K"]]
        mc = next((r for r in reversed(rs) if r["method"] == "mclust" and "bic" in r), None)
        sk = next((r for r in reversed(rs) if r["method"] == "sklearn"), None)
        line += [
            f"{mc['bic']['ari']:.2f} ({mc['bic']['model']},{mc['bic']['G']})" if mc else None,
            f"{mc['k']['ari']:.2f} ({mc['k']['model']})" if mc else None,
            f"{sk['k']['ari']:.2f}" if sk else None,
            f"{sk['bic']['ari']:.2f} (G={sk['bic']['G']})" if sk else None,
        ]
        for c in cands:
            b = [r for r in rs if r["method"] == "bgmm" and r.get("candidate") == c]
            line.append(
                " / ".join(
                    f"{r['ari']:.2f} [{r['occupied_mean']:.2f}]" if "ari" in r else "err" for r in b
                )
                or None
            )
        out.append(line)
    return table("ARI against the labels (bgmm: per seed, [mean occupied])", headers, out)


def markdown(results: dict) -> str:
    """docs/priors.md's tables: ARI per data set and method (bgmm: mean over seeds, the
    per-seed values in brackets), then bgmm's mean occupied components, runs with R-hat
    max > 1.01, and mean fit seconds, per candidate."""
    rows = results["rows"]
    names = list(dict.fromkeys(r["data"] for r in rows))
    cands = list(dict.fromkeys(r["candidate"] for r in rows if r["method"] == "bgmm"))
    bg = {
        (n, c): [
            r
            for r in rows
            if r["method"] == "bgmm" and r["data"] == n and r.get("candidate") == c and "ari" in r
        ]
        for n in names
        for c in cands
    }
    head = [
        "data",
        "N x D",
        "K",
        "mclust BIC (model, G)",
        "mclust at K",
        "sklearn at K",
        "sklearn BIC (G)",
        *cands,
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means = {c: [] for c in cands}
    for n in names:
        rs = [r for r in rows if r["data"] == n]
        f = rs[0]
        mc = next((r for r in rs if r["method"] == "mclust" and "bic" in r), None)
        sk = next((r for r in rs if r["method"] == "sklearn"), None)
        cells = [n, f"{f['N']} x {f['D']}", str(f["K"])]
        cells += [
            f"{mc['bic']['ari']:.2f} ({mc['bic']['model']}, {mc['bic']['G']})" if mc else "-",
            f"{mc['k']['ari']:.2f} ({mc['k']['model']})" if mc else "-",
            f"{sk['k']['ari']:.2f}" if sk else "-",
            f"{sk['bic']['ari']:.2f} ({sk['bic']['G']})" if sk else "-",
        ]
        for c in cands:
            v = [r["ari"] for r in bg[(n, c)]]
            if v:
                means[c].append(float(np.mean(v)))
            cells.append(f"{np.mean(v):.2f} ({', '.join(f'{a:.2f}' for a in v)})" if v else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "| mean over data sets | | | | | | | "
        + " | ".join(f"{np.mean(means[c]):.3f}" if means[c] else "-" for c in cands)
        + " |"
    )
    lines += ["", "| data | " + " | ".join(cands) + " |", "|---|" + "---|" * len(cands)]
    for n in names:
        cells = [n]
        for c in cands:
            rs = bg[(n, c)]
            if not rs:
                cells.append("-")
                continue
            occ = np.mean([r["occupied_mean"] for r in rs])
            bad = sum(r["rhat_max"] > 1.01 for r in rs)
            rh = max(r["rhat_max"] for r in rs)
            sec = np.mean([r["seconds"] for r in rs])
            cells.append(f"{occ:.2f} occ.; R-hat>1.01: {bad}/{len(rs)} (max {rh:.3f}); {sec:.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    lines += _k_extra_table(rows)
    return "\n".join(lines)


def _k_extra_table(rows: list[dict]) -> list[str]:
    """The over-fitted-K table (``--k-extra``): occupied components and ARI per candidate."""
    extra = [r for r in rows if r["method"] == "bgmm_k_extra" and "ari" in r]
    if not extra:
        return []
    ecands = list(dict.fromkeys(r["candidate"] for r in extra))
    lines = [
        "",
        "| data | true K | fitted K | " + " | ".join(f"{c}: occupied, ARI" for c in ecands) + " |",
        "|---|---|---|" + "---|" * len(ecands),
    ]
    for n in dict.fromkeys(r["data"] for r in extra):
        rs = [r for r in extra if r["data"] == n]
        cells = [n, str(rs[0]["K"]), str(rs[0]["n_components"])]
        for c in ecands:
            v = [r for r in rs if r["candidate"] == c]
            cells.append("; ".join(f"{r['occupied_mean']:.2f}, {r['ari']:.2f}" for r in v) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
