"""Output directories that never mix runs: bgmm.outputs, and the CLI's use of it.

The unit tests use small fake writers (no sampling); the CLI tests run `bgmm fit` in this
process through `bgmm.cli.main`, so that one compiled sampler serves them all. Full disks
and read-only directories are real: a small tmpfs and a read-only bind mount (as root;
skipped with the reason where mounting is not permitted).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import bgmm
import bgmm.cli
from bgmm import outputs
from bgmm.outputs import (
    CHECKPOINT_NAME,
    MANIFEST_NAME,
    OutputError,
    estimate_output_bytes,
    prepare_output,
    read_manifest,
    write_bytes,
)
from bgmm.plumbing import files

DEAD_PID = 99_999_999  # above any kernel's pid_max: never a live process
SHORT = ["--chains", "2", "--warmup", "100", "--draws", "100", "--quiet"]


def writer(content: bytes):
    return lambda path: write_bytes(path, content)


def entries(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def no_staging_left(parent: Path) -> None:
    left = [name for name in os.listdir(parent) if ".bgmm-" in name]
    assert not left, left


# ---------------------------------------------------------------------------
# Mounts (root only)
# ---------------------------------------------------------------------------


def _mount(args: list[str]) -> str | None:
    """Run mount; the reason it failed, or None."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    failure = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if failure:
        pytest.skip(f"cannot mount a tmpfs to fill a disk ({failure}); needs root in a VM/CI")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` (a directory) bind-mounted read-only onto itself: root cannot write there."""
    failure = _mount(["--bind", str(path), str(path)])
    if failure:
        pytest.skip(f"cannot bind-mount a read-only directory ({failure})")
    try:
        failure = _mount(["-o", "remount,bind,ro", str(path)])
        if failure:
            pytest.skip(f"cannot remount read-only ({failure})")
        yield path
    finally:
        _umount(path)


def fill(disk: Path, leave: int) -> None:
    """Fill the file system at ``disk`` until about ``leave`` bytes are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


# ---------------------------------------------------------------------------
# prepare_output and publish
# ---------------------------------------------------------------------------


def test_prepare_creates_the_directory_and_publish_writes_exactly_the_files(tmp_path):
    out = prepare_output(tmp_path / "a" / "b" / "out", expected_bytes=1000)
    assert out.path.is_dir()
    assert out.checkpoint == out.path / CHECKPOINT_NAME
    names = out.publish({"posterior.nc": writer(b"x" * 10), "trace.png": writer(b"png")})
    assert names == ["posterior.nc", "trace.png"]
    assert entries(out.path) == {"posterior.nc", "trace.png", MANIFEST_NAME}
    assert (out.path / "posterior.nc").read_bytes() == b"x" * 10
    assert read_manifest(out.path) == {"posterior.nc": 10, "trace.png": 3}
    record = json.loads((out.path / MANIFEST_NAME).read_text())
    assert record["format"] == "bgmm-output-manifest" and record["version"] == 1
    no_staging_left(out.path.parent)


def test_second_run_with_fewer_files_leaves_no_stale_ones(tmp_path):
    first = prepare_output(tmp_path / "out")
    first.publish({"posterior.nc": writer(b"1"), "locations.png": writer(b"p")})
    second = prepare_output(tmp_path / "out")
    (second.checkpoint).mkdir()  # what a run keeps while sampling
    second.publish({"posterior.nc": writer(b"2")})
    assert entries(tmp_path / "out") == {"posterior.nc", MANIFEST_NAME}
    assert (tmp_path / "out" / "posterior.nc").read_bytes() == b"2"
    no_staging_left(tmp_path)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_swap_with_and_without_atomic_exchange(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(files, "exchange_paths", lambda a, b: False)
    prepare_output(tmp_path / "out").publish({"a": writer(b"old")})
    prepare_output(tmp_path / "out").publish({"b": writer(b"new")})
    assert entries(tmp_path / "out") == {"b", MANIFEST_NAME}
    no_staging_left(tmp_path)


def test_foreign_files_are_refused_naming_the_first(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    (tmp_path / "out" / "b.csv").write_text("mine")
    with pytest.raises(OutputError) as info:
        prepare_output(tmp_path / "out", option="--out")
    message = str(info.value)
    assert "--out" in message and "2 entries" in message and "'b.csv'" in message
    assert "--force" in message
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_force_replaces_foreign_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    out = prepare_output(tmp_path / "out", force=True)
    assert (tmp_path / "out" / "notes.txt").exists()  # still there during the run
    out.publish({"posterior.nc": writer(b"new")})
    assert entries(tmp_path / "out") == {"posterior.nc", MANIFEST_NAME}


def test_empty_directory_and_own_files_are_accepted(tmp_path):
    (tmp_path / "out").mkdir()
    prepare_output(tmp_path / "out").publish({"posterior.nc": writer(b"1")})
    prepare_output(tmp_path / "out")  # only bgmm's files: fine


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda out: (out / MANIFEST_NAME).write_text("{not json"), id="bad-manifest"),
        pytest.param(lambda out: (out / MANIFEST_NAME).unlink(), id="no-manifest"),
        pytest.param(
            lambda out: ((out / "posterior.nc").unlink(), (out / "posterior.nc").mkdir()),
            id="listed-name-now-a-directory",
        ),
        pytest.param(
            lambda out: ((out / "posterior.nc").unlink(), (out / "posterior.nc").symlink_to("/")),
            id="listed-name-now-a-symlink",
        ),
    ],
)
def test_entries_that_are_not_bgmms_files_are_foreign(tmp_path, tamper):
    prepare_output(tmp_path / "out").publish({"posterior.nc": writer(b"1")})
    tamper(tmp_path / "out")
    with pytest.raises(OutputError, match=r"posterior\.nc"):
        prepare_output(tmp_path / "out")


def test_directory_named_posterior_nc_is_replaced_with_force(tmp_path):
    (tmp_path / "out" / "posterior.nc").mkdir(parents=True)
    (tmp_path / "out" / "posterior.nc" / "inside").write_text("x")
    with pytest.raises(OutputError, match=r"'posterior\.nc'"):
        prepare_output(tmp_path / "out")
    prepare_output(tmp_path / "out", force=True).publish({"posterior.nc": writer(b"nc")})
    assert (tmp_path / "out" / "posterior.nc").read_bytes() == b"nc"


def test_interrupted_run_is_refused_unless_forced_or_resumed(tmp_path):
    out = tmp_path / "out"
    (out / CHECKPOINT_NAME).mkdir(parents=True)
    with pytest.raises(OutputError) as info:
        prepare_output(out)
    assert str(info.value) == (
        f"{out} holds an interrupted run: `bgmm resume {out}` finishes it, --force discards it"
    )
    assert prepare_output(out, allow_checkpoint=True).checkpoint.is_dir()
    prepare_output(out, force=True)
    assert not (out / CHECKPOINT_NAME).exists()


def test_leftovers_of_killed_runs_are_removed(tmp_path):
    (tmp_path / f".out.bgmm-staging-{DEAD_PID}" / "x").mkdir(parents=True)
    (tmp_path / f".out.bgmm-old-{DEAD_PID}").mkdir()
    (tmp_path / f".out.bgmm-staging-{os.getpid()}").mkdir()  # this process, not in use
    live = tmp_path / ".out.bgmm-staging-1"  # PID 1 is alive
    live.mkdir()
    other = tmp_path / f".other.bgmm-staging-{DEAD_PID}"  # another directory's: not ours
    other.mkdir()
    prepare_output(tmp_path / "out")
    assert entries(tmp_path) == {"out", live.name, other.name}


def test_out_is_a_file_or_below_one(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(OutputError, match=r"--out .*file: exists and is not a directory"):
        prepare_output(tmp_path / "file")
    with pytest.raises(OutputError, match="not a directory"):
        prepare_output(tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "keep"


def test_out_is_the_current_directory_or_above_or_root(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for out in (".", "", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current directory"):
            prepare_output(out)
    with pytest.raises(OutputError, match="root"):
        prepare_output("/")


def test_out_is_home_or_above(tmp_path, monkeypatch):
    (tmp_path / "home" / "me").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "me"))
    for out in (tmp_path / "home" / "me", tmp_path / "home"):
        with pytest.raises(OutputError, match="your home"):
            prepare_output(out, force=True)
    prepare_output(tmp_path / "home" / "me" / "results")  # inside it is fine


def test_probe_left_by_a_killed_run_is_not_foreign(tmp_path):
    prepare_output(tmp_path / "out").publish({"posterior.nc": writer(b"1")})
    (tmp_path / "out" / ".bgmm-probe-x1y2").write_bytes(b"")
    prepare_output(tmp_path / "out").publish({"posterior.nc": writer(b"2")})
    assert entries(tmp_path / "out") == {"posterior.nc", MANIFEST_NAME}


def test_out_holding_the_input_is_refused_even_with_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data.csv").write_text("1,2\n")
    with pytest.raises(OutputError, match="contains the input"):
        prepare_output(tmp_path / "out", force=True, protect=[tmp_path / "out" / "data.csv"])


def test_symlinked_out_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    out = prepare_output(tmp_path / "link")
    out.publish({"posterior.nc": writer(b"1")})
    assert (tmp_path / "link").is_symlink()
    assert entries(tmp_path / "real") == {"posterior.nc", MANIFEST_NAME}


def test_broken_symlink_out(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    with pytest.raises(OutputError, match="symbolic link"):
        prepare_output(tmp_path / "link")


def test_discard_removes_only_what_prepare_created(tmp_path):
    out = prepare_output(tmp_path / "new" / "out")
    out.discard()
    assert entries(tmp_path) == set()
    out = prepare_output(tmp_path / "out")
    out.checkpoint.mkdir()
    out.discard(keep_checkpoint=True)  # nothing written in it (a full disk): nothing to keep
    assert entries(tmp_path) == set()
    out = prepare_output(tmp_path / "out")
    out.checkpoint.mkdir()
    (out.checkpoint / "checkpoint.json").write_text("{}")
    out.discard(keep_checkpoint=True)  # e.g. interrupted: `bgmm resume` needs it
    assert out.checkpoint.is_dir()
    (tmp_path / "kept").mkdir()
    out = prepare_output(tmp_path / "kept")
    out.checkpoint.mkdir()
    out.discard(keep_checkpoint=False)  # e.g. bad input found late: nothing to resume
    assert entries(tmp_path / "kept") == set()


def test_publish_rejects_odd_names(tmp_path):
    out = prepare_output(tmp_path / "out")
    for name in ("a/b", MANIFEST_NAME, CHECKPOINT_NAME, ""):
        with pytest.raises(ValueError):
            out.publish({name: writer(b"")})


def test_failed_writer_leaves_the_directory_as_it_was(tmp_path):
    prepare_output(tmp_path / "out").publish({"posterior.nc": writer(b"old")})
    out = prepare_output(tmp_path / "out")

    def broken(path):
        path.write_bytes(b"half")
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OutputError) as info:
        out.publish({"posterior.nc": writer(b"new"), "trace.png": broken})
    assert str(info.value).startswith(f"{tmp_path / 'out' / 'trace.png'}: cannot write it")
    assert "Input/output error" in str(info.value)
    assert (tmp_path / "out" / "posterior.nc").read_bytes() == b"old"
    assert entries(tmp_path / "out") == {"posterior.nc", MANIFEST_NAME}
    no_staging_left(tmp_path)


def test_estimate_output_bytes():
    base = estimate_output_bytes(4, 1000, 3, 2, 1000, num_plots=0)
    assert base == 4000 * 8 * (6 + 6 + 36 + 16) + 8 * 2000 + outputs._OVERHEAD_BYTES
    assert estimate_output_bytes(4, 1000, 3, 2, 1000, num_plots=2) == base + 2 * 2**20
    with_ll = estimate_output_bytes(4, 1000, 3, 2, 1000, num_plots=0, pointwise_log_likelihood=True)
    assert with_ll == base + 4000 * 1000 * 8


def test_not_enough_free_space_is_found_before_anything_is_created(tmp_path):
    with pytest.raises(OutputError, match=r"--out .*needs about .* free"):
        prepare_output(tmp_path / "out", expected_bytes=2**62)
    assert entries(tmp_path) == set()


# ---------------------------------------------------------------------------
# Real full disks and read-only directories
# ---------------------------------------------------------------------------


def test_full_disk_while_writing(tmp_path):
    with tmpfs(tmp_path / "disk", "256k") as disk:
        prepare_output(disk / "out").publish({"posterior.nc": writer(b"old")})
        out = prepare_output(disk / "out")
        fill(disk, leave=16 * 1024)
        with pytest.raises(OutputError) as info:
            out.publish({"posterior.nc": writer(b"x" * 2**20)})
        message = str(info.value)
        assert message.startswith(f"{disk / 'out' / 'posterior.nc'}: cannot write it")
        assert "No space left on device" in message
        assert (disk / "out" / "posterior.nc").read_bytes() == b"old"
        no_staging_left(disk)


def test_read_only_directory(tmp_path):
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        with pytest.raises(OutputError, match=r"--out .*cannot create it \(Read-only file system"):
            prepare_output(tmp_path / "ro" / "out")
        assert entries(tmp_path / "ro") == set()


def test_read_only_existing_out(tmp_path):
    (tmp_path / "out").mkdir()
    with read_only(tmp_path / "out"):
        with pytest.raises(OutputError, match=r"--out .*cannot write in it"):
            prepare_output(tmp_path / "out")


def test_mount_point_is_refused(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        with pytest.raises(OutputError, match="mount point"):
            prepare_output(disk)


# ---------------------------------------------------------------------------
# NetCDF bytes
# ---------------------------------------------------------------------------


def test_netcdf_bytes_load_back_with_arviz(tmp_path):
    import arviz as az

    from bgmm.results import build_inference_data, inference_data_bytes, save_inference_data

    rng = np.random.default_rng(0)
    c, s, k, d = 2, 5, 2, 2
    chol = np.tile(np.eye(d), (c, s, k, 1, 1)) * rng.uniform(1, 2, (c, s, k, 1, 1))
    draws = {
        "weights": rng.dirichlet(np.ones(k), (c, s)),
        "means": rng.normal(size=(c, s, k, d)),
        "chol_precision": chol,
        "lp": rng.normal(size=(c, s)),
        "diverging": np.zeros((c, s), dtype=bool),
        "label_permutation": np.tile(np.arange(k), (c, s, 1)),
    }
    idata = build_inference_data(draws, rng.normal(size=(7, d)), ["a", "b"], {"seed": 3})
    blob = inference_data_bytes(idata)
    assert blob.startswith(b"\x89HDF")
    write_bytes(tmp_path / "posterior.nc", blob)
    back = az.from_netcdf(str(tmp_path / "posterior.nc"))
    assert set(back.groups()) == {"posterior", "sample_stats", "observed_data"}
    np.testing.assert_array_equal(back.posterior["means"].values, draws["means"])
    np.testing.assert_array_equal(back.sample_stats["diverging"].values, draws["diverging"])
    assert back.posterior.attrs["seed"] == 3
    assert list(back.posterior["feature"].values) == ["a", "b"]
    save_inference_data(idata, tmp_path / "saved.nc")
    assert az.from_netcdf(str(tmp_path / "saved.nc")).posterior["weights"].shape == (c, s, k)


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 4.0]])
    values = centres[np.arange(150) % 2] + rng.standard_normal((150, 2))
    path = tmp_path_factory.mktemp("data") / "data.csv"
    np.savetxt(path, values, delimiter=",", header="a,b", comments="", fmt="%.10g")
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    code = bgmm.cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, *fragments: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def after_checkpoint_warning(err: str) -> str:
    """What follows the one warning of a run whose checkpoint did not fit on the disk (the
    run goes on without it)."""
    first, _, rest = err.partition("\n")
    assert first.startswith("warning: cannot write the checkpoint in "), err
    assert "No space left" in first and "the run goes on" in first, first
    return rest


def test_cli_refuses_foreign_files_before_sampling(tmp_path, capsys, data_csv, no_fit):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.xlsx").write_text("mine")
    start = time.perf_counter()
    code, out, err = cli(capsys, "fit", data_csv, "-k", "2", *SHORT, "--out", tmp_path / "out")
    assert time.perf_counter() - start < 2.0
    assert code == 2 and out == ""
    one_error_line(err, "--out", "'results.xlsx'", "--force")
    assert entries(tmp_path / "out") == {"results.xlsx"}


def test_cli_refuses_interrupted_run(tmp_path, capsys, no_fit):
    (tmp_path / "out" / CHECKPOINT_NAME).mkdir(parents=True)
    code, _, err = cli(capsys, "demo", *SHORT, "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, "holds an interrupted run", "bgmm resume", "--force discards it")


def test_cli_full_disk_found_before_sampling(tmp_path, capsys, data_csv, no_fit):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        start = time.perf_counter()
        code, _, err = cli(capsys, "fit", data_csv, "-k", "2", *SHORT, "--out", disk / "out")
        assert time.perf_counter() - start < 2.0
        assert code == 2
        one_error_line(err, f"--out {disk / 'out'}", "free")
        assert entries(disk) == set()


def test_cli_read_only_out_found_before_sampling(tmp_path, capsys, data_csv, no_fit):
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        code, _, err = cli(capsys, "fit", data_csv, "-k", "2", "--out", tmp_path / "ro" / "out")
        assert code == 2
        one_error_line(err, f"--out {tmp_path / 'ro' / 'out'}: cannot create it", "Read-only")


def test_cli_force_no_plots_and_a_full_disk(tmp_path, capsys, data_csv, monkeypatch):
    """One compiled sampler for the runs that really sample."""
    out = tmp_path / "out"
    (out / "posterior.nc").mkdir(parents=True)  # a directory where the file goes
    (out / "old.png").write_bytes(b"someone's figure")
    # --force: afterwards only this run's files.
    code, _, err = cli(capsys, "fit", data_csv, "-k", "2", *SHORT, "--out", out, "--force")
    assert code == 0, err
    files = {"posterior.nc", "assignments.csv", "partition.csv", "locations.png", "trace.png"}
    files |= {"assignments.png", "similarity.png"}
    assert entries(out) == files | {MANIFEST_NAME}
    assert set(read_manifest(out)) == files
    assert (out / "posterior.nc").is_file()
    no_staging_left(tmp_path)
    # --no-plots after a run with plots: no figure of the earlier run stays.
    code, stdout, err = cli(capsys, "fit", data_csv, "-k", "2", *SHORT, "--out", out, "--no-plots")
    assert code == 0, err
    assert entries(out) == {"posterior.nc", "assignments.csv", "partition.csv", MANIFEST_NAME}
    assert ".png" not in stdout
    # A full disk while writing: one error line naming the file, exit 1, nothing changed.
    before = (out / "posterior.nc").read_bytes()
    with tmpfs(tmp_path / "disk", "1m") as disk:
        (disk / "out").mkdir()
        prepare_output(disk / "out").publish({"posterior.nc": writer(before)})
        fill(disk, leave=8 * 1024)
        # The estimate would refuse this disk before sampling; pretend it fits.
        monkeypatch.setattr(outputs, "_check_free_space", lambda *args: None)
        code, stdout, err = cli(
            capsys,
            *("fit", data_csv, "-k", "2", *SHORT, "--out", disk / "out", "--json"),
            *("--checkpoint-every", "0"),  # tries to checkpoint each chunk: one warning
        )
        assert code == 1 and stdout == ""
        one_error_line(
            after_checkpoint_warning(err),
            f"{disk / 'out' / 'posterior.nc'}: cannot write it",
            "No space left",
        )
        assert (disk / "out" / "posterior.nc").read_bytes() == before
        assert entries(disk / "out") == {"posterior.nc", MANIFEST_NAME}
        no_staging_left(disk)


def test_cli_full_disk_in_a_new_directory_leaves_nothing(tmp_path, capsys, data_csv, monkeypatch):
    with tmpfs(tmp_path / "disk", "128k") as disk:
        fill(disk, leave=8 * 1024)
        monkeypatch.setattr(outputs, "_check_free_space", lambda *args: None)
        code, _, err = cli(
            capsys, "fit", data_csv, "-k", "2", *SHORT, "--no-plots", "--out", disk / "a" / "b"
        )
        assert code == 1
        one_error_line(err, "posterior.nc", "No space left")  # too short to checkpoint
        assert entries(disk) == {"filler"}
