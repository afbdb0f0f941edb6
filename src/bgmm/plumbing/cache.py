"""Compiled programs kept on disk, so that a second run of the same model skips compiling.

Two caches share one directory: JAX's persistent compilation cache (every compiled
program, looked up after tracing; in ``executables/``) and bgmm's program store (the
sampler's programs in their exported form, loaded without tracing, in ``programs/``;
:mod:`bgmm.plumbing.programs`).

A compiled executable is native code that the next run executes, so the directory must be
as trusted as the installed packages. As ssh does with its keys, bgmm makes the directory
0700 and its records 0600, and refuses (one warning, the run is then uncached) a directory,
a folder above it or a record that another user owns or could write (docs/design.md, "What
the cache trusts"). Every record carries a SHA-256 digest of its contents, checked before
use: a damaged one is deleted and rebuilt, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import tempfile
import warnings
from pathlib import Path

import jax
from jax._src.compilation_cache_interface import CacheInterface  # no public name (jax 0.10)

from bgmm.plumbing.programs import StoreWarning, use_program_store

__all__ = [
    "ExecutableCache",
    "ProgramDirectory",
    "RecordDirectory",
    "UntrustedCache",
    "check_trusted_directory",
    "default_cache_dir",
    "enable_compilation_cache",
]


class UntrustedCache(OSError):
    """A cache directory or record that another user owns or could write."""


def default_cache_dir() -> Path:
    """``$BGMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bgmm/jax``, else ``~/.cache/bgmm/jax``."""
    if os.environ.get("BGMM_CACHE_DIR"):
        return Path(os.environ["BGMM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bgmm" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs on disk and reuse them across processes.

    Every program is cached, however fast it compiled: our runs compile a handful of
    programs of a second or two each, which is most of a short run's time. The sampler's
    programs are also kept in exported form, so that a later run does not trace them
    (:mod:`bgmm.plumbing.programs`), unless JAX's cache is switched off
    (``JAX_ENABLE_COMPILATION_CACHE=false``).

    Returns the directory, or None when it cannot be created or is not trusted (another
    user owns or could write it, a folder above it, or something in it: one
    :class:`bgmm.plumbing.programs.StoreWarning`); the run then simply compiles.
    """
    directory = Path(path) if path is not None else default_cache_dir()
    try:
        _make_private_directory(directory)
        check_trusted_directory(directory, entries=True)
    except UntrustedCache as exc:
        warnings.warn(f"bgmm: not using the cache: {exc}", StoreWarning, stacklevel=2)
        return None
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_enable_compilation_cache:
        _use_executable_cache(ExecutableCache(directory / "executables"))
        use_program_store(ProgramDirectory(directory / "programs"))
    return directory


def _use_executable_cache(cache: ExecutableCache) -> None:
    """Make ``cache`` JAX's persistent compilation cache in this process.

    JAX's own file cache checks nothing: a damaged entry fails to decompress with a warning
    on every run and is never replaced (it does not overwrite an existing key), and it reads
    files whoever owns them. JAX has no public hook for another cache, so this sets the one
    its compiler consults (``jax._src.compilation_cache``; pyproject pins jax < 0.11).
    """
    from jax._src import compilation_cache as jax_cache

    jax_cache.reset_cache()
    with jax_cache._cache_initialized_mutex:
        jax_cache._cache = cache
        jax_cache._cache_initialized = True


def check_trusted_directory(directory: Path, *, entries: bool = False) -> None:
    """Refuse a directory that someone other than the current user could change.

    The directory must be owned by the current user and writable by nobody else; each
    folder above it must be owned by the user or root and writable by nobody else unless
    sticky (as /tmp is). With ``entries``, so must be everything directly inside it.
    A directory that others may only read is made private (0700).

    Raises
    ------
    UntrustedCache
    """
    directory = Path(os.path.abspath(directory))
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UntrustedCache(f"{directory} is not a directory")
    _check_owned(directory, info)
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    for parent in directory.parents:
        parent_info = os.stat(parent)
        sticky = parent_info.st_mode & stat.S_ISVTX
        if parent_info.st_uid not in (os.getuid(), 0):
            raise UntrustedCache(f"{parent} is owned by another user (uid {parent_info.st_uid})")
        if parent_info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            raise UntrustedCache(f"{parent} is writable by other users")
    if entries:
        for entry in os.scandir(directory):
            _check_owned(Path(entry.path), entry.stat(follow_symlinks=False))


def _check_owned(path: Path, info: os.stat_result) -> None:
    if info.st_uid != os.getuid():
        raise UntrustedCache(f"{path} is owned by another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(info.st_mode):
        raise UntrustedCache(f"{path} is writable by other users")


def _make_private_directory(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each 0700."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)


class RecordDirectory:
    """Records in a directory of files, one per key, private to the user.

    Writes are atomic (a reader sees a whole record or none), records are 0600, and a
    record that another user owns or could write is never read (one warning). Other
    failures to read or write are misses. Keys are file names.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self, key: str) -> bytes | None:
        try:
            descriptor = os.open(self.path / key, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as file:
            try:
                check_trusted_directory(self.path)
                _check_owned(self.path / key, os.fstat(file.fileno()))
            except UntrustedCache as exc:
                warnings.warn(f"bgmm: not loading {exc}", StoreWarning, stacklevel=4)
                return None
            try:
                return file.read()
            except OSError:
                return None

    def save(self, key: str, blob: bytes) -> None:
        temporary = None
        try:
            _make_private_directory(self.path)
            handle, temporary = tempfile.mkstemp(dir=self.path, prefix=".tmp-")  # 0600
            with os.fdopen(handle, "wb") as file:
                file.write(blob)
            os.replace(temporary, self.path / key)
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def discard(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path / key)


class ProgramDirectory(RecordDirectory):
    """A :class:`bgmm.plumbing.programs.ProgramStore` in a directory of files.

    Its namespace is a digest of bgmm's source files and XLA_FLAGS, which the program keys
    do not otherwise cover; records live in a subdirectory of that name. The records
    check themselves (:func:`bgmm.plumbing.programs.decode_record`).
    """

    def __init__(self, path: str | os.PathLike):
        self.namespace = _installation_fingerprint()
        super().__init__(Path(path) / self.namespace)


_EXECUTABLE_MAGIC = b"BGMMXLA\x01"
_EXECUTABLE_HEADER = struct.Struct("<8s32s")  # magic, SHA-256 of the payload


class ExecutableCache(CacheInterface):
    """JAX's persistent compilation cache as sealed records in a :class:`RecordDirectory`.

    Each record is JAX's entry (compressed executable and compile time) behind a header
    with its SHA-256 digest. A record that fails the check gives one :class:`StoreWarning`
    and is deleted, so that JAX compiles the program again and stores it anew. JAX's keys
    already name the program, the devices, the compile options and the versions of jax
    and jaxlib.
    """

    def __init__(self, path: str | os.PathLike):
        self._files = RecordDirectory(path)
        self._path = self._files.path

    def get(self, key: str) -> bytes | None:
        blob = self._files.load(key)
        if blob is None:
            return None
        header = _EXECUTABLE_HEADER.size
        if (
            len(blob) < header
            or blob[:8] != _EXECUTABLE_MAGIC
            or hashlib.sha256(blob[header:]).digest() != blob[8:header]
        ):
            warnings.warn(
                f"bgmm: a cached executable failed its check and is rebuilt ({self._path / key})",
                StoreWarning,
                stacklevel=2,
            )
            self._files.discard(key)
            return None
        return blob[header:]

    def put(self, key: str, value: bytes) -> None:
        digest = hashlib.sha256(value).digest()
        self._files.save(key, _EXECUTABLE_HEADER.pack(_EXECUTABLE_MAGIC, digest) + value)


def _installation_fingerprint() -> str:
    """Digest of bgmm's source files and XLA_FLAGS (16 hex digits)."""
    digest = hashlib.sha256(os.environ.get("XLA_FLAGS", "").encode())
    package = Path(__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]
