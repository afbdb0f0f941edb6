"""Part 6: what a fit answers and what it costs, in a fresh process each: the default fit,
a second fit of data of the same shape (programs kept in memory), membership
probabilities, the log predictive density, predictive draws, the posterior similarity
matrix and the VI and Binder point partitions (``answers_workload.py``); then ``bgmm
select -k 1-4`` through the command line, cold and with a warm cache."""

from __future__ import annotations

import json
import tempfile
import time

import numpy as np
from harness import HERE, bgmm_command, child_env, log, median, run_child, save, show, table

WORKLOAD = HERE / "answers_workload.py"
# (N, D, K) of the fits; N above 2,000 puts the similarity on a subsample of 2,000 rows.
SIZES = ((1_000, 2, 3), (2_000, 4, 3), (20_000, 4, 3))
QUICK_SIZES = ((1_000, 2, 3),)
TIMES = (
    "fit_seconds",
    "first_compile_seconds",
    "refit_seconds",
    "predict_proba_seconds",
    "score_samples_seconds",
    "sample_10000_seconds",
    "similarity_seconds",
    "vi_partition_seconds",
    "binder_partition_seconds",
)


def run(opts, results: dict) -> dict:
    """Run part 6 and print its tables; ``results["part6"]``."""
    out: dict = {"runs": [], "select": []}
    results["part6"] = out
    repeats = 1 if opts.quick else 3
    for n, d, k in QUICK_SIZES if opts.quick else SIZES:
        for seed in range(repeats):
            log(f"part 6: answers, N = {n}, D = {d}, K = {k}, seed {seed}")
            code, stdout, stderr = run_child([WORKLOAD, n, d, k, seed], child_env())
            record = (
                json.loads(stdout)
                if code == 0
                else {"n": n, "d": d, "k": k, "error": stderr[-500:]}
            )
            out["runs"].append(record)
            save(opts.json, results)
    for seed in range(repeats):
        out["select"].append(_select(seed))
        save(opts.json, results)
    _show(out)
    return out


def _select(seed: int) -> dict:
    """``bgmm select data.csv -k 1-4`` on 600 rows of 3 clusters, cold then warm."""
    import subprocess

    rng = np.random.default_rng(seed)
    data = np.concatenate([rng.normal(4.0 * c, 1.0, (200, 2)) for c in range(3)])
    record: dict = {"seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/data.csv"
        np.savetxt(path, data, delimiter=",", header="a,b", comments="")
        for kind in ("cold", "warm"):
            command = [*bgmm_command(), "select", path, "-k", "1-4", "--seed", str(seed)]
            command += ["--json", "--quiet", "--out", f"{tmp}/{kind}"]
            start = time.perf_counter()
            proc = subprocess.run(
                command, env=child_env(f"{tmp}/cache"), capture_output=True, text=True
            )
            record[f"{kind}_wall_seconds"] = time.perf_counter() - start
            if proc.returncode == 0:
                record["best"] = json.loads(proc.stdout)["selection"]["best"]
            else:
                record[f"{kind}_error"] = proc.stderr[-500:]
    return record


def _show(out: dict) -> None:
    rows = []
    for n, d, k in sorted({(r["n"], r["d"], r["k"]) for r in out["runs"]}):
        runs = [
            r for r in out["runs"] if (r["n"], r["d"], r["k"]) == (n, d, k) and "error" not in r
        ]
        rows.append([n, d, k, *(median([r[key] for r in runs]) for key in TIMES)])
    show(table("part 6: what a fit answers (medians, seconds)", ["N", "D", "K", *TIMES], rows))
    select = out["select"]
    show(
        table(
            "part 6: bgmm select -k 1-4, 600 rows, 3 clusters (seconds)",
            ["cold", "warm", "chosen"],
            [
                [
                    median([r.get("cold_wall_seconds") for r in select]),
                    median([r.get("warm_wall_seconds") for r in select]),
                    ", ".join(str(r.get("best", {}).get("k")) for r in select),
                ]
            ],
        )
    )
