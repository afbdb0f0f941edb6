"""Child processes of ``benchmarks/run.py``: each measurement that needs a fresh process.

    python benchmarks/workload.py config NAME [--seed S] [--draws N] [--warmup N] --json OUT
        one part-1 sampler configuration through the public API (``bgmm.demo``)
    python benchmarks/workload.py profile [--iterations N] --json OUT
        in-loop cost of one value_and_grad and of one HMC transition at the tutorial size
    python benchmarks/workload.py rss OUT -- COMMAND ...
        run COMMAND as a subprocess and record its peak resident memory (RUSAGE_CHILDREN)

A fresh process per configuration keeps compile times honest (nothing compiled earlier in
the same process is reused). The persistent compilation cache is never enabled here (only
the CLI enables it, and ``harness.child_env`` strips BGMM_CACHE_DIR and turns the cache
off by environment).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

IMPORT_START = time.perf_counter()

# name -> (demo target, options of bgmm.demo)
CONFIGS: dict[str, tuple[str, dict]] = {
    # The tutorial's exact configuration: 1 chain from its start, HMC 5 x 0.065 adapted by
    # its rule over 400 of 500 burn-in steps, 2000 draws, the tutorial's density.
    "hmc-tutorial": ("tutorial", {}),
    "hmc-tutorial-4ch": ("tutorial", {"num_chains": 4}),
    # bgmm demo's default: 4 chains, windowed adaptation, jittered paths.
    "hmc": ("correct", {}),
    "nuts": ("correct", {"sampler": "nuts"}),
    "gibbs": ("correct", {"sampler": "gibbs"}),
}


def run_config(name: str, seed: int, draws: int | None, warmup: int | None) -> dict:
    import numpy as np

    import bgmm

    import_seconds = time.perf_counter() - IMPORT_START
    target, options = CONFIGS[name]
    options = dict(options, seed=seed)
    if draws is not None:
        options["num_draws"] = draws
    if warmup is not None:
        options["num_warmup"] = warmup
    result = bgmm.demo(target, **options)
    s, t, st = result.summary, result.timing, result.settings
    stats = result.idata.sample_stats
    n_steps = stats["n_steps"].values if "n_steps" in stats else None
    mean_steps = float(np.mean(n_steps)) if n_steps is not None else None
    transitions = st["num_chains"] * (st["num_warmup"] + st["num_draws"])
    import jax

    return {
        "config": name,
        "seed": seed,
        "sampler": st["sampler"],
        "target": st["target"],
        "adaptation": st["adaptation"],
        "num_chains": st["num_chains"],
        "num_warmup": st["num_warmup"],
        "num_draws": st["num_draws"],
        "chain_method": st["chain_method"],
        "num_devices": jax.local_device_count(),
        "step_size": st["step_size"],
        "mean_leapfrog_steps": mean_steps,
        "transitions": transitions,
        "acceptance_rate": s["acceptance_rate"],
        "divergences": s["divergences"],
        "ess_bulk_min": s["ess_bulk_min"],
        "ess_tail_min": s["ess_tail_min"],
        "rhat_max": s["rhat_max"],
        "weights_mean": s["weights_mean"],
        "compile_seconds": t["compile_seconds"],
        "sampling_seconds": t["sampling_seconds"],
        "fit_seconds": t["total_seconds"],
        "import_seconds": import_seconds,
        "process_seconds": time.perf_counter() - IMPORT_START,
    }


def two_gemms(weights, phi):
    """The arithmetic floor of the fast likelihood: logits, softmax, statistics R' Phi.

    The logits come from bgmm's own ``component_logits``, so the floor and the fast form
    lay them out alike (K x N for small problems, else N x K).
    """
    import jax

    from bgmm.model.gemm_likelihood import component_logits

    logits, component_axis = component_logits(weights, phi)
    responsibilities = jax.nn.softmax(logits, axis=component_axis)
    return (responsibilities.T if component_axis == 1 else responsibilities) @ phi


def _in_loop_seconds(body, init, iterations: int, repeats: int = 5) -> float:
    """Seconds per iteration of ``body`` run inside one compiled fori_loop (median)."""
    import jax
    import numpy as np

    loop = jax.jit(lambda x: jax.lax.fori_loop(0, iterations, lambda i, c: body(c), x))
    jax.block_until_ready(loop(init))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(loop(init))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / iterations


def run_profile(iterations: int) -> dict:
    """Where an HMC step's time goes at the tutorial size (N = 1000, D = 2, K = 3, float64).

    grad: one value_and_grad of the sampler's target (prior + GEMM likelihood + Jacobians).
    transition: one BlackJAX HMC transition of 5 leapfrog steps (the kernel bgmm runs,
    momentum draw, 5 gradients, Metropolis test), per leapfrog step. Both inside a
    fori_loop, so no Python or dispatch overhead. The per-leapfrog cost inside a full run
    (runner, adaptation, recording) comes from part 1's hmc-tutorial record.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # the tutorial's float64, for this host
    from bgmm.model import Params, to_unconstrained, tutorial_priors
    from bgmm.tutorial import tutorial_data, tutorial_start

    data = tutorial_data()
    priors = tutorial_priors(2)
    position = to_unconstrained(Params(*(jnp.asarray(a) for a in tutorial_start())))
    out = {"iterations": iterations, "N": 1000, "D": 2, "K": 3, "dtype": "float64"}
    out.update(_gradient_costs(data, priors, position, iterations))
    per_transition = _transition_cost(data, priors, position, max(iterations // 5, 1))
    out["transition_seconds"] = per_transition
    out["leapfrog_seconds_in_kernel"] = per_transition / 5
    out["num_devices"] = jax.local_device_count()
    return out


def _gradient_costs(data, priors, position, iterations: int) -> dict:
    """Seconds per value_and_grad of the target (both forms) and of its parts, in-loop."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bgmm.inference import prepare_data
    from bgmm.model import make_logdensity, to_constrained
    from bgmm.model.gemm_likelihood import gemm_log_likelihood

    def feed_back(pos, g):
        # The gradient goes back into the carry (scaled to nothing) so that the loop cannot
        # hoist the call.
        return jax.tree.map(lambda p, q: p + 1e-30 * q, pos, g)

    def target_body(model_data):
        def body(pos):
            _, g = jax.value_and_grad(make_logdensity(model_data, priors, "tutorial"))(pos)
            return feed_back(pos, g)

        return body

    out = {}
    for form in ("gemm", "direct"):
        body = target_body(prepare_data(data, jnp.float64, form))
        out[f"grad_seconds_{form}"] = _in_loop_seconds(body, position, iterations)
    # The parts of the GEMM form: prior + Jacobians alone (no data), likelihood alone.
    no_data = prepare_data(np.zeros((0, 2)), jnp.float64, "gemm")
    out["grad_seconds_prior_only"] = _in_loop_seconds(target_body(no_data), position, iterations)
    features = prepare_data(data, jnp.float64, "gemm")

    def likelihood_body(pos):
        _, g = jax.value_and_grad(lambda q: gemm_log_likelihood(to_constrained(q, 2), features))(
            pos
        )
        return feed_back(pos, g)

    out["grad_seconds_likelihood_only"] = _in_loop_seconds(likelihood_body, position, iterations)
    # The floor of the GEMM likelihood at this size: logits, responsibilities, statistics.
    phi = features.phi
    weights = jnp.full((3, phi.shape[1]), 0.01)
    out["gemms_seconds"] = _in_loop_seconds(
        lambda w: w + 1e-30 * two_gemms(w, phi), weights, iterations
    )
    out["loop_seconds_empty"] = _in_loop_seconds(
        lambda pos: jax.tree.map(lambda p: p * (1 + 1e-30), pos), position, iterations
    )
    return out


def _transition_cost(data, priors, position, iterations: int) -> float:
    """Seconds per transition of a bare bgmm HMC kernel (5 leapfrog steps), in-loop."""
    import jax
    import jax.numpy as jnp

    from bgmm.inference import prepare_data
    from bgmm.model import make_logdensity
    from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc

    logdensity = make_logdensity(prepare_data(data, jnp.float64, "gemm"), priors, "tutorial")
    step = build_hmc_step(logdensity, jitter_steps=False)
    size = sum(a.size for a in jax.tree.leaves(position))
    tuning = Tuning(jnp.asarray(0.065), jnp.ones(size), jnp.int32(5))
    key = jax.random.key(0)

    def transition_body(carry):
        state, i = carry
        state, _ = step(jax.random.fold_in(key, i), state, tuning)
        return state, i + 1

    state = init_hmc(position, logdensity)
    return _in_loop_seconds(transition_body, (state, jnp.asarray(0)), iterations)


def run_rss(out: str, command: list[str]) -> int:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {
        "command": command,
        "returncode": proc.returncode,
        "max_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "wall_seconds": wall,
        "stdout": proc.stdout,
        "stderr": proc.stderr[-4000:],
    }
    with open(out, "w") as f:
        json.dump(record, f, indent=1)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "rss":
        if len(argv) < 4 or argv[2] != "--":
            print("usage: workload.py rss OUT -- COMMAND ...", file=sys.stderr)
            return 2
        return run_rss(argv[1], argv[3:])
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    config = sub.add_parser("config")
    config.add_argument("name", choices=tuple(CONFIGS))
    config.add_argument("--seed", type=int, default=0)
    config.add_argument("--draws", type=int)
    config.add_argument("--warmup", type=int)
    config.add_argument("--json", required=True)
    profile = sub.add_parser("profile")
    profile.add_argument("--iterations", type=int, default=20000)
    profile.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if args.what == "config":
        record = run_config(args.name, args.seed, args.draws, args.warmup)
    else:
        record = run_profile(args.iterations)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
