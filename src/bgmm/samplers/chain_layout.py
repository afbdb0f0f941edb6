"""How a run's chains map onto compiled calls: one at a time, all at once, one per device.

Every layout vmaps the chain axis, so the programs of :mod:`bgmm.samplers.chain_programs`
are batched the same way whatever the layout; ``parallel`` adds a shard_map over a mesh of
devices. With a data mesh (the data's rows split over devices or processes,
:mod:`bgmm.model.sharded`) the chains are vectorised and everything else the programs
take is replicated on the mesh. Selections of chains (starts, keys) are made on the host:
indexing a device array compiles a small program per selection, which a short run would
notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["ChainLayout", "default_device"]


class ChainLayout:
    """The groups of chains that run together, and how their programs are batched.

    sequential: one chain per call. vectorized: all chains in one vmapped call. parallel:
    one chain per device per call (shard_map over a mesh of devices), in rounds; the last
    round is padded with copies of the last chain, whose draws are dropped, so that one
    compiled program serves every round. With ``all_at_once``, parallel runs every chain in
    one call instead, each device vmapping over its share (padded the same way).

    Parameters
    ----------
    chain_method : "sequential", "vectorized" or "parallel"
    num_chains : int
    data_mesh : jax.sharding.Mesh, optional
        The mesh the data's rows are split over (only with "vectorized"): the programs run
        on its devices, which may belong to several processes.
    all_at_once : bool
        parallel: one group of every chain (a run that checks all chains together between
        calls, :func:`bgmm.samplers.runner.run_chains`'s ``stop_when``).

    Attributes
    ----------
    groups : list of int arrays, each shape (G,)
        The chains of each compiled call, in order; G is the same for every group (the
        last may repeat its last chain as padding).
    mesh : jax.sharding.Mesh or None
        The devices of ``parallel``, one chain each (or each its share of the chains);
        None for the other layouts.
    """

    def __init__(
        self,
        chain_method: str,
        num_chains: int,
        data_mesh: Mesh | None = None,
        all_at_once: bool = False,
    ):
        if data_mesh is not None and chain_method != "vectorized":
            raise ValueError("chains on split data run vectorized")
        self.data_mesh = data_mesh
        if chain_method == "parallel":
            devices = jax.local_devices()[: max(1, min(num_chains, jax.local_device_count()))]
            self.mesh = Mesh(np.array(devices), ("chains",))
            per_device = -(-num_chains // len(devices)) if all_at_once else 1
            size = len(devices) * per_device
        else:
            self.mesh = None
            size = num_chains if chain_method == "vectorized" else 1
        self.groups = [
            np.minimum(np.arange(first, first + size), num_chains - 1)
            for first in range(0, num_chains, size)
        ]

    @property
    def devices(self) -> list[jax.Device]:
        """The devices the programs run on, in the order of their device assignment."""
        mesh = self.data_mesh or self.mesh
        return [default_device()] if mesh is None else list(mesh.devices.flat)

    def _data_sharding(self) -> NamedSharding | None:
        # The data are replicated on every device of the mesh.
        return None if self.mesh is None else NamedSharding(self.mesh, PartitionSpec())

    def put(self, data: Any) -> Any:
        """Place the data on the device(s), once for the whole run (split data are placed
        already: :func:`bgmm.model.sharded.sharded_features`)."""
        if self.data_mesh is not None:
            return data
        sharding = self._data_sharding()
        return jax.device_put(data) if sharding is None else jax.device_put(data, sharding)

    def abstract(self, shapes: Any) -> Any:
        """What :meth:`put` will make of data of these shapes (ShapeDtypeStructs), for
        compiling before the data exist."""
        sharding = self._data_sharding()
        return jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes
        )

    def replicate(self, tree: Any) -> Any:
        """``tree`` as the programs take it: on a data mesh, the same value on every device
        of every process (each process passes its own copy, equal to the others'); else as
        it is."""
        if self.data_mesh is None:
            return tree
        replicated = NamedSharding(self.data_mesh, PartitionSpec())

        def put(leaf):
            if isinstance(leaf, jax.Array) and leaf.sharding.is_equivalent_to(replicated, 0):
                return leaf  # a program's result: in place already
            # From host values: JAX places those on other processes' devices (and checks
            # that every process passed the same), arrays on one device it does not.
            if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                key_data = jax.device_put(np.asarray(jax.random.key_data(leaf)), replicated)
                return jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(leaf))
            return jax.device_put(np.asarray(leaf), replicated)

        return jax.tree.map(put, tree)

    @staticmethod
    def take(tree: Any, group: np.ndarray) -> Any:
        """The chains ``group`` of every leaf of ``tree`` (leading axis: chains), as numpy
        arrays of leading axis G."""
        return jax.tree.map(lambda a: np.asarray(a)[group], tree)

    def group_keys(self, chain_keys: jax.Array) -> list[jax.Array]:
        """The PRNG keys of each group's chains, shape (G,), from ``chain_keys`` (C,)."""
        if not jnp.issubdtype(chain_keys.dtype, jax.dtypes.prng_key):
            return [np.asarray(chain_keys)[group] for group in self.groups]
        impl = jax.random.key_impl(chain_keys)
        key_data = np.asarray(jax.random.key_data(chain_keys))
        return [jax.random.wrap_key_data(key_data[group], impl=impl) for group in self.groups]

    def batch(self, fn: Callable, in_axes: Sequence[int | None]) -> Callable:
        """``fn`` of one chain, batched over a group's chains.

        Parameters
        ----------
        fn : function of one chain's arguments
        in_axes : 0 for an argument with a leading chain axis, None for one shared by all
            chains (the data, the first step index)

        Returns
        -------
        callable
            Every result has a leading chain axis of size G.
        """
        batched = jax.vmap(fn, in_axes=tuple(in_axes))
        if self.mesh is None:
            return batched
        specs = tuple(PartitionSpec() if a is None else PartitionSpec("chains") for a in in_axes)
        return jax.shard_map(
            batched,
            mesh=self.mesh,
            in_specs=specs,
            out_specs=PartitionSpec("chains"),
            check_vma=False,  # BlackJAX's lax.cond branches mix per-chain and shared values
        )


def default_device() -> jax.Device:
    """The device ``jax.jit`` runs a program on when its arguments do not say."""
    default = jax.config.values["jax_default_device"]
    if isinstance(default, jax.Device):
        return default
    return jax.devices(default)[0] if isinstance(default, str) else jax.devices()[0]
