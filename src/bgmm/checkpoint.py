"""Checkpoints: keep where a run stands on disk, so that a killed run can be resumed.

A run's checkpoint lives in ``DIR/.bgmm-checkpoint/`` and is two files:

- ``arrays-<digest>.npz``: numpy arrays only (no pickled objects): the runner's state
  (:class:`bgmm.samplers.runner.RunnerState`: the carry of the chains in progress, the
  draws and tunings kept so far), the chains' starts and custom priors;
- ``checkpoint.json``: the format version, the run's settings, a description of the data
  (shape, dtype, sha256 of its bytes, source), the caller's ``extra``, the versions of
  bgmm, jax and jaxlib, the runner's position, and the sha256 of the arrays file; it
  ends with the sha256 of its own content.

A write never leaves a mixed state, whenever the process dies: the arrays go to a new
file named by their digest, then ``checkpoint.json`` is replaced (temporary file in the
same directory, fsync, ``os.replace``, fsync of the directory), and only then are older
arrays deleted. So the directory always holds exactly the checkpoint its JSON names.
Reading checks both digests and the versions, and every problem is a
:class:`CheckpointError` (a ``ValueError``) with a one-line message.

Resuming calls the same compiled programs on the same arrays, so its draws are
bit-identical to those of a run never stopped; this needs the same versions of bgmm, jax
and jaxlib, the same kind of device and, for ``chain_method="parallel"``, as many devices.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from bgmm.errors import UserError
from bgmm.model.priors import Priors
from bgmm.model.transforms import Params
from bgmm.plumbing.files import fsync_directory, write_atomically
from bgmm.samplers.hmc import Tuning
from bgmm.samplers.runner import RunnerState

__all__ = [
    "CHECKPOINT_DIRNAME",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointPlan",
    "CheckpointWarning",
    "CheckpointWriter",
    "Interrupted",
    "checkpoint_path",
    "checkpoint_plan",
    "data_digest",
    "describe_data",
    "environment",
    "has_checkpoint",
    "read_checkpoint",
    "remove_checkpoint",
    "stop_on_signal",
    "write_checkpoint",
]

CHECKPOINT_DIRNAME = ".bgmm-checkpoint"
# Seconds at least between two checkpoints of a run, unless asked otherwise.
DEFAULT_CHECKPOINT_INTERVAL = 30.0
FORMAT_VERSION = 1
_FORMAT_NAME = "bgmm-checkpoint"
_METADATA = "checkpoint.json"
_ARRAYS_PREFIX = "arrays-"
_TEMPORARY_SUFFIX = ".tmp"
# What must match for a resumed run to be bit-identical (numpy only moves arrays).
_MUST_MATCH = ("bgmm", "jax", "jaxlib", "platform")


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, or does not fit this run or installation."""


class CheckpointWarning(UserWarning):
    """A checkpoint could not be written (a full disk ...): the run goes on without it."""


class Interrupted(KeyboardInterrupt):
    """A run stopped on request (``should_stop``) after writing its checkpoint.

    A KeyboardInterrupt, because it is the orderly form of one: code that knows nothing of
    checkpoints treats it as the Ctrl-C it usually stands for.

    Attributes
    ----------
    directory : Path
        What to resume: ``bgmm.api.resume(directory, X)``, ``bgmm resume DIRECTORY``.
    steps_done, steps_total : int
        Chain steps (warm-up and draws, over all chains) run so far, and in all.
    """

    def __init__(self, directory: Path, steps_done: int, steps_total: int):
        super().__init__(
            f"stopped after {steps_done} of {steps_total} chain steps; "
            f"the checkpoint in {directory} resumes the run"
        )
        self.directory = Path(directory)
        self.steps_done = steps_done
        self.steps_total = steps_total


class Checkpoint(NamedTuple):
    """Everything a checkpoint holds.

    Attributes
    ----------
    settings : dict
        The keyword arguments of :class:`bgmm.BayesianGMM` (``n_components`` included),
        ``chain_method`` resolved, ``priors`` a preset name or "custom".
    data : dict
        :func:`describe_data`: ``source``, ``shape`` [N, D], ``dtype``, ``sha256``.
    fit : dict
        How ``fit`` was called: ``feature_names``, ``checkpoint_interval``.
    extra : dict
        The caller's own JSON-able record (the CLI keeps its command and options there).
    starts : Params of numpy arrays, leading axis num_chains
        The chains' starts in the units the model is sampled in: (C, K), (C, K, D),
        (C, K, D, D).
    priors : Priors or None
        The priors when ``settings["priors"] == "custom"``.
    state : RunnerState
    environment : dict or None
        :func:`environment` of the process that wrote it (None: this process's, on write).
    """

    settings: dict[str, Any]
    data: dict[str, Any]
    fit: dict[str, Any]
    extra: dict[str, Any]
    starts: Params
    priors: Priors | None
    state: RunnerState
    environment: dict[str, Any] | None = None


def checkpoint_path(directory: str | os.PathLike) -> Path:
    """``directory/.bgmm-checkpoint`` (or ``directory`` itself when it is one)."""
    path = Path(directory)
    return path if path.name == CHECKPOINT_DIRNAME else path / CHECKPOINT_DIRNAME


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a checkpoint (damaged or not)."""
    return (checkpoint_path(directory) / _METADATA).is_file()


def data_digest(data: np.ndarray) -> str:
    """sha256 of the bytes of ``data`` as a C-ordered float64 array (N, D)."""
    # Hashed through the buffer: no copy of large data when it is float64 already.
    return hashlib.sha256(np.ascontiguousarray(data, dtype=np.float64)).hexdigest()


def describe_data(data: np.ndarray, source: str | None) -> dict[str, Any]:
    """What a checkpoint records of the data (N, D): enough to refuse other data."""
    return {
        "source": source,
        "shape": list(np.shape(data)),
        "dtype": "float64",
        "sha256": data_digest(data),
    }


def environment() -> dict[str, Any]:
    """Versions and devices that the draws of a run depend on."""
    from importlib.metadata import version

    return {
        "bgmm": version("bgmm"),
        "jax": jax.__version__,
        "jaxlib": version("jaxlib"),
        "numpy": np.__version__,
        "platform": jax.default_backend(),
        "device_count": jax.local_device_count(),
    }


def write_checkpoint(directory: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` into ``directory/.bgmm-checkpoint/``, replacing any there.

    Atomic: whenever the process dies, the directory holds either the previous checkpoint
    or this one, whole.

    Returns
    -------
    Path
        The checkpoint's directory.
    """
    path = checkpoint_path(directory)
    path.mkdir(parents=True, exist_ok=True)
    arrays, layout = _to_arrays(checkpoint)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    arrays_name = f"{_ARRAYS_PREFIX}{digest[:32]}.npz"
    write_atomically(path / arrays_name, blob, suffix=_TEMPORARY_SUFFIX)
    fsync_directory(path)  # the arrays' name is on disk before the JSON names it
    state = checkpoint.state
    body = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "arrays": {"file": arrays_name, "sha256": digest},
        "environment": checkpoint.environment or environment(),
        "settings": checkpoint.settings,
        "data": checkpoint.data,
        "fit": checkpoint.fit,
        "extra": checkpoint.extra,
        "progress": {
            "steps_done": state.steps_done,
            "steps_total": state.num_chains * state.num_steps,
        },
        "runner": layout,
    }
    text = json.dumps(body, sort_keys=True, allow_nan=False)
    body["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    metadata = json.dumps(body, sort_keys=True, indent=1).encode()
    write_atomically(path / _METADATA, metadata, suffix=_TEMPORARY_SUFFIX)
    fsync_directory(path)
    for stale in path.iterdir():  # older arrays, and what a killed write left
        stale_arrays = stale.name.startswith(_ARRAYS_PREFIX) and stale.name != arrays_name
        if stale_arrays or stale.name.endswith(_TEMPORARY_SUFFIX):
            with contextlib.suppress(OSError):
                stale.unlink()
    return path


def read_checkpoint(directory: str | os.PathLike, *, check_environment: bool = True) -> Checkpoint:
    """Read and check the checkpoint in ``directory`` (or ``directory/.bgmm-checkpoint``).

    Parameters
    ----------
    directory : path
    check_environment : bool
        Refuse a checkpoint written by other versions of bgmm, jax or jaxlib, on another
        kind of device, or (parallel chains) with another number of devices: its run
        would not resume bit for bit.

    Raises
    ------
    CheckpointError
        No checkpoint, a damaged one (its digests do not match), another format, or
        (``check_environment``) another environment.
    """
    path = checkpoint_path(directory)
    metadata = path / _METADATA
    if not metadata.is_file():
        raise CheckpointError(f"{directory}: no checkpoint (no {metadata})")
    try:
        body = json.loads(metadata.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{metadata}: damaged checkpoint ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != _FORMAT_NAME:
        raise CheckpointError(f"{metadata}: not a bgmm checkpoint")
    if body.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{metadata}: checkpoint format {body.get('format_version')!r}; this bgmm reads "
            f"format {FORMAT_VERSION}"
        )
    stored_digest = body.pop("sha256", None)
    text = json.dumps(body, sort_keys=True, allow_nan=False)
    if hashlib.sha256(text.encode()).hexdigest() != stored_digest:
        raise CheckpointError(
            f"{metadata}: damaged checkpoint (its content does not match its digest)"
        )
    try:
        arrays_path = path / Path(body["arrays"]["file"]).name
        blob = arrays_path.read_bytes()
    except (KeyError, TypeError, OSError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint (its arrays: {exc})") from None
    if hashlib.sha256(blob).hexdigest() != body["arrays"].get("sha256"):
        raise CheckpointError(
            f"{arrays_path}: damaged checkpoint (the arrays do not match their digest)"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        checkpoint = _from_arrays(body, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc})") from None
    if check_environment:
        _check_environment(path, checkpoint)
    return checkpoint


def remove_checkpoint(directory: str | os.PathLike) -> None:
    """Delete ``directory/.bgmm-checkpoint`` and what it holds (nothing else)."""
    path = checkpoint_path(directory)
    if not path.is_dir():
        return
    for entry in path.iterdir():
        names_ours = entry.name == _METADATA or entry.name.startswith(_ARRAYS_PREFIX)
        if names_ours or entry.name.endswith(_TEMPORARY_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    with contextlib.suppress(OSError):  # not empty: someone else's files, left alone
        path.rmdir()


class CheckpointPlan(NamedTuple):
    """How a fit keeps its checkpoint (:func:`checkpoint_plan`).

    Attributes
    ----------
    directory : Path
        The directory that holds ``.bgmm-checkpoint``.
    interval : float
        Seconds at least between two checkpoints.
    should_stop : () -> bool, or None
    extra : dict
        JSON-able record kept with every checkpoint.
    keep : bool
        Keep the checkpoint after success (the caller deletes it).
    """

    directory: Path
    interval: float
    should_stop: Callable[[], bool] | None
    extra: dict[str, Any]
    keep: bool


def checkpoint_plan(
    directory: str | os.PathLike | None,
    interval: float,
    should_stop: Callable[[], bool] | None,
    extra: dict[str, Any] | None,
    keep: bool,
) -> CheckpointPlan | None:
    """A fit's checkpoint arguments, checked before sampling; None: no checkpoint."""
    if directory is None:
        if should_stop is not None:
            raise UserError(
                "should_stop needs a checkpoint_dir to keep the stopped run in",
                option="should_stop",
            )
        return None
    if not interval >= 0:
        raise UserError(
            f"expected a number of seconds >= 0, got {interval!r}", option="checkpoint_interval"
        )
    extra = {} if extra is None else extra
    try:
        # Written as JSON with every checkpoint: refuse what cannot be, before sampling.
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"expected a JSON-able dict: {exc}", option="extra") from None
    if not isinstance(extra, dict):
        raise UserError(f"expected a JSON-able dict, got {type(extra).__name__}", option="extra")
    # The directory that holds .bgmm-checkpoint, whichever of the two was named.
    return CheckpointPlan(
        checkpoint_path(directory).parent, float(interval), should_stop, extra, bool(keep)
    )


class CheckpointWriter:
    """The runner's ``on_chunk``: writes a checkpoint at most every ``interval`` seconds.

    Parameters
    ----------
    directory : path
        Where the checkpoint goes (``directory/.bgmm-checkpoint``).
    make : RunnerState -> Checkpoint
        Called only when a checkpoint is written.
    interval : float
        Seconds between the end of one write and the next; 0: after every chunk. Counted
        from the writer's creation, so a run shorter than ``interval`` writes none.
    should_stop : () -> bool, optional
        Asked after every chunk; True: write the checkpoint now and stop the run.
    write_last : bool
        Also write after the last chunk, however recent the previous write, when the run
        wrote one before (a run shorter than ``interval`` keeps none: redoing it costs
        less than writing it).

    A checkpoint that cannot be written (a full disk, an I/O error) does not stop the run:
    one :class:`CheckpointWarning` and the run goes on, trying again at the next interval.
    A stop asked for then ends the run without a new checkpoint (KeyboardInterrupt).

    Attributes
    ----------
    writes : int
        Checkpoints written so far.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        make: Callable[[RunnerState], Checkpoint],
        interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        should_stop: Callable[[], bool] | None = None,
        write_last: bool = False,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"checkpoint_interval must be >= 0 seconds, got {interval!r}")
        self.directory = Path(directory)
        self.make = make
        self.interval = float(interval)
        self.should_stop = should_stop
        self.write_last = write_last
        self.writes = 0
        self._warned = False
        self._last = time.monotonic()

    def __call__(self, state: RunnerState) -> bool:
        stop = bool(self.should_stop()) if self.should_stop is not None else False
        due = time.monotonic() - self._last >= self.interval
        last = self.write_last and state.finished and self.writes > 0
        if stop or due or last:
            try:
                write_checkpoint(self.directory, self.make(state))
                self.writes += 1
            except OSError as exc:
                if not self._warned:
                    warnings.warn(
                        f"bgmm: cannot write the checkpoint in {checkpoint_path(self.directory)}"
                        f" ({exc.strerror or exc}); the run goes on without one",
                        CheckpointWarning,
                        stacklevel=2,
                    )
                    self._warned = True
                if stop:
                    raise KeyboardInterrupt from None
            self._last = time.monotonic()
        return stop


@contextlib.contextmanager
def stop_on_signal(
    signals: Sequence[int] = (signal.SIGINT,),
    notice: Callable[[int], None] | None = None,
) -> Iterator[Callable[[], bool]]:
    """Within the block, the first of ``signals`` asks the run to stop after its chunk.

    Yields the ``should_stop`` to give ``fit`` or ``resume``. The first signal sets it
    (and calls ``notice(signum)``, e.g. to print that the run is stopping); a second one
    raises KeyboardInterrupt at once, without a new checkpoint. The previous handlers come
    back on exit. Outside the main thread signals cannot be caught: nothing is installed
    and ``should_stop`` stays False.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handle(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if notice is not None:
            notice(signum)

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield requested.is_set
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ---------------------------------------------------------------------------------------
# Arrays and JSON
# ---------------------------------------------------------------------------------------


def _to_arrays(checkpoint: Checkpoint) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The checkpoint's arrays by name in the npz, and the runner's JSON record."""
    state = checkpoint.state
    arrays = {f"carry.{i}": np.asarray(a) for i, a in enumerate(state.carry)}
    arrays |= {f"draws.{name}": np.asarray(a) for name, a in state.draws.items()}
    arrays |= {f"group_draws.{name}": np.asarray(a) for name, a in state.group_draws.items()}
    arrays |= {f"tuning.{name}": np.asarray(a) for name, a in state.tuning._asdict().items()}
    arrays |= {f"starts.{name}": np.asarray(a) for name, a in checkpoint.starts._asdict().items()}
    if checkpoint.priors is not None:
        arrays |= {
            f"priors.{name}": np.asarray(a) for name, a in checkpoint.priors._asdict().items()
        }
    record = {
        name: getattr(state, name)
        for name in (
            "chain_method",
            "num_chains",
            "num_warmup",
            "num_draws",
            "chunk_size",
            "num_groups",
            "group",
            "next_step",
        )
    }
    record["carry_key_impls"] = list(state.carry_key_impls)
    record["draw_names"] = sorted(state.draws)
    record["converged"] = state.converged
    return arrays, record


def _from_arrays(body: dict[str, Any], arrays: dict[str, np.ndarray]) -> Checkpoint:
    runner = body["runner"]
    names = runner["draw_names"]
    impls = tuple(str(impl) for impl in runner["carry_key_impls"])
    state = RunnerState(
        chain_method=str(runner["chain_method"]),
        num_chains=int(runner["num_chains"]),
        num_warmup=int(runner["num_warmup"]),
        num_draws=int(runner["num_draws"]),
        chunk_size=int(runner["chunk_size"]),
        num_groups=int(runner["num_groups"]),
        group=int(runner["group"]),
        next_step=int(runner["next_step"]),
        carry=tuple(arrays[f"carry.{i}"] for i in range(len(impls))),
        carry_key_impls=impls,
        draws={name: arrays[f"draws.{name}"] for name in names},
        tuning=Tuning(*(arrays[f"tuning.{name}"] for name in Tuning._fields)),
        group_draws={name: arrays[f"group_draws.{name}"] for name in names},
        converged=bool(runner.get("converged", False)),
    )
    priors = None
    if body["settings"].get("priors") == "custom":
        fields = {name: arrays[f"priors.{name}"] for name in Priors._fields}
        fields["mean_scale"] = float(fields["mean_scale"])
        fields["wishart_df"] = float(fields["wishart_df"])
        priors = Priors(**fields)
    return Checkpoint(
        settings=body["settings"],
        data=body["data"],
        fit=body["fit"],
        extra=body["extra"],
        starts=Params(*(arrays[f"starts.{name}"] for name in Params._fields)),
        priors=priors,
        state=state,
        environment=body["environment"],
    )


def _check_environment(path: Path, checkpoint: Checkpoint) -> None:
    written, here = checkpoint.environment, environment()
    differ = [k for k in _MUST_MATCH if written.get(k) != here[k]]
    if differ:
        then = ", ".join(f"{k} {written.get(k)}" for k in differ)
        now = ", ".join(f"{k} {here[k]}" for k in differ)
        raise CheckpointError(
            f"{path}: the checkpoint was written with {then}; this is {now} (resume with "
            "the versions and device that wrote it)"
        )
    state = checkpoint.state
    if state.chain_method == "parallel":
        then = min(state.num_chains, int(written.get("device_count", 1)))
        now = min(state.num_chains, here["device_count"])
        if then != now:
            raise CheckpointError(
                f"{path}: the checkpoint ran chains {then} at a time on {then} devices; this "
                f"process has {here['device_count']} (on a CPU, set XLA_FLAGS="
                f"--xla_force_host_platform_device_count={written.get('device_count')})"
            )
