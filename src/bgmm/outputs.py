"""Output directories that never mix runs.

A run's ``--out DIR`` is checked before anything is compiled or sampled
(:func:`prepare_output`), and at the end every output is written into a staging directory
beside it and swapped in whole (:meth:`OutputDir.publish`), so that DIR holds exactly one
run's files: never a stale figure of an earlier run, never a half-written file under a final
name, never a user's own files mixed with bgmm's.

DIR's manifest, ``DIR/.bgmm-manifest.json``, lists the files bgmm wrote there:

.. code-block:: json

    {"format": "bgmm-output-manifest", "version": 1, "bgmm_version": "0.1.0",
     "created": "2025-01-01T12:00:00+00:00",
     "files": {"posterior.nc": 123456, "locations.png": 80000, "trace.png": 90000}}

(file name to size in bytes). Any other entry in DIR, apart from the manifest and the
checkpoint directory ``DIR/.bgmm-checkpoint`` that a run keeps while it samples, is foreign,
and a run refuses such a DIR unless forced. Staging and old directories are named
``.NAME.bgmm-staging-PID`` and ``.NAME.bgmm-old-PID`` beside DIR; those left by killed runs
(their PID no longer a live process) are removed by the next run into DIR.

Everything here is file-system work at the edge: no JAX.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bgmm.plumbing import files

__all__ = [
    "CHECKPOINT_NAME",
    "MANIFEST_NAME",
    "OutputDir",
    "OutputError",
    "estimate_output_bytes",
    "prepare_output",
    "read_manifest",
    "write_bytes",
]

MANIFEST_NAME = ".bgmm-manifest.json"
CHECKPOINT_NAME = ".bgmm-checkpoint"
CHECKPOINT_METADATA = "checkpoint.json"  # present once a checkpoint was written whole
MANIFEST_FORMAT = "bgmm-output-manifest"
MANIFEST_VERSION = 1
#: Room set aside for each PNG figure (they take 50-300 kB at the plots' size and DPI).
PNG_BYTES = 2**20
#: HDF5 and NetCDF metadata, attributes and the manifest.
_OVERHEAD_BYTES = 2**18
_PROBE_PREFIX = ".bgmm-probe-"

# Staging and old directories of this process that are in use right now: leftovers of this
# process's PID that are not in here come from an earlier, failed call (tests run many).
_ACTIVE: set[Path] = set()


class OutputError(Exception):
    """A problem with the output directory, described in one line (shown after ``error:``)."""


def estimate_output_bytes(
    num_chains: int,
    num_draws: int,
    num_components: int,
    num_features: int,
    num_rows: int,
    *,
    num_plots: int = 2,
    pointwise_log_likelihood: int = 0,
    assignments: bool = False,
) -> int:
    """Bytes a run's files may take, an upper bound (the NetCDF file is compressed).

    ``posterior.nc`` holds per draw K weights, K x D means, three K x D x D matrices
    (Cholesky factors, precisions, covariances), K label indices and about 16 scalars of
    sample statistics, 8 bytes each; once the N x D data; and with the pointwise
    log-likelihood N more per draw. ``assignments.csv`` holds N rows of K + 2 numbers of at
    most 12 characters each, ``partition.csv`` N rows of two integers. Each PNG figure counts
    1 MiB.

    Parameters
    ----------
    num_chains, num_draws : int
        C and S.
    num_components, num_features, num_rows : int
        K, D and N.
    num_plots : int
        Number of PNG figures.
    pointwise_log_likelihood : int
        The pointwise log-likelihood is stored for every t-th draw of each chain
        (:func:`bgmm.fitting.log_likelihood_thinning`); 0: not stored.
    assignments : bool
        Whether ``assignments.csv`` and ``partition.csv`` are written.

    Returns
    -------
    int
    """
    k, d = int(num_components), int(num_features)
    draws = int(num_chains) * int(num_draws)
    per_draw = 8 * (2 * k + k * d + 3 * k * d * d + 16)
    size = draws * per_draw + 8 * int(num_rows) * d + _OVERHEAD_BYTES
    if pointwise_log_likelihood:
        kept = int(num_chains) * math.ceil(int(num_draws) / int(pointwise_log_likelihood))
        size += 8 * kept * int(num_rows)
    if assignments:
        size += (13 * (k + 2) + 24) * int(num_rows)
    return size + int(num_plots) * PNG_BYTES


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a new file with plain file I/O (no library writes into the file).

    Raises
    ------
    OSError
        Whatever the file system says (e.g. ``ENOSPC`` on a full disk), or ``EEXIST``.
    """
    path = Path(path)
    with open(path, "xb") as f:
        f.write(data)
    return path


def read_manifest(directory: str | os.PathLike) -> dict[str, int] | None:
    """The files (name -> size) listed in ``directory``'s manifest; None when it has no
    readable manifest (missing, not JSON, or not a bgmm manifest)."""
    try:
        with open(Path(directory) / MANIFEST_NAME, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT:
        return None
    files = record.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) for k in files):
        return None
    return {name: size for name, size in files.items() if _plain_name(name)}


@dataclass
class OutputDir:
    """An output directory checked and created by :func:`prepare_output`.

    Attributes
    ----------
    path : pathlib.Path
        The directory, absolute, symbolic links resolved.
    shown : str
        The directory as the user wrote it, for messages.
    checkpoint : pathlib.Path
        ``path / ".bgmm-checkpoint"``: where a run may keep its checkpoint while it samples.
    """

    path: Path
    shown: str
    option: str = "--out"
    keeps_checkpoint: bool = False
    _created: list[Path] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    def publish(self, writers: Mapping[str, Callable[[Path], object]]) -> list[str]:
        """Write every output, then swap them in: afterwards DIR holds exactly these files.

        Each writer gets the path to write (inside a staging directory beside DIR). The
        files are written in the order given, fsynced, listed in a manifest, and the staging
        directory takes DIR's place: on Linux by one atomic exchange of the two directories
        (``renameat2(RENAME_EXCHANGE)``), elsewhere by renaming DIR aside and the staging
        directory into place. The old contents (earlier outputs, the checkpoint, with
        ``force`` any foreign files) are then removed.

        Parameters
        ----------
        writers : mapping of str to callable
            File name (no directories) to a function that writes that file at the path it
            is given.

        Returns
        -------
        list of str
            The file names written, in order.

        Raises
        ------
        OutputError
            When a file cannot be written (a full disk, an I/O error ...) or the swap
            fails; the message names the file. The staging directory is removed and DIR
            is left as it was.
        """
        for name in writers:
            if not _plain_name(name) or name in (MANIFEST_NAME, CHECKPOINT_NAME):
                raise ValueError(f"not an output file name: {name!r}")
        parent, name = self.path.parent, self.path.name
        staging = parent / f".{name}.bgmm-staging-{os.getpid()}"
        old = parent / f".{name}.bgmm-old-{os.getpid()}"
        _ACTIVE.update((staging, old))
        try:
            _remove(staging)
            _remove(old)
            try:
                staging.mkdir()
            except OSError as exc:
                raise OutputError(
                    f"{self.option} {self.shown}: cannot create {staging} ({_reason(exc)})"
                ) from None
            try:
                sizes = self._write_all(staging, writers)
                self._swap(staging, old)
            except BaseException:
                _remove(staging)
                raise
        finally:
            _ACTIVE.difference_update((staging, old))
        self._created = []  # published: nothing of ours left to discard
        return list(sizes)

    def _write_all(self, staging: Path, writers) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name, write in writers.items():
            path = staging / name
            try:
                write(path)
                files.fsync_path(path)
                sizes[name] = path.stat().st_size
            except OSError as exc:
                raise OutputError(
                    f"{self._shown_file(name)}: cannot write it ({_reason(exc)}); "
                    f"{self.shown} was left as it was"
                ) from None
        try:
            record = {
                "format": MANIFEST_FORMAT,
                "version": MANIFEST_VERSION,
                "bgmm_version": _bgmm_version(),
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "files": sizes,
            }
            write_bytes(staging / MANIFEST_NAME, (json.dumps(record, indent=1) + "\n").encode())
            files.fsync_path(staging / MANIFEST_NAME)
            files.fsync_path(staging, directory=True)
        except OSError as exc:
            raise OutputError(
                f"{self._shown_file(MANIFEST_NAME)}: cannot write it ({_reason(exc)}); "
                f"{self.shown} was left as it was"
            ) from None
        return sizes

    def _swap(self, staging: Path, old: Path) -> None:
        target = self.path
        try:
            if not target.exists():  # removed during the run: nothing to swap with
                os.rename(staging, target)
            elif files.exchange_paths(staging, target):
                _remove(staging)  # now holds DIR's old contents
            else:
                os.rename(target, old)
                try:
                    os.rename(staging, target)
                except OSError:
                    os.rename(old, target)  # put the old contents back
                    raise
                _remove(old)
            files.fsync_path(target.parent, directory=True)
        except OSError as exc:
            raise OutputError(
                f"{self.option} {self.shown}: cannot put the new files in place "
                f"({_reason(exc)}); {self.shown} was left as it was"
            ) from None

    def discard(self, keep_checkpoint: bool = True) -> None:
        """Undo :func:`prepare_output` after a failed run: remove the directories it created
        while they are empty. ``keep_checkpoint=False`` first removes a checkpoint made during
        this run (for failures a resume cannot fix, such as bad input); so does a checkpoint
        directory in which no checkpoint was ever written whole (a full disk)."""
        written = (self.checkpoint / CHECKPOINT_METADATA).is_file()
        if not self.keeps_checkpoint and not (keep_checkpoint and written):
            _remove(self.checkpoint)
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:
                break  # not empty (a checkpoint kept for `bgmm resume`): keep it and above
        self._created = []

    def _shown_file(self, name: str) -> str:
        return str(Path(self.shown) / name)


def prepare_output(
    out: str | os.PathLike,
    *,
    force: bool = False,
    expected_bytes: int = 0,
    protect: Iterable[str | os.PathLike] = (),
    allow_checkpoint: bool = False,
    option: str = "--out",
) -> OutputDir:
    """Check an output directory and create it, before any compiling or sampling.

    Checks, in order, with nothing written until all pass: ``out`` and every existing folder
    above it are directories; it is not the file system's root, nor the current or the home
    directory or a folder above them, nor holds a file in ``protect``, and it is not a mount
    point (the final swap renames it); it holds nothing but bgmm's files (see the module
    docstring) and no checkpoint of an interrupted run, unless ``force``; its file system has
    ``expected_bytes`` free. Then it removes leftovers of killed runs beside it, creates it
    (and missing parents), and makes sure that files can be created in it and beside it.
    With ``force``, an interrupted run's checkpoint is removed now; foreign files go when the
    outputs are published.

    Parameters
    ----------
    out : str or os.PathLike
        The output directory.
    force : bool
        Accept foreign files (replaced by the outputs) and discard an interrupted run.
    expected_bytes : int
        Free space needed (:func:`estimate_output_bytes`).
    protect : iterable of paths
        Files that must not be inside ``out`` (the input data: publishing replaces the
        whole directory).
    allow_checkpoint : bool
        Accept ``out/.bgmm-checkpoint`` (for resuming it).
    option : str
        The option's name in messages.

    Returns
    -------
    OutputDir

    Raises
    ------
    OutputError
        One line naming ``option`` and the directory.
    """
    shown = os.fspath(out)
    if isinstance(shown, bytes):
        shown = os.fsdecode(shown)
    where = f"{option} {shown or '.'}"
    try:
        target = _resolve_target(Path(shown or "."), where)
        _check_location(target, where, protect)
        exists = target.is_dir()
        if exists:
            _check_contents(target, shown or ".", where, force, allow_checkpoint)
        _check_free_space(target, where, expected_bytes)
    except ValueError as exc:  # an embedded NUL byte and the like
        raise OutputError(f"{where}: not a valid directory name ({exc})") from None
    _remove_leftovers(target)
    created = _create(target, where)
    result = OutputDir(target, shown or ".", option, allow_checkpoint, created)
    try:
        _probe_writable(target, where)
        if force and not allow_checkpoint:
            _remove(target / CHECKPOINT_NAME)
    except BaseException:
        result.discard()
        raise
    return result


def _resolve_target(out: Path, where: str) -> Path:
    """Absolute path of the directory, symbolic links resolved, or an OutputError."""
    path = Path(os.path.abspath(out))
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{where}: exists and is not a directory")
        return path.resolve()
    if path.is_symlink():
        raise OutputError(f"{where}: is a symbolic link to {os.readlink(path)}, which is missing")
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{where}: cannot create it ({ancestor} is not a directory)")
            return ancestor.resolve() / path.relative_to(ancestor)
        if ancestor.is_symlink():
            raise OutputError(f"{where}: cannot create it ({ancestor} is a broken link)")
    return path  # pragma: no cover  (the root exists)


def _check_location(target: Path, where: str, protect: Iterable) -> None:
    if target.parent == target:
        raise OutputError(f"{where}: is the file system's root; choose a directory for bgmm")
    for kept, what in ((Path.cwd(), "the current directory"), (Path.home(), "your home")):
        kept = kept.resolve()
        if target == kept or target in kept.parents:
            raise OutputError(
                f"{where}: is {what} or contains it; bgmm replaces the whole directory with "
                "its outputs, so choose a new or empty directory"
            )
    for file in protect:
        path = Path(os.path.abspath(file))
        if path.exists():
            path = path.resolve()
        if target in path.parents:
            raise OutputError(
                f"{where}: contains the input {file}; bgmm replaces the whole directory with "
                "its outputs, so choose another --out"
            )
    if target.is_dir() and os.path.ismount(target):
        raise OutputError(
            f"{where}: is a mount point, which cannot be replaced; use a directory inside it"
        )


def _check_contents(
    target: Path, shown: str, where: str, force: bool, allow_checkpoint: bool
) -> None:
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        raise OutputError(f"{where}: cannot list it ({_reason(exc)})") from None
    if CHECKPOINT_NAME in entries and not allow_checkpoint and not force:
        raise OutputError(
            f"{shown} holds an interrupted run: `bgmm resume {shown}` finishes it, "
            "--force discards it"
        )
    listed = read_manifest(target) or {}
    foreign = [
        name
        for name in entries
        if name not in (MANIFEST_NAME, CHECKPOINT_NAME)
        and not name.startswith(_PROBE_PREFIX)  # left by a run killed while it checked DIR
        and not (name in listed and (target / name).is_file() and not (target / name).is_symlink())
    ]
    if foreign and not force:
        count = f"{len(foreign)} {'entry' if len(foreign) == 1 else 'entries'}"
        raise OutputError(
            f"{where}: holds {count} bgmm did not write (first: {foreign[0]!r}); choose "
            "another --out, or add --force to replace its contents with this run's outputs"
        )


def _check_free_space(target: Path, where: str, expected_bytes: int) -> None:
    if expected_bytes <= 0:
        return
    existing = next(p for p in (target, *target.parents) if p.exists())
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # no figure to check against; the write itself reports a full disk
    if free < expected_bytes:
        raise OutputError(
            f"{where}: needs about {_format_bytes(expected_bytes)} free for its files, "
            f"only {_format_bytes(free)} available there"
        )


def _create(target: Path, where: str) -> list[Path]:
    """Create ``target`` and missing parents; the directories created, outermost first."""
    missing = [p for p in (target, *target.parents) if not p.exists()]
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
    except OSError as exc:
        for directory in reversed(created):
            try:
                directory.rmdir()
            except OSError:
                break
        raise OutputError(f"{where}: cannot create it ({_reason(exc)})") from None
    return created


def _probe_writable(target: Path, where: str) -> None:
    """Create and remove a file in DIR (the checkpoint goes there) and a directory beside
    it (the staging directory goes there): permission bits do not tell for root or for
    read-only mounts."""
    try:
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=target)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise OutputError(f"{where}: cannot write in it ({_reason(exc)})") from None
    staging = target.parent / f".{target.name}.bgmm-staging-{os.getpid()}"
    try:  # by the staging directory's own name: a leftover is cleaned like one
        staging.mkdir()
        staging.rmdir()
    except OSError as exc:
        raise OutputError(
            f"{where}: cannot write in {target.parent}, where bgmm stages its outputs "
            f"({_reason(exc)})"
        ) from None


def _remove_leftovers(target: Path) -> None:
    """Remove staging and old directories of killed runs into ``target``."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.bgmm-(?:staging|old)-(\d+)")
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match and not _alive(int(match.group(1)), target.parent / entry):
            _remove(target.parent / entry)


def _alive(pid: int, path: Path) -> bool:
    if pid == os.getpid():
        return path in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except (OverflowError, ValueError, OSError):
        return False  # not a possible PID
    return True


def _remove(path: Path) -> None:
    """Remove a file or a directory tree if present; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _format_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _bgmm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bgmm")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
