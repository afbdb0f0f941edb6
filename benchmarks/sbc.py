"""Simulation-based calibration (Talts et al. 2018) of bgmm's HMC, NUTS and Gibbs samplers.

    python benchmarks/sbc.py [--replications 200] [--quick] [--json benchmarks/sbc_results.json]

For each configuration (K, D, N, priors) and each replication: draw the parameters from the
prior (theta ~ Dirichlet(alpha0), mu_k ~ N(m0_k, s0^2 I), T_k ~ Wishart(nu, S), L_k =
chol(T_k); scipy's samplers, not bgmm's), draw N observations from the mixture, run
``bgmm.inference.sample_posterior`` (one chain, started from an independent draw from the
prior), thin the kept draws to L = 99 equally spaced ones (the chain is rerun 4x longer when
the smallest bulk ESS of the test quantities is below L) and record the rank of the true value
of each test quantity among the L draws. Under a correct sampler every rank is uniform on
0..L. Uniformity is tested with a chi-square test on 20 bins and a Kolmogorov-Smirnov test of
the jittered ranks; p-values are Holm-corrected within each sampler x configuration and over
the whole run. Rank histograms with the binomial 99% band go to docs/sbc-*.png. A negative
control reruns one configuration with kernels that target a different posterior (HMC with
``target="tutorial"``, the Wishart prior without the Cholesky Jacobian; Gibbs with nu + 1
degrees of freedom) and must be rejected. docs/sbc.md has the method and the results.

The run is a benchmark part, not a test; ``--quick`` is a smoke run of a few replications
on the smallest configuration. The parts are in ``benchmarks/calibration/``: ``design``
(configurations, chain lengths, negative controls), ``simulation``, ``replication`` and
``uniformity`` (the tests and the figures).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from calibration.design import (
    CONFIGS,
    L_DRAWS,
    MAX_ATTEMPTS,
    NEGATIVE_CONFIG,
    NEGATIVE_CONTROLS,
    NUM_BINS,
    RETRY_FACTOR,
    SAMPLERS,
    chain_lengths,
)
from calibration.replication import compact, keep_programs_in_memory, run_experiment
from calibration.uniformity import figure, holm_over_run
from harness import log
from host import cpu_info, package_versions

import bgmm

bgmm.use_cpu_cores()  # opt-ins of this host: one device per CPU core, float64 arrays
jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 4 replications of the smallest configuration, "
        "short chains, no negative control; writes to a temporary directory",
    )
    parser.add_argument(
        "--json",
        default=None,
        help="default benchmarks/sbc_results.json (--quick: a temporary file)",
    )
    parser.add_argument(
        "--figures",
        default=None,
        help="directory for the figures (default docs/; --quick: temporary)",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--no-negative-control", action="store_true")
    parser.add_argument("--seed", type=int, default=20180101)
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="turn on bgmm's compilation cache in this directory (default: off; "
        "each program is compiled once per process)",
    )
    return parser.parse_args(argv)


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The results file and the figures' directory (created); ``--quick`` writes to a new
    temporary directory unless told otherwise."""
    out_dir = Path(tempfile.mkdtemp(prefix="bgmm-sbc-quick-")) if args.quick else None
    if args.json:
        json_path = Path(args.json)
    elif args.quick:
        json_path = out_dir / "sbc_results.json"
    else:
        json_path = REPO / "benchmarks" / "sbc_results.json"
    fig_dir = Path(args.figures) if args.figures else (out_dir if args.quick else REPO / "docs")
    fig_dir.mkdir(parents=True, exist_ok=True)
    return json_path, fig_dir


def machine_info() -> dict:
    """Date, platform, CPUs, load, JAX's devices, package versions and the git state."""
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "cpu_model": cpu_info()["cpu_model"],
    }
    info["versions"] = package_versions(
        ("bgmm", "jax", "jaxlib", "numpy", "blackjax", "arviz", "scipy")
    )
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git_head"] = head
        info["src_uncommitted_changes"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def settings(args, configs, samplers, replications, programs_in_memory) -> dict:
    """What the results file records of how the run was made."""
    return {
        "replications": replications,
        "L": L_DRAWS,
        "bins": NUM_BINS,
        "retry_factor": RETRY_FACTOR,
        "seed": args.seed,
        "quick": args.quick,
        "chains": 1,
        "chain_method": "sequential",
        "start": "an independent draw from the prior",
        "programs_in_memory": programs_in_memory,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "configs": {
            name: {
                "K": c["K"],
                "D": c["D"],
                "N": c["N"],
                "priors": {f: np.asarray(v).tolist() for f, v in c["priors"]._asdict().items()},
            }
            for name, c in CONFIGS.items()
            if name in configs
        },
        "chain_lengths": {f"{smp} {c}": chain_lengths(smp, c) for c in configs for smp in samplers},
        "max_attempts": MAX_ATTEMPTS,
    }


def run_main(args, configs, samplers, replications, results: dict) -> None:
    """Every sampler on every configuration, into ``results["experiments"]``."""
    for config_name in configs:
        for sampler in samplers:
            label = f"{sampler} {config_name}"
            lengths = chain_lengths(sampler, config_name)
            if args.quick:
                lengths = {"num_warmup": 200, "num_draws": 400}
                results["settings"]["chain_lengths"][label] = lengths
            results["experiments"][label] = run_experiment(
                label, args.seed, config_name, sampler, lengths, replications
            )


def run_negative_controls(args, replications, results: dict) -> None:
    """The kernels that target another posterior, into ``results["negative_controls"]``."""
    for name, control in NEGATIVE_CONTROLS.items():
        sampler = control["sampler"]
        label = f"{name} {NEGATIVE_CONFIG}"
        extra = {"target": control["target"]}
        if "df_shift" in control:
            extra["df_shift"] = control["df_shift"]
        exp = run_experiment(
            label,
            args.seed,
            NEGATIVE_CONFIG,
            sampler,
            chain_lengths(sampler, NEGATIVE_CONFIG),
            replications,
            rng_tag=1,
            **extra,
        )
        exp["summary"]["description"] = control["description"]
        results["negative_controls"][label] = exp


def all_experiments(results: dict) -> list[tuple[str, dict]]:
    """The main run's experiments, then the negative controls: (label, experiment)."""
    return [*results["experiments"].items(), *results["negative_controls"].items()]


def slug(text: str) -> str:
    """A configuration's name as it appears in a figure's file name."""
    return text.lower().replace("-", "")


def draw_figures(results: dict, fig_dir: Path) -> list[str]:
    """One figure of rank histograms per experiment; their paths (relative to the repo)."""
    figures = []
    for label, exp in all_experiments(results):
        s = exp["summary"]
        name = label.split()[0] if label in results["negative_controls"] else s["sampler"]
        path = fig_dir / f"sbc-{name}-{slug(s['config'])}.png"
        title = (
            f"SBC {label}: {s['replications']} replications; rank among L = {L_DRAWS} thinned "
            f"draws (warm-up {s['num_warmup']}, {s['num_draws']} draws, x{RETRY_FACTOR} longer "
            f"when ESS < L)\ngrey: binomial 99% band of a bin; red: Holm p < 0.01"
        )
        figure(path, title, exp["records"], exp["analysis"])
        figures.append(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path))
    return figures


def dump_json(results: dict) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(results, indent=1)
    return re.sub(
        r"\[\n\s*([-0-9.eE+,\s]+?)\n\s*\]",  # a list json.dumps spread over lines: no key
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
        text,
    )


def print_summary(results: dict, json_path: Path) -> None:
    """One line per experiment: replications, wall time, retries and the smallest p-values."""
    print(
        f"{'experiment':34s} {'reps':>4s} {'wall s':>7s} {'retry':>5s} "
        f"{'min p':>8s} {'Holm p':>8s} {'Holm all':>8s}"
    )
    for label, exp in all_experiments(results):
        s, a = exp["summary"], exp["analysis"]
        print(
            f"{label:34s} {s['replications']:4d} {s['wall_seconds']:7.0f} "
            f"{s['retried_longer']:5d} {a['min_p']:8.2g} {a['min_p_holm']:8.2g} "
            f"{a.get('min_p_holm_all', float('nan')):8.2g}"
        )
    print(
        f"total {results['wall_seconds']:.0f} s; wrote {json_path} "
        f"and {len(results['figures'])} figures"
    )


def main() -> None:
    """Run the SBC experiments, test the ranks, draw the figures, write the results file."""
    args = parse_args()
    configs = args.configs.split(",")
    samplers = args.samplers.split(",")
    replications = args.replications
    negative = not args.no_negative_control
    if args.quick:
        configs, replications, negative = configs[:1], min(replications, 4), False
    json_path, fig_dir = output_paths(args)
    if args.cache_dir:
        log(f"compilation cache: {bgmm.enable_compilation_cache(args.cache_dir)}")
    programs_in_memory = keep_programs_in_memory()
    log(f"programs kept in memory: {programs_in_memory}")

    machine = machine_info()
    t_start = time.perf_counter()
    results: dict = {
        "settings": settings(args, configs, samplers, replications, programs_in_memory),
        "machine": machine,
        "experiments": {},
        "negative_controls": {},
    }
    run_main(args, configs, samplers, replications, results)
    if negative:
        run_negative_controls(args, replications, results)
    results["total_tests"] = holm_over_run(results["experiments"])
    results["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["figures"] = draw_figures(results, fig_dir)
    for group in ("experiments", "negative_controls"):
        results[group] = {label: compact(exp) for label, exp in results[group].items()}
    json_path.write_text(dump_json(results) + "\n")
    print_summary(results, json_path)


if __name__ == "__main__":
    main()
