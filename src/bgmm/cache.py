"""Compiled programs kept on disk, so that a second run of the same model skips compiling.

Two caches share one directory: JAX's persistent compilation cache (every compiled
program, looked up after tracing) and bgmm's program store (the sampler's programs whole,
loaded without tracing; :mod:`bgmm.samplers.programs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import jax

from bgmm.samplers.programs import use_program_store

__all__ = ["ProgramDirectory", "default_cache_dir", "enable_compilation_cache"]


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
    programs are also kept whole, so that a later run loads them without tracing
    (:mod:`bgmm.samplers.programs`), unless JAX's cache is switched off
    (``JAX_ENABLE_COMPILATION_CACHE=false``). Returns the directory, or None when it cannot
    be created (the run then simply compiles).
    """
    directory = Path(path) if path is not None else default_cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_enable_compilation_cache:
        use_program_store(ProgramDirectory(directory / "programs"))
    return directory


class ProgramDirectory:
    """A :class:`bgmm.samplers.programs.ProgramStore` in a directory of files.

    Its namespace is a digest of bgmm's source files and XLA_FLAGS, which the program keys
    do not otherwise cover; entries live in a subdirectory of that name. Writes are atomic
    (a reader sees a whole record or none); every failure to read or write is a miss.
    """

    def __init__(self, path: str | os.PathLike):
        self.namespace = _installation_fingerprint()
        self.path = Path(path) / self.namespace

    def load(self, key: str) -> bytes | None:
        try:
            return (self.path / key).read_bytes()
        except OSError:
            return None

    def save(self, key: str, blob: bytes) -> None:
        temporary = None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
            with os.fdopen(handle, "wb") as file:
                file.write(blob)
            os.replace(temporary, self.path / key)
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


def _installation_fingerprint() -> str:
    """Digest of bgmm's source files and XLA_FLAGS (16 hex digits)."""
    digest = hashlib.sha256(os.environ.get("XLA_FLAGS", "").encode())
    package = Path(__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]
