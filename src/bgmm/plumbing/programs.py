"""The sampler's programs kept across processes, so that a warm run does not trace them.

JAX's persistent compilation cache skips XLA's compiler, but only after the program has
been traced and lowered in Python, which for the samplers is most of a warm run's start-up
(docs/benchmarks.md). This module keeps each program's lowered form, exported with
``jax.export`` (StableHLO in a flatbuffer: data, not code), and on a later run compiles that
without tracing; the compile itself is then a hit in JAX's cache. No library keeps whole
programs this way, so this module does.

Nothing read back executes code while it is parsed: a record is a fixed header, a JSON
description and the exported bytes, and its SHA-256 digest is checked before anything in it
is used (docs/design.md, "The program store"). A record that fails is deleted and rebuilt.

A program is stored under a key that names everything it depends on: what the caller
says its functions close over (``identity``), the shapes, dtypes and shardings of its
arguments, the devices, JAX's configuration and the versions of jax, jaxlib, blackjax and
numpy. The store itself (:mod:`bgmm.plumbing.cache`) separates installations of bgmm. A key that
missed something would silently reuse a wrong program, so callers pass values, not
summaries, and anything this module cannot describe is refused.

jax and numpy only: the store is injected (:func:`use_program_store`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import struct
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, Protocol

import jax
import numpy as np

__all__ = [
    "DamagedRecord",
    "ProgramStore",
    "StoreWarning",
    "compile_program",
    "decode_record",
    "encode_record",
    "forget_programs_in_memory",
    "program_key",
    "use_program_store",
]

_MAGIC = b"BGMMPRG\x02"  # the last byte is the record format, also part of every key
_HEADER = struct.Struct("<8s32sQ")  # magic, SHA-256 of the rest, length of the JSON part


class StoreWarning(UserWarning):
    """A stored program or cache directory was refused (the run then compiles)."""


class DamagedRecord(ValueError):
    """A record whose digest, format or key does not match."""


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

    def discard(self, key: str) -> None:
        """Forget what is saved under ``key``."""


_store: ProgramStore | None = None
# Compiled programs kept in this process by key, least recently used first: a second fit
# of data of the same shape (a refit, a model grid, scikit-learn's clone) compiles nothing.
# The key names all a program depends on, as it does for the store.
_in_memory: OrderedDict[str, Any] = OrderedDict()
PROGRAMS_IN_MEMORY = 64


def forget_programs_in_memory() -> None:
    """Drop the compiled programs kept in this process: the next run loads or compiles
    its programs as a new process would."""
    _in_memory.clear()


def use_program_store(store: ProgramStore | None) -> ProgramStore | None:
    """Keep compiled programs in ``store`` from now on (None: keep none); returns the
    store used until now. The programs kept in memory are dropped: they came from the
    previous store."""
    global _store
    previous, _store = _store, store
    forget_programs_in_memory()
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
        _MAGIC,
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


class FlatProgram:
    """A compiled program of flat arguments, called with the caller's pytrees.

    Exported programs take and return flat tuples of arrays, so that no tree structure of
    the caller's types has to be stored; this puts the structures back.
    """

    def __init__(self, compiled: jax.stages.Compiled, out_tree: Any):
        self._compiled = compiled
        self._out_tree = out_tree

    def __call__(self, *args: Any) -> Any:
        return jax.tree.unflatten(self._out_tree, self._compiled(*jax.tree.leaves(args)))

    @property
    def out_info(self) -> Any:
        """Shapes, dtypes and shardings of the results (as ``jax.stages.Compiled``)."""
        return jax.tree.unflatten(self._out_tree, self._compiled.out_info)


def compile_program(
    fn: Callable,
    example_args: Sequence[Any],
    *,
    identity: Any,
    devices: Sequence[Any],
) -> jax.stages.Compiled | FlatProgram:
    """``jax.jit(fn).lower(*example_args).compile()``, without tracing ``fn`` when the
    store has its exported form.

    Parameters
    ----------
    fn : function of ``len(example_args)`` positional arguments
    example_args : pytrees of arrays or ShapeDtypeStructs
    identity : see :func:`program_key`; None: never stored
    devices : the devices the program runs on, in the order of its device assignment

    Returns
    -------
    jax.stages.Compiled or FlatProgram
        Either is called like ``fn`` and has ``out_info``.
    """
    if identity is None:
        return jax.jit(fn).lower(*example_args).compile()
    store = _store
    key = program_key(identity, example_args, devices, store.namespace if store else "")
    program = _in_memory.get(key)
    if program is None:
        program = _compile(fn, example_args, key, store)
        _in_memory[key] = program
        while len(_in_memory) > PROGRAMS_IN_MEMORY:
            _in_memory.popitem(last=False)
    _in_memory.move_to_end(key)
    return program


def _compile(
    fn: Callable, example_args: Sequence[Any], key: str, store: ProgramStore | None
) -> jax.stages.Compiled | FlatProgram:
    """The program under ``key``: loaded from ``store`` when it has it, else traced (and
    stored)."""
    if store is None:
        return jax.jit(fn).lower(*example_args).compile()
    in_leaves, in_tree = jax.tree.flatten(tuple(example_args))
    loaded = _load(store, key)
    if loaded is None:
        out_trees = []

        def flat_fn(*leaves):
            leaves, out_tree = jax.tree.flatten(fn(*in_tree.unflatten(leaves)))
            out_trees.append(out_tree)
            return tuple(leaves)

        exported = jax.export.export(jax.jit(flat_fn))(*in_leaves)
        out_tree = out_trees[0]
        try:
            store.save(key, encode_record(key, exported.serialize(), out_tree))
        except (TypeError, ValueError):  # a result type the record cannot name: not stored
            pass
    else:
        exported, out_tree = loaded
    return FlatProgram(jax.jit(exported.call).lower(*in_leaves).compile(), out_tree)


def _load(store: ProgramStore, key: str) -> tuple[Any, Any] | None:
    """The exported program and its result structure stored under ``key``, or None (a
    damaged record is discarded, with one warning)."""
    blob = store.load(key)
    if blob is None:
        return None
    try:
        serialized, out_tree = decode_record(blob, key)
        return jax.export.deserialize(bytearray(serialized)), out_tree
    except Exception as exc:  # digest, format or a flatbuffer JAX cannot read
        warnings.warn(
            f"bgmm: a stored program failed its check and is rebuilt ({exc})",
            StoreWarning,
            stacklevel=3,
        )
        store.discard(key)
        return None


def encode_record(key: str, serialized: bytes, out_tree: Any) -> bytes:
    """A record: header (magic, SHA-256 of the rest, JSON length), JSON, exported bytes.

    Parameters
    ----------
    key : str
        The program's key, stored and checked on load.
    serialized : bytes
        ``jax.export.Exported.serialize()``.
    out_tree : PyTreeDef
        Structure of the results; tuples, lists, dicts with str keys, None and bgmm's
        NamedTuples only (TypeError otherwise).
    """
    description = json.dumps({"key": key, "out_tree": _tree_to_json(out_tree)}).encode()
    body = description + bytes(serialized)
    digest = hashlib.sha256(struct.pack("<Q", len(description)) + body).digest()
    return _HEADER.pack(_MAGIC, digest, len(description)) + body


def decode_record(blob: bytes, key: str) -> tuple[bytes, Any]:
    """The exported bytes and result structure of a record stored under ``key``.

    Raises
    ------
    DamagedRecord
        Wrong magic or format, digest mismatch, or another key.
    """
    if len(blob) < _HEADER.size:
        raise DamagedRecord("truncated record")
    magic, digest, length = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise DamagedRecord("not a record of this format")
    body = blob[_HEADER.size :]
    if hashlib.sha256(struct.pack("<Q", length) + body).digest() != digest:
        raise DamagedRecord("digest mismatch")
    if length > len(body):
        raise DamagedRecord("truncated record")
    description = json.loads(body[:length])
    if description.get("key") != key:
        raise DamagedRecord("stored under another key")
    return body[length:], _tree_from_json(description["out_tree"])


def _tree_to_json(treedef: Any) -> Any:
    """A JSON description of a tree structure (leaves as "*")."""

    def describe(node: Any) -> Any:
        if node is None:
            return None
        if type(node) is _Leaf:
            return "*"
        if type(node) is tuple:
            return {"tuple": [describe(c) for c in node]}
        if type(node) is list:
            return {"list": [describe(c) for c in node]}
        if type(node) is dict and all(isinstance(k, str) for k in node):
            return {"dict": {k: describe(v) for k, v in node.items()}}
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            name = f"{type(node).__module__}:{type(node).__qualname__}"
            _named_tuple_type(name)  # refuse now what could not be loaded
            return {"namedtuple": name, "children": [describe(c) for c in node]}
        raise TypeError(f"cannot store a result of type {type(node).__qualname__}")

    return describe(jax.tree.unflatten(treedef, [_Leaf()] * treedef.num_leaves))


def _tree_from_json(description: Any) -> Any:
    def build(node: Any) -> Any:
        if node is None:
            return None
        if node == "*":
            return _Leaf()
        if "tuple" in node:
            return tuple(build(c) for c in node["tuple"])
        if "list" in node:
            return [build(c) for c in node["list"]]
        if "dict" in node:
            return {k: build(v) for k, v in node["dict"].items()}
        if "namedtuple" in node:
            return _named_tuple_type(node["namedtuple"])(*(build(c) for c in node["children"]))
        raise DamagedRecord(f"unknown tree node {node!r}")

    return jax.tree.structure(build(description), is_leaf=lambda x: type(x) is _Leaf)


class _Leaf:
    """A placeholder leaf while describing tree structures."""


def _named_tuple_type(name: str) -> type:
    """One of bgmm's own NamedTuple types, by ``module:qualname``; nothing else is loaded."""
    module_name, _, qualname = name.partition(":")
    if module_name.split(".")[0] != "bgmm" or not qualname.isidentifier():
        raise DamagedRecord(f"not a bgmm type: {name}")
    value = getattr(importlib.import_module(module_name), qualname, None)
    if not (isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields")):
        raise DamagedRecord(f"not a bgmm NamedTuple: {name}")
    return value


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
