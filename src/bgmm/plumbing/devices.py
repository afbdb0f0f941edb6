"""Which devices the chains run on, and the default way to spread chains over them."""

from __future__ import annotations

import os

import jax

__all__ = ["default_chain_method", "use_cpu_cores"]

_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def use_cpu_cores(num_cores: int | None = None) -> bool:
    """Expose each CPU core as a JAX device, so that chains run side by side (opt-in).

    XLA runs a small model's operations on one thread, so on a CPU the chains of a run
    are fastest one per core (docs/design.md section 12). This adds
    ``--xla_force_host_platform_device_count`` to ``XLA_FLAGS``, which child processes
    inherit, as ``numpyro.set_host_device_count`` does. The ``bgmm`` command calls it;
    Python users call it at the start of their program.

    Parameters
    ----------
    num_cores : int, optional
        Devices to expose (default: the CPU cores this process may run on).

    Returns
    -------
    bool
        True when the flag was set. False, changing nothing, when XLA_FLAGS already sets
        the device count, when there is one core, or when JAX has already started its
        backends (the flag could no longer act).
    """
    from jax._src import xla_bridge  # no public name for "has JAX started" (jax 0.10)

    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_DEVICES_FLAG in flags or xla_bridge.backends_are_initialized():
        return False
    if num_cores is None:
        num_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if num_cores <= 1:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICES_FLAG}={num_cores}".strip()
    return True


# Above this much data per device, one chain's operations are large enough for XLA to spread
# each over all cores itself, and a copy of the data per device would cost more memory than
# parallel chains save time.
PARALLEL_DATA_LIMIT_BYTES = 64 * 1024**2


def default_chain_method(num_chains: int, data_bytes: int = 0) -> str:
    """ "parallel" on several CPU devices, "vectorized" on an accelerator, else "sequential".

    On a GPU one vmapped program keeps the device busy; on a CPU vmapped chains run slower
    than sequential ones (docs/benchmarks.md), so several chains use several host devices when
    there are, unless the data (``data_bytes``, as the likelihood reads them) are large.
    """
    backend = jax.default_backend()
    if backend != "cpu":
        return "vectorized"
    many_devices = num_chains > 1 and jax.local_device_count() > 1
    if many_devices and data_bytes <= PARALLEL_DATA_LIMIT_BYTES:
        return "parallel"
    return "sequential"
