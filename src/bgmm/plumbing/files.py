"""Files written whole or not at all, flushed to disk, and directories swapped at once.

A crash, a full disk or a kill never leaves a half-written file: the bytes go to a
temporary file beside the target, are flushed to disk, and the temporary file is renamed
over the target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import tempfile
from pathlib import Path

__all__ = ["exchange_paths", "fsync_directory", "fsync_path", "write_atomically"]


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


def fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush a file's (or, with ``directory``, a directory's entries') changes to disk; a
    file system that cannot sync directories is let be (nothing is lost there)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_directory(path: str | os.PathLike) -> None:
    """Make renames in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fsync_path(path, directory=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where that is not available (other systems, old C libraries, file systems
    without it): the caller then renames in two steps.
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function
