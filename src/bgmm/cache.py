"""JAX's persistent compilation cache: a second run of the same model skips compilation."""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["default_cache_dir", "enable_compilation_cache"]


def default_cache_dir() -> Path:
    """``$BGMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bgmm/jax``, else ``~/.cache/bgmm/jax``."""
    if os.environ.get("BGMM_CACHE_DIR"):
        return Path(os.environ["BGMM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bgmm" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs on disk and reuse them across processes.

    Every program is cached, however fast it compiled: our runs compile a handful of
    programs of a second or two each, which is most of a short run's time. Returns the
    directory, or None when it cannot be created (the run then simply compiles).
    """
    directory = Path(path) if path is not None else default_cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
