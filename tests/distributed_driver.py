"""The log density and its gradient at one point, with the data's rows split or not.

Usage: python distributed_driver.py MODE OUT.json [PROCESS_ID NUM_PROCESSES PORT]

MODE: "whole" (one device, all rows), "devices" (one process, its rows split over its
devices; set XLA_FLAGS=--xla_force_host_platform_device_count=2) or "processes" (this
process reads only its block of rows; JAX's distributed runtime with gloo collectives).
Writes {structure: {"value": float, "gradient": [floats]}} for every covariance structure.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

N, D, K = 1000, 3, 3
STRUCTURES = ("full", "diag", "tied", "spherical")


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    jax.config.update("jax_enable_x64", True)
    process_id, num_processes = 0, 1
    if mode == "processes":
        process_id, num_processes, port = (int(a) for a in sys.argv[3:6])
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)

    import jax.numpy as jnp
    from jax.sharding import Mesh

    from bgmm.model import Params, make_logdensity, to_unconstrained
    from bgmm.model.covariance import project_chol_precision
    from bgmm.model.gemm_likelihood import make_features
    from bgmm.model.priors import default_priors
    from bgmm.model.sharded import DATA_AXIS, sharded_features

    rng = np.random.default_rng(0)
    data = rng.normal(size=(N, D)) * [1.0, 2.0, 0.5] + rng.integers(0, 3, (N, 1)) * 2.0
    block = N // num_processes
    local_rows = data[process_id * block : (process_id + 1) * block]  # only this block is used
    center = data.mean(axis=0)  # a point every process agrees on
    priors = default_priors(K, D)
    results = {}
    for structure in STRUCTURES:
        chol = np.tril(rng.normal(size=(K, D, D)) * 0.3) + 1.2 * np.eye(D)
        params = Params(
            rng.dirichlet(np.ones(K)),
            rng.normal(size=(K, D)),
            project_chol_precision(chol, np.full(K, 1 / K), structure),
        )
        position = to_unconstrained(jax.tree.map(jnp.asarray, params), structure)
        mesh = None
        if mode == "whole":
            features = make_features(data, covariance_type=structure, center=center)
        else:
            mesh = Mesh(np.array(jax.devices()), (DATA_AXIS,))
            features = sharded_features(local_rows, mesh, center, jnp.float64, structure)

        # The features an argument, as the sampler passes them: an array on other
        # processes' devices cannot be a constant of the program.
        @jax.jit
        def value_and_grad(position, features, structure=structure, mesh=mesh):
            logdensity = make_logdensity(features, priors, "correct", structure, mesh=mesh)
            return jax.value_and_grad(logdensity)(position)

        value, gradient = value_and_grad(position, features)
        flat = np.concatenate([np.ravel(np.asarray(g)) for g in jax.tree.leaves(gradient)])
        results[structure] = {"value": float(value), "gradient": flat.tolist()}
    if process_id == 0:
        with open(out, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
