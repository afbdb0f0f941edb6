"""bgmm's benchmark suite: one command, a plain table per part, one JSON file.

    python benchmarks/run.py [--parts 1,2,3,4,5] [--quick] [--json benchmarks/results.json]

Parts (docs/benchmarks.md has the results and what they mean; each is a module of
``benchmarks/parts/``):

1. Tutorial workload, per sampler (a fresh process each, persistent compilation cache off):
   compile and sampling seconds, min bulk ESS over weights, means and the lower triangle of
   the Cholesky factors, min-ESS per second (sampling only and compile + sampling), R-hat
   max; and a profile: one value_and_grad and one HMC transition at the tutorial size,
   in-loop, against the cost per leapfrog step inside the full run (``parts.tutorial``).
2. The TFP tutorial's own program (XLA) on the same data, same run, when the ``bench``
   extra is installed; the ratio bgmm / TFP of min-ESS/s (``parts.tfp``).
3. Scale: value+gradient time at N = 10^6, D = 8, K = 8 (float64 and float32) of the direct
   autodiff form, the fast (two-GEMM) form, the full sampler target, and the two GEMMs
   alone (the floor); peak memory (max RSS) of ``bgmm fit`` at that size (``parts.scale``).
4. Scaling curve: value+gradient time for N = 10^3 .. 10^7, D in {2, 8, 32}, K in {3, 16}
   (``parts.scaling_curve``).
5. ``bgmm demo`` end to end: cold (no cache), first run with an empty cache, warm cache
   (``parts.demo``).
6. What a fit answers, in fresh processes: memberships, predictive density and draws,
   similarity and point partitions, a second fit of the same shape; ``bgmm select``
   cold and warm (``parts.answers``).
7. A warm cache and data of another size: ``bgmm fit`` of 1,000 rows, then of 1,100 rows
   (warm) and of 1,100 rows with an empty cache (cold); compile seconds (``parts.sizes``).
8. Large N: ``bgmm fit`` at N = 10^5, D = 4, K = 3 with ``--metric diag`` and ``dense``
   (at most 3 seeds): ESS per second and per gradient (``parts.large_n``).
9. Rows split over 1, 2, 4 devices and over 2 processes (JAX's distributed runtime): the
   sampler's value and gradient and a psum's latency, N = 10^5 and 10^6 (``parts.split_rows``).
10. The warm-up on a subsample at N = 10^5: ``bgmm fit`` with the warm-up on all rows and on
   10,000, at 4 leapfrog steps and fitted ones (``parts.warmup_subsample``).
11. ``bgmm fit --target-ess 400`` at N = 10^6, D = 8, K = 8 (part 3's data), every other
   option at its default: wall and sampling seconds, draws, min bulk ESS, R-hat, peak RSS
   (``parts.default_scale``).
gpu. HMC draws per second on synthetic data (vectorised chains, float32): for a GPU, see
   benchmarks/gpu.sh (``parts.gpu``).

``--quick`` shrinks every part (a smoke test). Timings are medians over repeats; other
processes on the machine add noise, so the load average at the start and the end is
recorded with the machine.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness import HERE, save, show, table
from host import git_state, load_average, machine_info
from parts import (
    answers,
    default_scale,
    demo,
    gpu,
    large_n,
    scale,
    scaling_curve,
    sizes,
    split_rows,
    targets,
    tfp,
    tutorial,
    warmup_subsample,
)

# In the order they run.
PARTS = {
    "1": tutorial.run,
    "2": tfp.run,
    "3": scale.run,
    "4": scaling_curve.run,
    "5": demo.run,
    "6": answers.run,
    "7": sizes.run,
    "8": large_n.run,
    "9": split_rows.run,
    "10": warmup_subsample.run,
    "11": default_scale.run,
    "gpu": gpu.run,
}


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    """The command line's options (docs/benchmarks.md lists them)."""
    p = argparse.ArgumentParser(description="bgmm benchmark suite (see docs/benchmarks.md)")
    p.add_argument(
        "--parts", default="1,2,3,4,5", help="comma-separated: 1,...,11,gpu (default 1,2,3,4,5)"
    )
    p.add_argument("--quick", action="store_true", help="shrink everything (smoke test)")
    p.add_argument("--json", default=str(HERE / "results.json"), help="results file")
    p.add_argument(
        "--repeats",
        type=int,
        help="fresh processes per configuration (parts 1, 2, 5, 7; default 10, --quick 1)",
    )
    p.add_argument("--scale-n", type=lambda s: int(float(s)), help="part 3 N (1e6)")
    p.add_argument("--scale-d", type=int, default=8)
    p.add_argument("--scale-k", type=int, default=8)
    p.add_argument("--dtypes", default="float64,float32", help="part 3 dtypes")
    p.add_argument("--no-fit-memory", action="store_true", help="part 3 without bgmm fit")
    p.add_argument("--curve-n", type=_ints, help="part 4 N values (1e3,...,1e7)")
    p.add_argument("--curve-d", type=_ints, help="part 4 D values (2,8,32)")
    p.add_argument("--curve-k", type=_ints, help="part 4 K values (3,16)")
    p.add_argument("--curve-dtypes", default="float64", help="part 4 dtypes")
    p.add_argument(
        "--mem-limit-gb",
        type=float,
        default=6.0,
        help="parts 3, 4: skip a form whose estimated memory exceeds this",
    )
    p.add_argument("--gpu-n", type=_ints, help="gpu part N values (1e6,1e7)")
    p.add_argument("--gpu-d", type=int, default=16)
    p.add_argument("--gpu-k", type=int, default=16)
    p.add_argument("--gpu-chains", type=int, default=4)
    p.add_argument("--gpu-warmup", type=int)
    p.add_argument("--gpu-draws", type=int)
    p.add_argument("--gpu-leapfrog", type=int)
    p.add_argument(
        "--gpu-forms",
        default="gemm,direct",
        help="likelihood forms for the gpu part (auto, gemm, direct)",
    )
    return p


def fill_defaults(opts: argparse.Namespace) -> None:
    """Split the comma-separated options and fill the defaults, smaller with ``--quick``."""
    q = opts.quick
    # A run's min ESS varies widely from seed to seed (docs/benchmarks.md, Repeatability):
    # the median of 3 seeds moved the TFP ratio too much to judge the target.
    opts.repeats = opts.repeats or (1 if q else 10)
    opts.scale_n = opts.scale_n or (100_000 if q else 1_000_000)
    opts.dtypes = [x.strip() for x in opts.dtypes.split(",")]
    opts.curve_dtypes = [x.strip() for x in opts.curve_dtypes.split(",")]
    opts.curve_n = opts.curve_n or ([1000, 10_000] if q else [10**e for e in range(3, 8)])
    opts.curve_d = opts.curve_d or ([2, 8] if q else [2, 8, 32])
    opts.curve_k = opts.curve_k or ([3] if q else [3, 16])
    opts.gpu_n = opts.gpu_n or ([10_000] if q else [1_000_000, 10_000_000])
    opts.gpu_warmup = opts.gpu_warmup if opts.gpu_warmup is not None else (10 if q else 100)
    opts.gpu_draws = opts.gpu_draws if opts.gpu_draws is not None else (10 if q else 100)
    opts.gpu_leapfrog = opts.gpu_leapfrog or (4 if q else 16)
    opts.gpu_forms = [x.strip() for x in opts.gpu_forms.split(",")]


def show_header(results: dict) -> None:
    """Print the versions and the machine."""
    m = results["machine"]
    show(
        f"bgmm {m['versions'].get('bgmm')} benchmarks, {m['date']}\n"
        f"machine: {m.get('cpu_model')}, {m['cpus_available']} cores, {m.get('memory_gib')} GiB, "
        f"load average {m['load_average_start']}\n"
        f"jax {m['versions'].get('jax')} ({m['jax_backend']}, {len(m['jax_devices'])} device(s)), "
        f"numpy {m['versions'].get('numpy')}" + (" [quick]" if results["quick"] else "")
    )


def finish(results: dict) -> None:
    """Record the end state, warn if the code changed during the run, print the targets."""
    results["targets"] = targets.summarise(results)
    machine = results["machine"]
    machine["load_average_end"] = load_average()
    machine["git_end"] = git_state()
    if machine["git_end"] != machine["git_start"]:
        show(
            "warning: src/ changed during the run (commit or working tree); the parts may "
            f"have measured different code: {machine['git_start']} -> {machine['git_end']}"
        )


def show_targets(results: dict) -> None:
    """Print each target with the measured value and whether it is met."""
    if not results["targets"]:
        return
    title = "Targets"
    if results["quick"]:
        title += " (--quick: shrunk sizes and runs, not comparable with the targets)"
    rows = [[t["target"], t["value"], t["met"]] for t in results["targets"]]
    show(table(title, ["target", "measured", "met"], rows))


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print their tables and write the results file.

    Parameters
    ----------
    argv : list of str, optional
        The options (default: the command line).

    Returns
    -------
    int
        The exit status, 0.
    """
    arg_parser = parser()
    opts = arg_parser.parse_args(argv)
    parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        arg_parser.error(f"unknown parts {sorted(unknown)}")
    fill_defaults(opts)

    start = time.perf_counter()
    results: dict = {
        "machine": machine_info(),
        "quick": opts.quick,
        "parts": parts,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    show_header(results)
    save(opts.json, results)
    results["seconds"] = {}
    for part, run_part in PARTS.items():
        if part in parts:
            begin = time.perf_counter()
            run_part(opts, results)
            results["seconds"][part] = time.perf_counter() - begin
            results.setdefault("load_average_after_part", {})[part] = load_average()
            save(opts.json, results)
    finish(results)
    results["total_seconds"] = time.perf_counter() - start
    show_targets(results)
    save(opts.json, results)
    show(f"total {results['total_seconds']:.0f} s; wrote {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
