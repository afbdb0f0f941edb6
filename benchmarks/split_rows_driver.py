"""One process of part 9: the sampler's value and gradient with the rows split over devices.

    python split_rows_driver.py OUT.json N D K CHAINS REPEATS [PROCESS_ID NUM_PROCESSES PORT]

The devices are this process's (``XLA_FLAGS=--xla_force_host_platform_device_count=G``) or,
with the last three arguments, those of every process on JAX's distributed runtime (gloo).
Measures, as medians of REPEATS calls after one warm-up call: the value and gradient of the
target (vectorised over CHAINS chains, as the sampler calls it) and a psum of one scalar
over the devices (the reduction's latency). Process 0 writes OUT.json.
"""

from __future__ import annotations

import json
import math
import sys
import time

import jax
import numpy as np


def main() -> None:
    out, n, d, k, chains, repeats = sys.argv[1], *(int(a) for a in sys.argv[2:7])
    jax.config.update("jax_enable_x64", True)
    if len(sys.argv) > 7:
        process_id, num_processes, port = (int(a) for a in sys.argv[7:10])
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from bgmm.data.blocks import block_bounds
    from bgmm.model import make_logdensity, to_unconstrained
    from bgmm.model.priors import default_priors
    from bgmm.model.sharded import sharded_features
    from bgmm.model.transforms import Params
    from bgmm.split_rows import data_mesh

    process, num_processes = jax.process_index(), jax.process_count()
    start, stop = block_bounds(n, num_processes, process)
    rows = np.random.default_rng([1, process]).normal(size=(stop - start, d))
    mesh = data_mesh()
    local_devices = len(mesh.local_devices)
    block = math.ceil(n / num_processes)
    block_rows = local_devices * math.ceil(block / local_devices)  # as gather_split_rows
    features = sharded_features(rows, mesh, np.zeros(d), jnp.float64, "full", num_rows=block_rows)
    priors = default_priors(k, d)
    replicated = NamedSharding(mesh, P())
    rng = np.random.default_rng(0)
    params = Params(
        np.full((chains, k), 1 / k),
        rng.normal(size=(chains, k, d)),
        np.broadcast_to(np.eye(d), (chains, k, d, d)).copy(),
    )
    positions = jax.vmap(lambda p: to_unconstrained(p, "full"))(jax.tree.map(jnp.asarray, params))
    positions = jax.device_put(jax.tree.map(np.asarray, positions), replicated)

    @jax.jit
    def value_and_grad(positions, features):
        logdensity = make_logdensity(features, priors, "correct", "full", mesh=mesh)
        return jax.vmap(jax.value_and_grad(logdensity))(positions)

    def reduce(x):
        return jax.lax.psum(x, "data")

    psum = jax.jit(jax.shard_map(reduce, mesh=mesh, in_specs=P("data"), out_specs=P()))
    ones = jax.make_array_from_process_local_data(
        NamedSharding(mesh, P("data")), np.ones(local_devices)
    )
    record = {
        "n": n,
        "d": d,
        "k": k,
        "chains": chains,
        "processes": num_processes,
        "devices": int(mesh.devices.size),
        "feature_bytes_per_device": block_rows // local_devices * features.phi.shape[1] * 8,
        "value_and_grad_seconds": _median_seconds(
            lambda: value_and_grad(positions, features), repeats
        ),
        "psum_seconds": _median_seconds(lambda: psum(ones), repeats),
    }
    if process == 0:
        with open(out, "w") as f:
            json.dump(record, f)


def _median_seconds(call, repeats: int) -> float:
    jax.block_until_ready(call())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if __name__ == "__main__":
    main()
