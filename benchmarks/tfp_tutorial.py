"""The TFP tutorial's own program ("Bayesian Gaussian Mixture Model and Hamiltonian MCMC"),
faithfully, timed: the baseline of part 2 of ``benchmarks/run.py``.

Same data (RandomState(43)), model (JointDistributionNamed with MVNCholPrecisionTriL,
Dirichlet, Independent Normal, WishartTriL(df=5, input_output_cholesky=True),
MixtureSameFamily), start, bijectors and sampler (HMC, step 0.065, 5 leapfrog steps, inside
TransformedTransitionKernel inside SimpleStepSizeAdaptation(num_adaptation_steps=400);
sample_chain(num_results=2000, num_burnin_steps=500)), float64. The one change: the sampler
is wrapped in ``tf.function(autograph=False, jit_compile=True)`` (XLA) instead of the
tutorial's plain graph mode, and gets an explicit stateless seed so that it can be compiled.

Needs the ``bench`` extra (tensorflow, tf-keras, tfp-nightly). Run as a script; prints the
tutorial's printout and, with ``--json PATH``, writes the timings and diagnostics:

    python benchmarks/tfp_tutorial.py [--draws 2000] [--burnin 500] [--repeats 3] [--json out.json]
        [--rows 1000] [--dims 2]

``--rows`` and ``--dims`` run the same program on the tutorial's recipe at another size (the
means at linspace(-2, 2, 3) in every coordinate, as ``benchmarks/parts/large_n.py``'s
``recipe``): issue 11's N = 10^5, D = 4 workload is ``--rows 100000 --dims 4``.

The first call of the compiled sampler is compile + run, the later ones (same shapes, seeds
0, 1, ...) run only. Min bulk ESS is computed with ArviZ over mix_probs, loc and the lower
triangle of chol_precision, as bgmm's ``summary["ess_bulk_min"]``; one chain, so R-hat is
split-R-hat over its two halves (as bgmm reports a single chain).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN/CUDA chatter on stderr
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the comparison is on the CPU


def _tfp():
    import tensorflow as tf
    import tensorflow_probability as tfp

    return tf, tfp


# The tutorial's sizes and dtype.
DTYPE = np.float64
DIMS = 2
COMPONENTS = 3


def build(num_samples: int = 1000, dims: int = DIMS):
    """The tutorial's model, data and initial state (verbatim up to formatting).

    Returns
    -------
    tuple
        The observations, the unnormalized posterior log density (a function of the three
        parameters), the initial state and the unconstraining bijectors.
    """
    import logging

    # TFP warns (on the root logger) that the tutorial's subclass inherits
    # _parameter_properties; harmless here, and it is the tutorial's code.
    logging.getLogger().setLevel(logging.ERROR)

    bgmm = joint_distribution(num_samples, dims)  # the tutorial's name for its model

    def joint_log_prob(observations, mix_probs, loc, chol_precision):
        return bgmm.log_prob(mix_probs=mix_probs, loc=loc, precision=chol_precision, s=observations)

    observations = draw_observations(num_samples, dims)
    unnormalized_posterior_log_prob = functools.partial(joint_log_prob, observations)
    initial_state = make_initial_state(dims)
    unconstraining_bijectors = make_unconstraining_bijectors()
    return observations, unnormalized_posterior_log_prob, initial_state, unconstraining_bijectors


def mvn_chol_precision_tril_class():
    """The tutorial's ``MVNCholPrecisionTriL`` distribution class."""
    tf, tfp = _tfp()
    tfd = tfp.distributions
    tfb = tfp.bijectors

    class MVNCholPrecisionTriL(tfd.TransformedDistribution):
        """MVN from loc and (Cholesky) precision matrix."""

        def __init__(self, loc, chol_precision_tril, name=None):
            super().__init__(
                distribution=tfd.Independent(
                    tfd.Normal(tf.zeros_like(loc), scale=tf.ones_like(loc)),
                    reinterpreted_batch_ndims=1,
                ),
                bijector=tfb.Chain(
                    [
                        tfb.Shift(shift=loc),
                        tfb.Invert(
                            tfb.ScaleMatvecTriL(scale_tril=chol_precision_tril, adjoint=True)
                        ),
                    ]
                ),
                name=name,
            )

    return MVNCholPrecisionTriL


def joint_distribution(num_samples: int, dims: int = DIMS):
    """The tutorial's ``JointDistributionNamed`` (the tutorial calls it ``bgmm``)."""
    tf, tfp = _tfp()
    tfd = tfp.distributions
    MVNCholPrecisionTriL = mvn_chol_precision_tril_class()
    dtype = DTYPE
    components = COMPONENTS
    return tfd.JointDistributionNamed(
        dict(
            mix_probs=tfd.Dirichlet(concentration=np.ones(components, dtype) / 10.0),
            loc=tfd.Independent(
                tfd.Normal(
                    loc=np.stack(
                        [-np.ones(dims, dtype), np.zeros(dims, dtype), np.ones(dims, dtype)]
                    ),
                    scale=tf.ones([components, dims], dtype),
                ),
                reinterpreted_batch_ndims=2,
            ),
            precision=tfd.Independent(
                tfd.WishartTriL(
                    df=5,
                    scale_tril=np.stack([np.eye(dims, dtype=dtype)] * components),
                    input_output_cholesky=True,
                ),
                reinterpreted_batch_ndims=1,
            ),
            s=lambda mix_probs, loc, precision: tfd.Sample(
                tfd.MixtureSameFamily(
                    mixture_distribution=tfd.Categorical(probs=mix_probs),
                    components_distribution=MVNCholPrecisionTriL(
                        loc=loc, chol_precision_tril=precision
                    ),
                ),
                sample_shape=num_samples,
            ),
        )
    )


def _true_loc(dims: int) -> np.ndarray:
    """The tutorial's [[-2, -2], [0, 0], [2, 2]], in ``dims`` coordinates."""
    return np.repeat(np.linspace(-2.0, 2.0, COMPONENTS)[:, None], dims, axis=1).astype(DTYPE)


def draw_observations(num_samples: int, dims: int = DIMS):
    """The tutorial's data: RandomState(43), three unit-variance clusters."""
    dtype = DTYPE
    true_loc = _true_loc(dims)
    random = np.random.RandomState(seed=43)
    true_hidden_component = random.randint(0, COMPONENTS, num_samples)
    return true_loc[true_hidden_component] + random.randn(num_samples, dims).astype(dtype)


def make_initial_state(dims: int = DIMS):
    """The tutorial's start: equal weights, the true locations, identity precisions."""
    tf, _ = _tfp()
    dtype = DTYPE
    components = COMPONENTS
    return [
        tf.fill([components], value=np.array(1.0 / components, dtype), name="mix_probs"),
        tf.constant(_true_loc(dims), name="loc"),
        tf.linalg.eye(dims, batch_shape=[components], dtype=dtype, name="chol_precision"),
    ]


def make_unconstraining_bijectors():
    """The tutorial's bijectors from unconstrained space to the three parameters."""
    _, tfp = _tfp()
    tfb = tfp.bijectors
    return [
        tfb.SoftmaxCentered(),
        tfb.Identity(),
        tfb.Chain([tfb.TransformDiagonal(tfb.Softplus()), tfb.FillTriangular()]),
    ]


def make_sampler(
    num_results: int = 2000, num_burnin_steps: int = 500, num_samples: int = 1000, dims: int = DIMS
):
    """The tutorial's ``sample()``, compiled with XLA; takes a stateless seed."""
    tf, tfp = _tfp()
    _, log_prob, initial_state, bijectors = build(num_samples, dims)

    @tf.function(autograph=False, jit_compile=True)
    def sample(seed):
        return tfp.mcmc.sample_chain(
            num_results=num_results,
            num_burnin_steps=num_burnin_steps,
            current_state=initial_state,
            kernel=tfp.mcmc.SimpleStepSizeAdaptation(
                tfp.mcmc.TransformedTransitionKernel(
                    inner_kernel=tfp.mcmc.HamiltonianMonteCarlo(
                        target_log_prob_fn=log_prob, step_size=0.065, num_leapfrog_steps=5
                    ),
                    bijector=bijectors,
                ),
                num_adaptation_steps=400,
            ),
            trace_fn=lambda _, pkr: pkr.inner_results.inner_results.is_accepted,
            seed=seed,
        )

    return sample


def diagnostics(mix_probs, loc, chol_precision) -> dict:
    """Min bulk ESS and max R-hat over the same scalars as bgmm's summary, one chain."""
    import arviz as az
    import xarray as xr

    k, d = loc.shape[1], loc.shape[2]
    rows, cols = np.tril_indices(d)
    columns = [mix_probs[:, c] for c in range(k)]
    columns += [loc[:, c, i] for c in range(k) for i in range(d)]
    columns += [
        chol_precision[:, c, i, j] for c in range(k) for i, j in zip(rows, cols, strict=True)
    ]
    flat = np.stack(columns, axis=-1)[None]  # (chain=1, draw, P)
    ess = az.ess(xr.Dataset({"t": (("chain", "draw", "p"), flat)}), method="bulk")["t"].values
    half = flat.shape[1] // 2
    halves = np.stack([flat[0, :half], flat[0, half : 2 * half]])
    rhat = az.rhat(xr.Dataset({"t": (("chain", "draw", "p"), halves)}))["t"].values
    return {"ess_bulk_min": float(np.min(ess)), "rhat_max": float(np.max(rhat))}


def run(
    num_results: int = 2000,
    num_burnin_steps: int = 500,
    repeats: int = 1,
    num_samples: int = 1000,
    dims: int = DIMS,
) -> dict:
    """Compile and run once (seed 0), then ``repeats`` timed runs with seeds 0 .. repeats-1.

    Sampling seconds, min bulk ESS and ESS/s are medians over the timed runs; end to end
    is setup + the first call (compile + run), with the first call's ESS.
    """
    tf, tfp = _tfp()
    start = time.perf_counter()
    sample = make_sampler(num_results, num_burnin_steps, num_samples, dims)
    setup = time.perf_counter() - start

    def call(seed: int):
        begin = time.perf_counter()
        [mix_probs, loc, chol_precision], is_accepted = sample(tf.constant([seed, 0], tf.int32))
        out = [a.numpy() for a in (mix_probs, loc, chol_precision, is_accepted)]
        return time.perf_counter() - begin, out

    first, (mix_probs, loc, chol_precision, is_accepted) = call(0)
    acceptance_rate = float(np.mean(is_accepted.astype(np.float32)))
    print("acceptance_rate:", acceptance_rate)
    print("avg mix probs:", mix_probs.mean(axis=0))
    print("avg loc:\n", loc.mean(axis=0))
    print("avg chol(precision):\n", chol_precision.mean(axis=0))
    first_diag = diagnostics(mix_probs, loc, chol_precision)

    runs = []
    for seed in range(repeats):
        seconds, (mp, lc, cp, acc) = call(seed)
        diag = diagnostics(mp, lc, cp)
        runs.append(
            {
                "seed": seed,
                "sampling_seconds": seconds,
                "acceptance_rate": float(np.mean(acc.astype(np.float32))),
                **diag,
                "ess_per_second": diag["ess_bulk_min"] / seconds,
            }
        )

    def median(key):
        return float(np.median([r[key] for r in runs]))

    return {
        "program": "TFP tutorial (tf.function jit_compile=True, float64)",
        "tensorflow_version": tf.__version__,
        "tfp_version": tfp.__version__,
        "num_burnin": num_burnin_steps,
        "num_draws": num_results,
        "num_chains": 1,
        "repeats": repeats,
        "setup_seconds": setup,
        "first_call_seconds": first,
        "compile_seconds": max(first - median("sampling_seconds"), 0.0),
        "sampling_seconds": median("sampling_seconds"),
        "total_seconds": setup + first,
        "acceptance_rate": acceptance_rate,
        "weights_mean": mix_probs.mean(axis=0).tolist(),
        "means_mean": loc.mean(axis=0).tolist(),
        "chol_precision_mean": chol_precision.mean(axis=0).tolist(),
        "ess_bulk_min": median("ess_bulk_min"),
        "rhat_max": median("rhat_max"),
        "ess_per_second": median("ess_per_second"),
        "first_call_ess_bulk_min": first_diag["ess_bulk_min"],
        "ess_per_second_end_to_end": first_diag["ess_bulk_min"] / (setup + first),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--burnin", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the first")
    parser.add_argument("--json", help="write the record here")
    parser.add_argument("--rows", type=int, default=1000, help="N (the tutorial's: 1000)")
    parser.add_argument("--dims", type=int, default=DIMS, help="D (the tutorial's: 2)")
    args = parser.parse_args(argv)
    try:
        _tfp()
    except ImportError as exc:
        print(f"tensorflow-probability unavailable: {exc}", file=sys.stderr)
        return 3
    record = run(args.draws, args.burnin, args.repeats, args.rows, args.dims)
    print(
        f"first call (compile + run) {record['first_call_seconds']:.2f} s, later calls "
        f"{record['sampling_seconds']:.2f} s (median), min bulk ESS {record['ess_bulk_min']:.0f}, "
        f"ESS/s {record['ess_per_second']:.1f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
