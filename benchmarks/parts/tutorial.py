"""Part 1: the TFP tutorial's workload (N = 1000, D = 2, K = 3, float64), per sampler.

Each configuration runs in fresh processes (``workload.py config``), one per seed, with the
persistent compilation cache off, so that compile times are honest; the tables show
medians. Then a profile (``workload.py profile``): one value_and_grad and one HMC
transition at the tutorial size inside a compiled loop, against the cost per leapfrog step
inside the full ``hmc-tutorial`` run.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness import WORKLOAD, child_env, log, median, run_child, save, show, table

from bgmm.inference import SAMPLERS

# Medians over the good runs of a configuration.
MEDIAN_KEYS = (
    "compile_seconds",
    "sampling_seconds",
    "fit_seconds",
    "process_seconds",
    "ess_bulk_min",
    "ess_per_second",
    "ess_per_second_end_to_end",
    "rhat_max",
    "acceptance_rate",
    "seconds_per_leapfrog",
    "mean_leapfrog_steps",
)
# Settings, the same in every run of a configuration.
SETTING_KEYS = (
    "sampler",
    "target",
    "adaptation",
    "num_chains",
    "num_warmup",
    "num_draws",
    "chain_method",
)


def run(opts, results: dict) -> dict:
    """Run part 1 and print its tables; ``results["part1"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``quick``, ``repeats`` (processes per configuration) and ``json``.
    results : dict
        The run's results; saved after each configuration.

    Returns
    -------
    dict
        ``configs`` (per configuration: every run and the medians), ``gibbs_available``,
        ``repeats`` and ``profile``.
    """
    configs = ["hmc-tutorial", "hmc-tutorial-4ch", "hmc", "nuts"]
    if "gibbs" in SAMPLERS:
        configs.append("gibbs")
    if opts.quick:
        configs = ["hmc-tutorial", "hmc"]
    extra = ["--draws", "200", "--warmup", "200"] if opts.quick else []
    out: dict = {"configs": {}, "gibbs_available": "gibbs" in SAMPLERS, "repeats": opts.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for name in configs:
            runs = [run_config(name, seed, extra, Path(tmp)) for seed in range(opts.repeats)]
            out["configs"][name] = summarise(runs)
            results["part1"] = out
            save(opts.json, results)
        profile = run_profile(2000 if opts.quick else 10000, Path(tmp))
    if profile is not None:
        out["profile"] = profile
        tut = out["configs"].get("hmc-tutorial", {})
        if tut.get("seconds_per_leapfrog"):
            profile["leapfrog_seconds_in_run"] = tut["seconds_per_leapfrog"]
    show_runs(out, opts.repeats)
    if out.get("profile"):
        show_profile(out["profile"])
    return out


def run_config(name: str, seed: int, extra: list[str], tmp: Path) -> dict:
    """One fresh process of configuration ``name``; its record, with rates added."""
    path = tmp / f"{name}-{seed}.json"
    log(f"part 1: {name} seed {seed}")
    code, _stdout, stderr = run_child(
        [WORKLOAD, "config", name, "--seed", seed, "--json", path, *extra], child_env()
    )
    if code != 0:
        log(stderr[-3000:])
        return {"config": name, "seed": seed, "error": stderr[-3000:]}
    record = json.loads(path.read_text())
    ess = record["ess_bulk_min"]
    record["ess_per_second"] = ess / record["sampling_seconds"]
    record["ess_per_second_end_to_end"] = ess / (
        record["compile_seconds"] + record["sampling_seconds"]
    )
    steps = record["mean_leapfrog_steps"]
    if steps:
        # Chains of a "parallel" run share the wall clock: per leapfrog step of one chain,
        # over the devices in use.
        lanes = 1
        if record["chain_method"] == "parallel":
            lanes = min(record["num_chains"], record["num_devices"])
        record["seconds_per_leapfrog"] = (
            record["sampling_seconds"] * lanes / (record["transitions"] * steps)
        )
    return record


def summarise(runs: list[dict]) -> dict:
    """Every run, and over the good ones the medians, the settings and the divergences."""
    good = [r for r in runs if "error" not in r]
    summary: dict = {"runs": runs}
    if not good:
        return summary
    for key in MEDIAN_KEYS:
        summary[key] = median(r.get(key) for r in good)
    summary["rhat_max_worst"] = max(r["rhat_max"] for r in good)
    for key in SETTING_KEYS:
        summary[key] = good[0][key]
    summary["divergences"] = sum(r["divergences"] for r in good)
    return summary


def run_profile(iterations: int, tmp: Path) -> dict | None:
    """The in-loop profile at the tutorial size, in a fresh process (None if it failed)."""
    log("part 1: profile")
    path = tmp / "profile.json"
    code, _, stderr = run_child(
        [WORKLOAD, "profile", "--iterations", iterations, "--json", path], child_env()
    )
    if code != 0:
        log(stderr[-3000:])
        return None
    return json.loads(path.read_text())


def show_runs(out: dict, repeats: int) -> None:
    """Print the table of configurations."""
    rows = []
    for name, s in out["configs"].items():
        if "ess_bulk_min" not in s:
            rows.append([name, "failed", *[None] * 11])
            continue
        rows.append(
            [
                name,
                s["sampler"],
                s["num_chains"],
                f"{s['num_warmup']}+{s['num_draws']}",
                s["compile_seconds"],
                s["sampling_seconds"],
                s["fit_seconds"],
                s["ess_bulk_min"],
                s["ess_per_second"],
                s["ess_per_second_end_to_end"],
                s["rhat_max"],
                s["acceptance_rate"],
                s["divergences"],
            ]
        )
    headers = ["sampler", "kernel", "chains", "warm+draws", "compile s", "sampling s", "fit s"]
    headers += ["min ESS", "ESS/s", "ESS/s e2e", "R-hat max", "accept", "div"]
    title = (
        f"Part 1: tutorial workload (N=1000, D=2, K=3, float64; median of {repeats} "
        "fresh processes, seeds 0..; no compilation cache)"
    )
    show(table(title, headers, rows))
    if not out["gibbs_available"]:
        show("(gibbs: not in bgmm.inference.SAMPLERS in this version; skipped)")


def show_profile(p: dict) -> None:
    """Print the profile's table, in microseconds."""
    rows = [
        ["value_and_grad, GEMM form (in fori_loop)", p["grad_seconds_gemm"]],
        ["value_and_grad, direct form (in fori_loop)", p["grad_seconds_direct"]],
        ["  of which: prior + Jacobians alone (no data)", p["grad_seconds_prior_only"]],
        ["  of which: GEMM likelihood alone", p["grad_seconds_likelihood_only"]],
        ["  floor: the two GEMMs + softmax alone", p.get("gemms_seconds") or 0],
        ["empty loop iteration", p["loop_seconds_empty"]],
        ["leapfrog step in a bare HMC kernel (in fori_loop)", p["leapfrog_seconds_in_kernel"]],
        ["leapfrog step inside the full hmc-tutorial run", p.get("leapfrog_seconds_in_run") or 0],
    ]
    show(
        table(
            "Part 1 profile: cost per call at the tutorial size (microseconds)",
            ["what", "us"],
            [[what, seconds * 1e6] for what, seconds in rows],
        )
    )
