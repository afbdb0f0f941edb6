"""Which sampler should `bgmm fit` default to? Min bulk-ESS per second, per data set.

    python benchmarks/sampler_choice.py [--json benchmarks/sampler_choice.json]

Runs HMC, NUTS and Gibbs with `bgmm fit`'s defaults (4 chains, 1000 warm-up, 1000 draws;
Gibbs 1000 + 1000 sweeps) on the tutorial's data and on synthetic mixtures of separated
and of overlapping clusters, and prints min bulk-ESS (weights, means, Cholesky factors, after
relabelling), sampling seconds, ESS/s and R-hat. Compilation is excluded from ESS/s and
reported separately, with the whole fit's wall time (compile, starts, relabelling, summary).
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np

import bgmm
from bgmm.tutorial import tutorial_data

bgmm.use_cpu_cores()  # chains one per core, as the `bgmm` command runs them


def mixture(k: int, d: int, n: int, seed: int, separation: float | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    while True:
        centres = rng.normal(scale=4.0, size=(k, d))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(k) * 1e9
        if separation is None or gaps.min() >= separation:
            break
    scales = rng.uniform(0.5, 1.0, size=(k, d))
    z = rng.integers(0, k, n)
    return centres[z] + rng.normal(size=(n, d)) * scales[z]


DATASETS = {
    "tutorial (K=3, D=2, N=1000)": (tutorial_data(), 3),
    "separated K=3, D=2, N=300": (mixture(3, 2, 300, 32, 5.0), 3),
    "separated K=5, D=5, N=500": (mixture(5, 5, 500, 55, 5.0), 5),
    "separated K=5, D=2, N=5000": (mixture(5, 2, 5000, 52, 5.0), 5),
    "overlapping K=5, D=2, N=500": (mixture(5, 2, 500, 52, None), 5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="benchmarks/sampler_choice.json")
    args = parser.parse_args()
    rows = []
    for name, (X, k) in DATASETS.items():
        for sampler in ("hmc", "nuts", "gibbs"):
            result = bgmm.BayesianGMM(k, sampler=sampler, random_state=1).fit(X).result_
            s, t = result.summary, result.timing
            row = {
                "data": name,
                "sampler": sampler,
                "ess_bulk_min": s["ess_bulk_min"],
                "rhat_max": s["rhat_max"],
                "sampling_seconds": t["sampling_seconds"],
                "compile_seconds": t["compile_seconds"],
                "fit_seconds": t["total_seconds"],
                "ess_per_second": s["ess_bulk_min"] / t["sampling_seconds"],
            }
            rows.append(row)
            print(
                f"{name:32s} {sampler:6s} ESS {row['ess_bulk_min']:7.0f}  "
                f"R-hat {row['rhat_max']:.3f}  sampling {row['sampling_seconds']:6.2f} s  "
                f"compile {row['compile_seconds']:5.2f} s  fit {row['fit_seconds']:6.2f} s  "
                f"ESS/s {row['ess_per_second']:8.1f}",
                flush=True,
            )
    with open(args.json, "w") as f:
        json.dump(
            {"machine": platform.processor() or platform.machine(), "rows": rows}, f, indent=1
        )


if __name__ == "__main__":
    main()
