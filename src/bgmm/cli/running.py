"""A command's run from start to finish: check and prepare ``--out``, sample with a
checkpoint that SIGINT/SIGTERM write, write the outputs into ``--out`` whole, report."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from bgmm.errors import UserError
from bgmm.outputs import OutputError

# Up to this many data values (8 MB in float64) a run imports its output libraries early.
SMALL_DATA_VALUES = 10**6
# When this module was imported: the start of the run where /proc is not there.
CLI_IMPORTED = time.perf_counter()


def import_output_libraries_in_background(plots: bool) -> None:
    """Import what relabelling and the outputs need (SciPy's optimize, ArviZ, xarray,
    h5netcdf, matplotlib) on a thread.

    Their imports are all Python. The main thread imports JAX and then spends most of its
    time inside XLA (compiling, sampling) with the GIL released, so these imports overlap
    it (docs/design.md section 12). Python's
    per-module import locks make a module imported from both threads load once. Only for
    small data: with large data the imports' 0.1 GiB would add to the sampler's peak memory,
    and they are a small part of a long run.
    """

    def load() -> None:
        try:
            import arviz  # noqa: F401
            import h5netcdf  # noqa: F401
            import scipy.optimize  # noqa: F401  (relabelling)
            import xarray  # noqa: F401

            if plots:
                import matplotlib.backends.backend_agg
                import matplotlib.figure  # noqa: F401
        except Exception:  # the main thread's own import reports it
            pass

    threading.Thread(target=load, name="bgmm-imports", daemon=True).start()


def progress_wanted(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def use_cache(args) -> None:
    if not args.no_cache:
        from bgmm.plumbing.cache import enable_compilation_cache

        enable_compilation_cache()


def prepare_out(args, model, data_shape: tuple[int, int], protect):
    """Check --out (room, writable, bgmm's own) and create it: before any compiling."""
    from bgmm.data import check_draws_memory
    from bgmm.fitting import log_likelihood_thinning
    from bgmm.outputs import estimate_output_bytes

    num_chains = model.num_chains
    num_draws = model.num_draws
    num_rows, num_features = data_shape
    check_draws_memory(num_chains, num_draws, model.n_components, num_features)
    expected = estimate_output_bytes(
        num_chains,
        num_draws,
        model.n_components,
        num_features,
        num_rows,
        num_plots=0 if args.no_plots else {"fit": 4, "select": 5}.get(args.command, 2),
        pointwise_log_likelihood=log_likelihood_thinning(
            num_chains, num_draws, num_rows, model.config.store_log_likelihood
        ),
        assignments=args.command in ("fit", "select"),
    )
    return checked_output(args.out, force=args.force, expected_bytes=expected, protect=protect)


def sample(out, args, run, *, resuming: bool = False):
    """``run(**checkpointing)`` with its checkpoint kept in --out, stopped by SIGINT/SIGTERM.

    The first signal asks the run to stop after its chunk: the checkpoint is written and
    :class:`bgmm.checkpoint.Interrupted` comes out (a second signal quits at once). The
    checkpoint outlives the run (``keep_checkpoint``) until the outputs replace it, so that
    a failure to write them can be resumed too. On failure, what preparing --out created
    is undone, except a checkpoint that ``bgmm resume`` can finish.
    """
    from bgmm.checkpoint import stop_on_signal

    def notice(signum: int) -> None:
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current chunk to write a "
            "checkpoint (again to quit at once)",
            file=sys.stderr,
        )

    checkpointing = {"should_stop": None, "keep_checkpoint": True}
    if not resuming:
        checkpointing |= {
            "checkpoint_dir": out.path,
            "checkpoint_interval": args.checkpoint_every,
            "extra": resume_record(args),
        }
    with stop_on_signal((signal.SIGINT, signal.SIGTERM), notice=notice) as should_stop:
        checkpointing["should_stop"] = should_stop
        try:
            return run(**checkpointing)
        except UserError:
            out.discard(keep_checkpoint=resuming)
            raise
        except BaseException:
            out.discard(keep_checkpoint=True)
            raise


def resume_record(args) -> dict:
    """What ``bgmm resume`` needs to finish the run as this command would have: the
    command, the data file (absolute) and the options that shape the outputs."""
    options = {
        name: value
        for name, value in vars(args).items()
        if name not in ("json", "quiet", "out", "force", "version", "command", "data")
    }
    record = {"command": args.command, "options": options}
    if args.command == "fit" and args.data != "-":
        record["data_path"] = os.path.abspath(args.data)
    return record


def checked_output(out: str, **options):
    from bgmm.outputs import prepare_output

    try:
        return prepare_output(out, **options)
    except OutputError as exc:
        raise UserError(str(exc)) from None


def write_outputs(
    result, args, features: tuple[int, int], out, data=None, extra=None
) -> list[Path]:
    """Write every output into a staging folder beside --out, then swap it in whole.

    With ``data`` (N, D), the rows the run was fitted to, ``assignments.csv`` too
    (:func:`assignments_csv`), ``partition.csv``, ``assignments.png`` and
    ``similarity.png``; ``extra`` maps
    more file names to their writers (``bgmm select``'s), written last.

    The NetCDF file is made in memory and written with plain file I/O
    (:func:`bgmm.results.inference_data_bytes`): a full disk is then an ``OSError``, which
    :meth:`bgmm.outputs.OutputDir.publish` reports in one line, rather than a crash inside
    libhdf5.
    """
    from bgmm.outputs import write_bytes
    from bgmm.results import inference_data_bytes

    writers = {"posterior.nc": lambda path: write_bytes(path, inference_data_bytes(result.idata))}
    partition = probabilities = None
    if data is not None:
        probabilities = result.predict_proba(data)
        writers["assignments.csv"] = lambda path: write_bytes(path, assignments_csv(probabilities))
        partition = result.point_partition(data, seed=result.settings["seed"])
        writers["partition.csv"] = lambda path: write_bytes(path, partition_csv(partition))
    if not args.no_plots:
        from bgmm import plots

        writers["locations.png"] = lambda path: plots.plot_location_kde(
            result.idata, path, features
        )
        writers["trace.png"] = lambda path: plots.plot_trace(result.idata, path, features=features)
        if data is not None:
            writers["assignments.png"] = lambda path: plots.plot_assignments(
                data, probabilities, path, result.feature_names, features
            )
            writers["similarity.png"] = lambda path: _plot_similarity(result, data, partition, path)
    writers |= extra or {}
    try:
        names = out.publish(writers)
    except BaseException:
        # --out as it was before the run: a directory made for it goes unless a checkpoint
        # in it can still be resumed once the disk has room.
        out.discard(keep_checkpoint=True)
        raise
    return [Path(args.out) / name for name in names]


def assignments_csv(probabilities) -> bytes:
    """``assignments.csv``: one row per observation, in input order: ``cluster`` (the most
    probable component, labelled as in the summary), ``probability`` (of that component)
    and ``p_0`` ... ``p_{K-1}``; ``probabilities`` (N, K) as from
    :meth:`bgmm.api.FitResult.predict_proba`."""
    import numpy as np

    k = probabilities.shape[1]
    cluster = np.argmax(probabilities, axis=1)
    header = ",".join(["cluster", "probability", *(f"p_{j}" for j in range(k))])
    rows = (
        ",".join([str(c), f"{row[c]:.6g}", *(f"{p:.6g}" for p in row)])
        for c, row in zip(cluster, probabilities, strict=True)
    )
    return ("\n".join([header, *rows]) + "\n").encode()


def partition_csv(partition) -> bytes:
    """``partition.csv``: ``row`` (0-based, into the input rows) and ``cluster`` of the point
    partition (:meth:`bgmm.fit_result.FitResult.point_partition`), for every row or for the
    subsample it was computed on, in input order."""
    lines = ["row,cluster"]
    lines += [f"{row},{label}" for row, label in zip(partition.rows, partition.labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _plot_similarity(result, data, partition, path) -> None:
    """``similarity.png``: the similarity matrix ordered by the point partition."""
    from bgmm.plots import plot_similarity

    similarity = result.similarity(data, seed=result.settings["seed"])
    plot_similarity(similarity, partition.labels, path, num_rows_total=len(data))


def process_seconds() -> float:
    """Seconds since this process started (to 10 ms on Linux; elsewhere since the CLI's
    module was imported, which leaves out the interpreter's start and ``import bgmm``)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - CLI_IMPORTED


def finish(result, record, written, args, preamble: str | None = None) -> None:
    from bgmm.report import to_json

    record["outputs"] = [str(p) for p in written]
    record["process_seconds"] = process_seconds()
    if args.json:
        print(to_json(record))
        return
    if preamble:
        print(preamble)
        print()
    print(result.report())
    print()
    t = result.timing
    print(
        f"compile {t['compile_seconds']:.2f} s, sampling {t['sampling_seconds']:.2f} s, "
        f"fit {t['total_seconds']:.2f} s"
    )
    for path in written:
        print(f"wrote {path}")
