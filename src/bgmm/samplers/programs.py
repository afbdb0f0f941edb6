"""Compiled programs kept across processes, so that a warm run neither traces nor compiles.

JAX's persistent compilation cache skips XLA's compiler but still traces and lowers every
program in Python before it can look the executable up: 0.9 s of a warm ``bgmm demo``
against 0.17 s to load its three executables (docs/benchmarks.md). No library keeps
whole programs, so this module does, with JAX's own executable serialization.

A program is stored under a key that names everything it depends on: what the caller
says its functions close over (``identity``), the shapes, dtypes and shardings of its
arguments, the devices, JAX's configuration and the versions of jax, jaxlib, blackjax and
numpy. The store itself (:mod:`bgmm.cache`) separates installations of bgmm. A key that
missed something would silently reuse a wrong program, so callers pass values, not
summaries, and anything this module cannot describe is refused.

jax and numpy only: the store is injected (:func:`use_program_store`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, Protocol

import jax
import numpy as np

__all__ = ["ProgramStore", "compile_program", "program_key", "use_program_store"]

logger = logging.getLogger(__name__)

# JAX reports a persistent-cache hit with this event (jax._src.compiler).
_JAX_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_FORMAT = 1  # of the stored records; part of every key


class ProgramStore(Protocol):
    """Where compiled programs are kept, by key (a hex string).

    ``namespace`` names what the keys cannot see: the installed bgmm (its source) and
    anything else the store's owner knows to change programs. It is part of every key.
    """

    namespace: str

    def load(self, key: str) -> bytes | None:
        """The bytes saved under ``key``, or None."""

    def save(self, key: str, blob: bytes) -> None:
        """Keep ``blob`` under ``key`` (may fail silently: the run then just compiles)."""


_store: ProgramStore | None = None
_cache_hits = 0


def _count_cache_hits(event: str, **kwargs) -> None:
    global _cache_hits
    if event == _JAX_CACHE_HIT_EVENT:
        _cache_hits += 1


jax.monitoring.register_event_listener(_count_cache_hits)


def use_program_store(store: ProgramStore | None) -> ProgramStore | None:
    """Keep compiled programs in ``store`` from now on (None: keep none); returns the
    store used until now."""
    global _store
    previous, _store = _store, store
    return previous


def program_key(
    identity: Any, example_args: Sequence[Any], devices: Sequence[Any], namespace: str = ""
) -> str:
    """A hex digest naming the program ``identity`` compiled for these arguments.

    Parameters
    ----------
    identity : nested tuples, lists, dicts, NamedTuples, str, int, float, bool, None and
        arrays (described by value)
        Everything the function closes over.
    example_args : sequence of pytrees of arrays or ShapeDtypeStructs (described by shape,
        dtype and sharding, not by value)
    devices : sequence of jax.Device the program runs on
    namespace : str
        The store's namespace.
    """
    environment = (
        _FORMAT,
        namespace,
        sys.version,
        _versions(),
        sorted((name, repr(value)) for name, value in jax.config.values.items()),
        [(d.platform, d.device_kind, d.id, d.client.platform_version) for d in devices],
    )
    leaves, treedef = jax.tree.flatten(tuple(example_args))
    signature = (str(treedef), [_describe_abstract(leaf) for leaf in leaves])
    text = repr((environment, _describe_value(identity), signature))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    # From the installed metadata: blackjax is imported only when a kernel is built.
    return tuple((name, version(name)) for name in ("jax", "jaxlib", "numpy", "blackjax"))


def compile_program(
    fn: Callable,
    example_args: Sequence[Any],
    *,
    identity: Any,
    devices: Sequence[Any],
) -> jax.stages.Compiled:
    """``jax.jit(fn).lower(*example_args).compile()``, loaded from the store when it has it.

    Parameters
    ----------
    fn : function of ``len(example_args)`` positional arguments
    example_args : pytrees of arrays or ShapeDtypeStructs
    identity : see :func:`program_key`; None: never stored
    devices : the devices the program runs on, in the order of its device assignment

    Returns
    -------
    jax.stages.Compiled
    """
    store = _store
    if store is None or identity is None:
        return jax.jit(fn).lower(*example_args).compile()
    key = program_key(identity, example_args, devices, store.namespace)
    blob = store.load(key)
    if blob is not None:
        try:
            return _deserialize(blob, key, devices)
        except Exception as exc:  # a damaged or foreign record: compile and replace it
            logger.warning("bgmm: ignoring a stored program that does not load (%s)", exc)

    # The key in the program's name keeps it apart in JAX's own cache from the programs of
    # other keys, those of other installations of bgmm included.
    def named(*args):
        return fn(*args)

    named.__name__ = named.__qualname__ = f"bgmm_{key[:16]}"
    lowered = jax.jit(named).lower(*example_args)  # tracing may load other programs
    hits_before = _cache_hits
    compiled = lowered.compile()
    # XLA:CPU cannot serialize again an executable it loaded from JAX's cache (it fails
    # only when run: "Function ... not found"), so only fresh compiles are kept.
    if _cache_hits == hits_before:
        try:
            store.save(key, _serialize(compiled, key))
        except Exception as exc:  # some programs cannot be serialized; they just compile
            logger.info("bgmm: not storing a compiled program (%s)", exc)
    return compiled


def _serialize(compiled: jax.stages.Compiled, key: str) -> bytes:
    from jax.experimental.serialize_executable import serialize

    executable, in_tree, out_tree = serialize(compiled)
    return pickle.dumps((key, executable, in_tree, out_tree), protocol=pickle.HIGHEST_PROTOCOL)


def _deserialize(blob: bytes, key: str, devices: Sequence[Any]) -> jax.stages.Compiled:
    from jax.experimental.serialize_executable import deserialize_and_load

    # Loading an executable runs native code: the store must be as trusted as the
    # installed packages (a user's own cache directory, like JAX's persistent cache).
    stored_key, executable, in_tree, out_tree = pickle.loads(blob)
    if stored_key != key:
        raise ValueError("the record was stored under another key")
    return deserialize_and_load(
        executable, in_tree, out_tree, backend=devices[0].client, execution_devices=devices
    )


def _describe_value(value: Any) -> Any:
    """A repr-able description of ``value`` that two different values never share."""
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        array = np.asarray(value)
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        return ("array", array.shape, str(array.dtype), digest)
    if isinstance(value, tuple | list):
        return (type(value).__qualname__, [_describe_value(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(k), _describe_value(v)) for k, v in value.items()))
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return (type(value).__qualname__, repr(value))
    raise TypeError(f"cannot key a compiled program on a {type(value).__qualname__}")


def _describe_abstract(leaf: Any) -> tuple:
    sharding = getattr(leaf, "sharding", None)
    return (
        tuple(np.shape(leaf)),
        str(leaf.dtype),
        bool(getattr(leaf, "weak_type", False)),
        None if sharding is None else repr(sharding),
    )
