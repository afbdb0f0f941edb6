"""Files written whole or not at all.

A crash, a full disk or a kill never leaves a half-written file: the bytes go to a
temporary file beside the target, are flushed to disk, and the temporary file is renamed
over the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["fsync_directory", "write_atomically"]


def write_atomically(path: str | os.PathLike, blob: bytes, *, suffix: str = ".tmp") -> Path:
    """Replace ``path`` by ``blob`` whole, with the usual file mode (0666 less the umask).

    Parameters
    ----------
    path : path
        The file; its directory must exist.
    blob : bytes
    suffix : str
        Of the temporary file (named ``.NAME.XXXX{suffix}`` beside ``path``), so that a
        caller can recognise its leftovers.

    Raises
    ------
    OSError
        When the file cannot be written (the temporary file is removed).
    """
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def fsync_directory(path: str | os.PathLike) -> None:
    """Make renames in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
