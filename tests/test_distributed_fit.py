"""``bgmm fit`` on two processes of JAX's distributed runtime (gloo collectives on this CPU),
each reading only its block of the rows, gives the posterior of a one-process fit.

The processes are real ``bgmm`` commands, started side by side as a launcher would start
them; a JAX process cannot join a distributed runtime after it has started.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import two_run_z

from bgmm.data import load_table
from bgmm.data.blocks import block_bounds, load_block
from bgmm.errors import UserError

# Per quantity, a two-sided normal tail of 6.8e-6; 9 quantities (weights and means, K = 3,
# D = 2): a false failure about once in 15,000 runs.
Z_LIMIT = 4.5
RUN = ["--warmup", "300", "--draws", "300", "--no-plots", "--quiet", "--json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clusters(path: Path, num_rows: int = 1000) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(num_rows, 2)) * 0.5 + rng.integers(0, 3, (num_rows, 1)) * 2.0
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    return path


def _bgmm(args: list[str], cwd: Path, devices: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if devices is not None:  # one CPU device per process: the fewest collectives on 2 cores
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen(
        [sys.executable, "-m", "bgmm.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _on_two_processes(args: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    cluster = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    started = [_bgmm([*args, *cluster, "--process-id", str(i)], cwd, devices=1) for i in range(2)]
    done = []
    for process in started:
        stdout, stderr = process.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def _draws(out: Path) -> dict[str, np.ndarray]:
    from bgmm.results import load_inference_data

    posterior = load_inference_data(out / "posterior.nc").posterior
    return {name: posterior[name].values for name in ("weights", "means")}


@pytest.mark.slow
def test_two_processes_give_the_one_process_posterior(tmp_path):
    data = _clusters(tmp_path / "clusters.csv")
    whole = _bgmm(["fit", str(data), "--out", "whole", "--seed", "1", *RUN], tmp_path)
    split = _on_two_processes(["fit", str(data), "--out", "split", "--seed", "2", *RUN], tmp_path)
    _, stderr = whole.communicate(timeout=600)
    assert whole.returncode == 0, stderr[-3000:]
    for process in split:
        assert process.returncode == 0, process.stderr[-3000:]
    assert split[1].stdout == "", "only process 0 reports"
    # Process 0 wrote what needs no row outside its block: no assignments of all rows.
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [
        ".bgmm-manifest.json",
        "posterior.nc",
    ]
    one, two = _draws(tmp_path / "whole"), _draws(tmp_path / "split")
    for name in ("weights", "means"):
        z = two_run_z(one[name], two[name])
        assert np.all(np.abs(z) < Z_LIMIT), (name, z)
    attrs = _attrs(tmp_path / "split")
    assert attrs["split_rows_processes"] == 2 and attrs["num_observations"] == 1000


def _attrs(out: Path) -> dict:
    from bgmm.results import load_inference_data

    return dict(load_inference_data(out / "posterior.nc").posterior.attrs)


def test_a_bad_row_in_one_block_stops_every_process(tmp_path):
    data = _clusters(tmp_path / "clusters.csv", num_rows=20)
    lines = data.read_text().splitlines()
    lines[15] = "1.0,NA"  # line 16 of the file: in process 1's block (rows 10 to 19)
    data.write_text("\n".join(lines) + "\n")
    done = _on_two_processes(["fit", str(data), "--out", "out", *RUN], tmp_path)
    assert [p.returncode for p in done] == [2, 2]
    errors = [[line for line in p.stderr.splitlines() if line.startswith("error:")] for p in done]
    assert errors[1] == [f"error: {data}: line 16, column 2 ('b'): missing value 'NA'"]
    assert errors[0] == ["error: process 1 stopped with an error (see its output)"]
    assert not any("Traceback" in p.stderr for p in done)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--coordinator", "127.0.0.1:1234"], "go together"),
        (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "0 to 1"),
        (["--sampler", "gibbs", "--split-rows"], "HMC and NUTS"),
        (["select", "--split-rows"], "PSIS-LOO"),
    ],
)
def test_cluster_options_are_checked_before_anything_runs(tmp_path, capsys, args, message):
    from bgmm.cli import main

    data = _clusters(tmp_path / "clusters.csv", num_rows=20)
    command = "fit"
    if args[0] == "select":
        command, args = "select", args[1:]
    assert main([command, str(data), "--out", str(tmp_path / "out"), *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
@pytest.mark.parametrize("num_blocks", [1, 2, 3, 7])
def test_blocks_are_the_file_in_order(tmp_path, suffix, num_blocks):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(23, 3))
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, values)
    else:
        np.savetxt(path, values, delimiter=",", header="x,y,z", comments="", fmt="%.17g")
    whole, names = load_table(path)
    blocks = [load_block(path, i, num_blocks) for i in range(num_blocks)]
    np.testing.assert_array_equal(np.concatenate([rows for rows, _, _ in blocks]), whole)
    assert all(block_names == names and n == 23 for _, block_names, n in blocks)
    sizes = [len(rows) for rows, _, _ in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_block_bounds_cover_the_rows_once():
    for num_rows in (5, 6, 7, 100):
        for num_blocks in (1, 2, 3, 5):
            bounds = [block_bounds(num_rows, num_blocks, i) for i in range(num_blocks)]
            assert bounds[0][0] == 0 and bounds[-1][1] == num_rows
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n3,x\n5,6\n7,8\n", "line 3, column 2 ('b'): 'x' is not a number"),
        ("1,2\n3,4\n5\n7,8\n", "line 3 has 1 column, expected 2 (as in line 1)"),
        ("a,b\n1,2\n3,4\n5,inf\n7,8\n", "line 4, column 2 ('b'): value 'inf' is not finite"),
        ("a,b\n1,2\n3,4\n\n7,8\n9,10\n", "line 4 is blank (no values)"),
    ],
)
def test_a_block_names_the_file_line_as_a_whole_read_does(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError) as whole:
        load_table(path)
    assert message in str(whole.value)
    errors = []
    for i in range(2):
        try:
            load_block(path, i, 2)
        except UserError as exc:
            errors.append(str(exc))
    assert errors == [str(whole.value)]


def test_fewer_rows_than_processes_is_an_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("1,2\n")
    with pytest.raises(UserError, match="1 data rows for 2 processes"):
        load_block(path, 0, 2)


def test_a_fit_on_split_rows_keeps_no_checkpoint(tmp_path):
    import bgmm

    model = bgmm.BayesianGMM(n_components=2, split_rows=True)
    with pytest.raises(UserError, match="no checkpoint"):
        model.fit(np.random.default_rng(0).normal(size=(50, 2)), checkpoint_dir=tmp_path)


def test_a_fit_on_split_rows_in_one_process(tmp_path):
    """One process, its devices: the whole path of a split fit, in this process."""
    import bgmm

    data = np.loadtxt(_clusters(tmp_path / "clusters.csv", num_rows=300), delimiter=",", skiprows=1)
    model = bgmm.BayesianGMM(n_components=3, num_warmup=100, num_draws=100, split_rows=True)
    idata = model.fit(data).idata_
    attrs = idata.posterior.attrs
    assert attrs["num_observations"] == 300 and attrs["split_rows_processes"] == 1
    assert "log_likelihood" not in idata.groups()
    assert idata.observed_data["y"].shape == (300, 2)  # all rows: fewer than the sample's size
    means = np.sort(model.means_[:, 0])
    np.testing.assert_allclose(means, [0.0, 2.0, 4.0], atol=0.2)  # the clusters, well apart


def test_split_rows_from_the_command_line_in_one_process(tmp_path):
    """``bgmm fit --split-rows`` on one process's two devices: a whole run, no checkpoint
    left, and the outputs of a fit (this process holds every row, so the assignments too)."""
    data = _clusters(tmp_path / "clusters.csv", num_rows=300)
    args = ["fit", str(data), "--out", "out", "--split-rows", "--warmup", "100", "--draws", "50"]
    process = _bgmm([*args, "--no-plots", "--quiet", "--json"], tmp_path, devices=2)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    record = json.loads(stdout)
    assert record["split_rows_devices"] == 2 and record["num_observations"] == 300
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".bgmm-manifest.json", "assignments.csv", "partition.csv", "posterior.nc"]


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_a_split_run_and_leaves_nothing(tmp_path, signal_name):
    """A run on split rows keeps no checkpoint, so SIGINT or SIGTERM ends it at once: exit
    130, one line, and --out removed (nothing to resume)."""
    import signal
    import time

    data = _clusters(tmp_path / "clusters.csv", num_rows=300)
    process = _bgmm(["fit", str(data), "--out", "out", "--split-rows", "--quiet"], tmp_path)
    deadline = time.monotonic() + 300
    while not (tmp_path / "out").exists():  # made before anything compiles
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "--out never made"
        time.sleep(0.02)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        "error: interrupted"
    ]
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_a_column_constant_over_all_rows_is_named_before_sampling():
    import bgmm

    data = np.random.default_rng(0).normal(size=(40, 2))
    data[:, 1] = 3.0
    with pytest.raises(UserError, match="column 2 is constant"):
        bgmm.BayesianGMM(n_components=2, split_rows=True).fit(data)
