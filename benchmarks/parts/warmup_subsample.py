"""Part 10: the warm-up on a subsample at N = 10^5 (docs/design.md 18).

Part 8's workload (the tutorial's recipe at N = 10^5, D = 4, K = 3). Per seed, a fresh
``bgmm fit`` process for each path length (4 leapfrog steps, the best measured fixed
length, and ``auto``) with the warm-up on all rows (``--warmup-rows all``) and on the
default subsample (``--warmup-rows auto``: 10,000 rows). Sampling seconds include the
warm-up, so the subsample's saving shows in min ESS per second; the gradients counted are
the kept draws' (as in part 8).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from harness import log, median, save, show, table

from parts.large_n import fit, recipe

WARMUP_ROWS = ("all", "auto")
PATH_LENGTHS = ("4", "auto")


def run(opts, results: dict) -> dict:
    """Run part 10 and print its table; ``results["part10"]``."""
    n = 50_000 if opts.quick else 100_000
    seeds = range(1 if opts.quick else max(1, min(opts.repeats, 3)))
    quick = ["--warmup", "200", "--draws", "200"] if opts.quick else []
    out: dict = {"N": n, "D": 4, "K": 3, "runs": []}
    results["part10"] = out
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npy"
        np.save(data, recipe(n))
        for seed in seeds:
            for steps in PATH_LENGTHS:
                for rows in WARMUP_ROWS:
                    log(f"part 10: N = {n}, --leapfrog-steps {steps}, --warmup-rows {rows}")
                    extra = ["--leapfrog-steps", steps, "--warmup-rows", rows, *quick]
                    record = fit(data, "diag", seed, f"{tmp}/o-{steps}-{rows}-{seed}", extra)
                    out["runs"].append(record | {"leapfrog_steps": steps, "warmup_rows": rows})
                    save(opts.json, results)
    show_table(out)
    return out


def show_table(out: dict) -> None:
    """Every run, then the median min ESS per second of each configuration."""
    keys = ("sampling_seconds", "ess_bulk_min", "rhat_max", "gradients", "ess_per_second")
    rows = [
        [r["leapfrog_steps"], r["warmup_rows"], r["seed"], *(r.get(k) for k in keys)]
        for r in out["runs"]
    ]
    for steps in PATH_LENGTHS:
        for warmup_rows in WARMUP_ROWS:
            good = [
                r
                for r in out["runs"]
                if (r["leapfrog_steps"], r["warmup_rows"]) == (steps, warmup_rows)
                and r["returncode"] == 0
            ]
            if good:
                rate = median(r["ess_per_second"] for r in good)
                rows.append([steps, warmup_rows, "median", None, None, None, None, rate])
    title = f"Part 10: N = {out['N']:,}, D = 4, K = 3, warm-up on all rows or a subsample"
    headers = ["leapfrog steps", "warm-up rows", "seed", "sampling s", "min bulk ESS"]
    show(table(title, [*headers, "R-hat max", "gradients", "min ESS / s"], rows))
