"""``bgmm resume`` across processes: a run stopped by SIGINT or killed by SIGKILL and then
resumed gives the draws of a run never stopped, bit for bit.

Each run is a real ``bgmm`` process with ``--checkpoint-every 0`` (a checkpoint after every
compiled chunk); the test waits for the first checkpoint on disk, then signals the process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "bgmm.cli"]
RUN = ["--chains", "2", "--warmup", "300", "--draws", "600", "--no-plots", "--quiet"]
TIMEOUT = 300
CHECKPOINT = Path(".bgmm-checkpoint") / "checkpoint.json"
# Groups of posterior.nc that hold draws (the attributes hold timings, which differ).
DRAW_GROUPS = ("posterior", "sample_stats")


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


def stopped_run(cwd: Path, out: str, signum: int, *args: str) -> subprocess.CompletedProcess:
    """Start ``bgmm ARGS --out OUT``, send ``signum`` once its first checkpoint is on disk,
    and wait for it to end."""
    process = subprocess.Popen(
        [*CLI, *args, *RUN, "--checkpoint-every", "0", "--out", out],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    while not (cwd / out / CHECKPOINT).exists():
        assert process.poll() is None, f"ended before its first checkpoint: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def draws_of(path: Path) -> dict[str, np.ndarray]:
    import xarray as xr

    arrays = {}
    for group in DRAW_GROUPS:
        with xr.open_dataset(path, group=group, engine="h5netcdf") as dataset:
            for name, variable in dataset.data_vars.items():
                arrays[f"{group}/{name}"] = variable.values
    return arrays


def assert_same_draws(a: Path, b: Path) -> None:
    first, second = draws_of(a), draws_of(b)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory) -> Path:
    """posterior.nc of `bgmm demo` run to its end in one go."""
    cwd = tmp_path_factory.mktemp("reference")
    assert_ok(run_cli(cwd, "demo", *RUN, "--out", "ref"))
    return cwd / "ref" / "posterior.nc"


def test_sigint_writes_a_checkpoint_and_resume_finishes_the_same_run(tmp_path, never_stopped):
    stopped = stopped_run(tmp_path, "run", signal.SIGINT, "demo")
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stdout == ""
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "resume with: bgmm resume " in last, last
    assert not (tmp_path / "run" / "posterior.nc").exists()

    # The stopped run's directory is not silently reused by a new run.
    again = run_cli(tmp_path, "demo", *RUN, "--out", "run")
    assert again.returncode == 2 and "bgmm resume run" in again.stderr, again.stderr

    resumed = run_cli(tmp_path, "resume", "run", "--quiet")
    assert_ok(resumed)
    assert_same_draws(tmp_path / "run" / "posterior.nc", never_stopped)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".bgmm-manifest.json",
        "posterior.nc",
    ]


def test_a_killed_run_resumes_bit_identically(tmp_path, never_stopped):
    killed = stopped_run(tmp_path, "run", signal.SIGKILL, "demo")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "posterior.nc").exists()
    assert_ok(run_cli(tmp_path, "resume", "run", "--quiet"))
    assert_same_draws(tmp_path / "run" / "posterior.nc", never_stopped)
    again = run_cli(tmp_path, "resume", "run")
    assert again.returncode == 2 and "holds no checkpoint" in again.stderr, again.stderr


def write_clusters(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.normal(-3, 1, (40, 2)), rng.normal(3, 1, (40, 2))])
    np.savetxt(path, rows, delimiter=",", header="a,b", comments="")


def test_resume_refuses_changed_data_and_takes_moved_data(tmp_path):
    write_clusters(tmp_path / "data.csv")
    fit = ["fit", "data.csv", "-k", "2"]
    stopped = stopped_run(tmp_path, "run", signal.SIGTERM, *fit)
    assert stopped.returncode == 130, stopped.stderr

    (tmp_path / "data.csv").rename(tmp_path / "moved.csv")
    missing = run_cli(tmp_path, "resume", "run")
    assert missing.returncode == 2 and "--data" in missing.stderr, missing.stderr

    write_clusters(tmp_path / "other.csv", seed=1)
    changed = run_cli(tmp_path, "resume", "run", "--data", "other.csv")
    assert changed.returncode == 2, changed.stderr
    assert changed.stderr.startswith("error: ") and "data changed" in changed.stderr
    assert len(changed.stderr.splitlines()) == 1, changed.stderr
    assert (tmp_path / "run" / CHECKPOINT).exists()  # still there to resume properly

    assert_ok(run_cli(tmp_path, "resume", "run", "--data", "moved.csv", "--quiet"))
    assert_ok(run_cli(tmp_path, "fit", "moved.csv", "-k", "2", *RUN, "--out", "ref"))
    assert_same_draws(tmp_path / "run" / "posterior.nc", tmp_path / "ref" / "posterior.nc")


def test_outputs_that_could_not_be_written_are_written_by_resume(
    tmp_path, monkeypatch, capsys, never_stopped
):
    """A failure to publish (a full disk) keeps the finished run's checkpoint: `bgmm resume`
    then writes the outputs without sampling again."""
    import bgmm.cli
    from bgmm import outputs

    def no_room(self, writers):
        raise outputs.OutputError(f"{self.shown}/posterior.nc: cannot write it (No space left)")

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(outputs.OutputDir, "publish", no_room)
        assert bgmm.cli.main(["demo", *RUN, "--checkpoint-every", "0", "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert (out / CHECKPOINT).exists() and not (out / "posterior.nc").exists()
    assert bgmm.cli.main(["resume", str(out), "--quiet", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sampling_seconds"] < 1.0  # nothing left to sample
    assert_same_draws(out / "posterior.nc", never_stopped)
    assert not (out / CHECKPOINT).exists()
