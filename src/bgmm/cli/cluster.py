"""``bgmm fit`` on several processes: joining JAX's distributed runtime, agreeing on
failures, and the fit whose every process reads only its block of the rows.

A process joins when ``--coordinator``, ``--num-processes`` and ``--process-id`` are given,
or when it was started by a launcher JAX detects (SLURM's ``srun``, Open MPI's ``mpirun``)
with more than one task. Every process runs the same command; process 0 writes the
outputs and prints the report (docs/design.md 16).
"""

from __future__ import annotations

import contextlib
import os
import sys

from bgmm.errors import UserError

__all__ = ["add_cluster_options", "fit_on_processes", "join_cluster"]

# Launchers whose task count JAX's cluster detection reads: environment variable -> name.
LAUNCHER_TASKS = {"SLURM_NTASKS": "SLURM", "OMPI_COMM_WORLD_SIZE": "Open MPI"}


def add_cluster_options(parser) -> None:
    group = parser.add_argument_group(
        "several processes (JAX's distributed runtime; implies --split-rows)"
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0, where the others connect (omit under srun or mpirun)",
    )
    group.add_argument("--num-processes", type=int, metavar="P", help="processes in all")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0 to P-1")


def join_cluster(args) -> bool:
    """Join JAX's distributed runtime if the command line or the launcher asks; True if
    joined. Must run before JAX starts its backends."""
    given = (args.coordinator, args.num_processes, args.process_id)
    if all(value is None for value in given):
        if not any(int(os.environ.get(name, "1") or 1) > 1 for name in LAUNCHER_TASKS):
            return False
        options = {}  # JAX's cluster detection reads the launcher's environment
    elif any(value is None for value in given):
        raise UserError("--coordinator, --num-processes and --process-id go together")
    else:
        options = _checked_cluster_options(*given)
    import jax

    # On CPU the collectives run on gloo; on GPUs this setting is not read.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**options)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"cannot join the distributed runtime ({_first_line(exc)})") from None
    return True


def _checked_cluster_options(coordinator: str, num_processes: int, process_id: int) -> dict:
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--coordinator: expected HOST:PORT, got {coordinator!r}")
    if num_processes < 1:
        raise UserError(f"--num-processes: expected at least 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise UserError(f"--process-id: expected 0 to {num_processes - 1}, got {process_id}")
    return {
        "coordinator_address": coordinator,
        "num_processes": num_processes,
        "process_id": process_id,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def agree(step):
    """``step()`` on every process; if it raised a UserError on any, raise one on all (its
    own message where it failed, a pointer to the failing process elsewhere), so that no
    process waits in a collective for one that has stopped."""
    import numpy as np
    from jax.experimental import multihost_utils

    error = None
    try:
        result = step()
    except UserError as exc:
        error, result = exc, None
    failed = np.asarray(multihost_utils.process_allgather(np.asarray(error is not None)))
    if error is not None:
        raise error
    if failed.any():
        raise UserError(f"process {int(np.argmax(failed))} stopped with an error (see its output)")
    return result


def fit_on_processes(args, model) -> int:
    """``bgmm fit`` with this process's block of the rows; process 0 writes the outputs."""
    import jax

    from bgmm.cli.commands import check_data
    from bgmm.cli.running import (
        finish,
        prepare_out,
        process_seconds,
        progress_wanted,
        use_cache,
        write_outputs,
    )
    from bgmm.data.blocks import load_block
    from bgmm.data.columns import resolve_features

    process, num_processes = jax.process_index(), jax.process_count()
    source = args.data

    def read():
        rows, names, num_rows = load_block(source, process, num_processes)
        names = names or [f"x{j}" for j in range(rows.shape[1])]
        features = resolve_features(args.features, names)
        check_data(rows, names, source, model, whole=False)
        return rows, names, num_rows, features

    with _stdout_to_stderr():  # gloo prints its connections on stdout, which --json owns
        rows, names, num_rows, features = agree(read)
        shape = (num_rows, rows.shape[1])
        out = agree(lambda: prepare_out(args, model, shape, (source,)) if process == 0 else None)
        use_cache(args)
        startup_seconds = process_seconds()
        progress = process == 0 and progress_wanted(args)
        try:
            result = model.fit(rows, feature_names=names, progress=progress, source=source)
        except BaseException:
            if out is not None:
                out.discard(keep_checkpoint=False)
            raise
    result = result.result_
    if process != 0:
        return 0
    written = write_outputs(result, args, features, out)
    finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, args)
    print(f"process 0 of {num_processes} wrote the outputs", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _stdout_to_stderr():
    """File descriptor 1 pointed at stderr for the block: native libraries' prints too."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
