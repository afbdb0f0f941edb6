"""Part 8: large N, the mass matrix (issue 11's first direction to measure).

The issue's workload: N = 10^5, D = 4, K = 3 from the tutorial's recipe at that size
(``RandomState(43)``, means at linspace(-2, 2, K) in every coordinate, unit noise). Per
metric (``--metric diag``, the default, and ``dense``) and seed, a fresh ``bgmm fit``
process with default settings otherwise: sampling seconds, min bulk ESS, R-hat max, the
gradients of the kept draws (sum of ``n_steps``) and so ESS per second and per gradient.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import bgmm_command, child_env, log, median, save, show, table

METRICS = ("diag", "dense")


def recipe(num_rows: int, num_features: int = 4, num_components: int = 3) -> np.ndarray:
    """The tutorial's data recipe at another size: (num_rows, num_features)."""
    random = np.random.RandomState(43)
    hidden = random.randint(0, num_components, num_rows)
    means = np.repeat(np.linspace(-2, 2, num_components)[:, None], num_features, axis=1)
    return means[hidden] + random.randn(num_rows, num_features)


def run(opts, results: dict) -> dict:
    """Run part 8 and print its table; ``results["part8"]``."""
    n = 10_000 if opts.quick else 100_000
    seeds = range(1 if opts.quick else max(1, min(opts.repeats, 3)))
    extra = ["--warmup", "200", "--draws", "200"] if opts.quick else []
    out: dict = {"N": n, "D": 4, "K": 3, "runs": [], "extra_args": extra}
    results["part8"] = out
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npy"
        np.save(data, recipe(n))
        for seed in seeds:
            for metric in METRICS:
                log(f"part 8: N = {n}, --metric {metric}, seed {seed}")
                record = fit(data, metric, seed, f"{tmp}/o-{metric}-{seed}", extra)
                out["runs"].append(record)
                save(opts.json, results)
    for metric in METRICS:
        good = [r for r in out["runs"] if r["metric"] == metric and r["returncode"] == 0]
        out[metric] = {
            key: median(r[key] for r in good)
            for key in ("sampling_seconds", "ess_bulk_min", "ess_per_second", "ess_per_gradient")
        }
    show_table(out)
    return out


def fit(data: Path, metric: str, seed: int, out_dir: str, extra: list[str]) -> dict:
    """One ``bgmm fit`` process and what its outputs say."""
    import arviz as az

    command = [*bgmm_command(), "fit", str(data), "--json", "--quiet", "--no-plots"]
    command += ["--metric", metric, "--seed", str(seed), "--out", out_dir, *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, env=child_env(), capture_output=True, text=True)
    record = {
        "metric": metric,
        "seed": seed,
        "wall_seconds": time.perf_counter() - start,
        "returncode": proc.returncode,
    }
    if proc.returncode != 0:
        record["error"] = proc.stderr[-2000:]
        return record
    fitted = json.loads(proc.stdout)
    stats = az.from_netcdf(f"{out_dir}/posterior.nc").sample_stats
    gradients = int(stats["n_steps"].sum())
    record |= {
        key: fitted.get(key)
        for key in ("compile_seconds", "sampling_seconds", "ess_bulk_min", "rhat_max")
    }
    record |= {
        "gradients": gradients,
        "divergences": int(stats["diverging"].sum()),
        "step_size": float(stats["step_size"].mean()),
        "ess_per_second": record["ess_bulk_min"] / record["sampling_seconds"],
        "ess_per_gradient": record["ess_bulk_min"] / gradients,
    }
    return record


def show_table(out: dict) -> None:
    """Every run, then the medians per metric."""
    keys = ("sampling_seconds", "ess_bulk_min", "rhat_max", "divergences", "gradients")
    rows = [
        [r["metric"], r["seed"], *(r.get(k) for k in keys), r.get("ess_per_second")]
        for r in out["runs"]
    ]
    for metric in METRICS:
        m = out[metric]
        rows.append([f"{metric} (median)", None, m["sampling_seconds"], m["ess_bulk_min"]])
        rows[-1] += [None, None, None, m["ess_per_second"]]
    title = f"Part 8: N = {out['N']:,}, D = 4, K = 3, bgmm fit per metric (fresh processes)"
    headers = ["metric", "seed", "sampling s", "min bulk ESS", "R-hat max", "divergences"]
    show(table(title, [*headers, "gradients", "min ESS / s"], rows))
