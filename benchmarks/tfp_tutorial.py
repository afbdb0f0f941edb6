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

    python benchmarks/tfp_tutorial.py [--draws 2000] [--burnin 500] [--json out.json]

The first call of the compiled sampler is compile + run, the second (same shapes, new seed)
run only. Min bulk ESS is computed with ArviZ over mix_probs, loc and the lower triangle of
chol_precision, as bgmm's ``summary["ess_bulk_min"]``; one chain, so R-hat is split-R-hat
over its two halves (as bgmm reports a single chain).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN/CUDA chatter on stderr
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the comparison is on the CPU


def _tfp():
    import tensorflow as tf
    import tensorflow_probability as tfp

    return tf, tfp


def build(num_samples: int = 1000):
    """The tutorial's model, data and initial state (verbatim up to formatting)."""
    import numpy as np

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

    dtype = np.float64
    dims = 2
    components = 3
    bgmm = tfd.JointDistributionNamed(
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

    def joint_log_prob(observations, mix_probs, loc, chol_precision):
        return bgmm.log_prob(mix_probs=mix_probs, loc=loc, precision=chol_precision, s=observations)

    true_loc = np.array([[-2.0, -2], [0, 0], [2, 2]], dtype)
    random = np.random.RandomState(seed=43)
    true_hidden_component = random.randint(0, components, num_samples)
    observations = true_loc[true_hidden_component] + random.randn(num_samples, dims).astype(dtype)

    unnormalized_posterior_log_prob = functools.partial(joint_log_prob, observations)
    initial_state = [
        tf.fill([components], value=np.array(1.0 / components, dtype), name="mix_probs"),
        tf.constant(np.array([[-2.0, -2], [0, 0], [2, 2]], dtype), name="loc"),
        tf.linalg.eye(dims, batch_shape=[components], dtype=dtype, name="chol_precision"),
    ]
    unconstraining_bijectors = [
        tfb.SoftmaxCentered(),
        tfb.Identity(),
        tfb.Chain([tfb.TransformDiagonal(tfb.Softplus()), tfb.FillTriangular()]),
    ]
    return observations, unnormalized_posterior_log_prob, initial_state, unconstraining_bijectors


def make_sampler(num_results: int = 2000, num_burnin_steps: int = 500):
    """The tutorial's ``sample()``, compiled with XLA; takes a stateless seed."""
    tf, tfp = _tfp()
    _, log_prob, initial_state, bijectors = build()

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
    import numpy as np
    import xarray as xr

    k, d = loc.shape[1], loc.shape[2]
    rows, cols = np.tril_indices(d)
    columns = [mix_probs[:, c] for c in range(k)]
    columns += [loc[:, c, i] for c in range(k) for i in range(d)]
    columns += [chol_precision[:, c, i, j] for c in range(k) for i, j in zip(rows, cols, strict=True)]
    flat = np.stack(columns, axis=-1)[None]  # (chain=1, draw, P)
    ess = az.ess(xr.Dataset({"t": (("chain", "draw", "p"), flat)}), method="bulk")["t"].values
    half = flat.shape[1] // 2
    halves = np.stack([flat[0, :half], flat[0, half : 2 * half]])
    rhat = az.rhat(xr.Dataset({"t": (("chain", "draw", "p"), halves)}))["t"].values
    return {"ess_bulk_min": float(np.min(ess)), "rhat_max": float(np.max(rhat))}


def run(num_results: int = 2000, num_burnin_steps: int = 500, seed: int = 0) -> dict:
    import numpy as np

    tf, tfp = _tfp()
    start = time.perf_counter()
    sample = make_sampler(num_results, num_burnin_steps)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    [mix_probs, loc, chol_precision], is_accepted = sample(tf.constant([seed, 1], tf.int32))
    mix_probs.numpy()
    first = time.perf_counter() - start

    start = time.perf_counter()
    [mix_probs, loc, chol_precision], is_accepted = sample(tf.constant([seed, 2], tf.int32))
    mix_probs = mix_probs.numpy()
    second = time.perf_counter() - start

    loc, chol_precision = loc.numpy(), chol_precision.numpy()
    acceptance_rate = float(np.mean(is_accepted.numpy().astype(np.float32)))
    print("acceptance_rate:", acceptance_rate)
    print("avg mix probs:", mix_probs.mean(axis=0))
    print("avg loc:\n", loc.mean(axis=0))
    print("avg chol(precision):\n", chol_precision.mean(axis=0))
    diag = diagnostics(mix_probs, loc, chol_precision)
    sampling = second
    compile_seconds = max(first - second, 0.0)
    return {
        "program": "TFP tutorial (tf.function jit_compile=True, float64)",
        "tensorflow_version": tf.__version__,
        "tfp_version": tfp.__version__,
        "num_burnin": num_burnin_steps,
        "num_draws": num_results,
        "num_chains": 1,
        "setup_seconds": setup,
        "first_call_seconds": first,
        "compile_seconds": compile_seconds,
        "sampling_seconds": sampling,
        "total_seconds": setup + first,
        "acceptance_rate": acceptance_rate,
        "weights_mean": mix_probs.mean(axis=0).tolist(),
        "means_mean": loc.mean(axis=0).tolist(),
        "chol_precision_mean": chol_precision.mean(axis=0).tolist(),
        **diag,
        "ess_per_second": diag["ess_bulk_min"] / sampling,
        "ess_per_second_end_to_end": diag["ess_bulk_min"] / (setup + first),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--burnin", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the record here")
    args = parser.parse_args(argv)
    try:
        _tfp()
    except ImportError as exc:
        print(f"tensorflow-probability unavailable: {exc}", file=sys.stderr)
        return 3
    record = run(args.draws, args.burnin, args.seed)
    print(
        f"first call (compile + run) {record['first_call_seconds']:.2f} s, second call "
        f"{record['sampling_seconds']:.2f} s, min bulk ESS {record['ess_bulk_min']:.0f}, "
        f"ESS/s {record['ess_per_second']:.1f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
