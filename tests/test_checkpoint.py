"""Checkpoints across real processes: a run killed with SIGKILL and resumed in a fresh
process gives the draws of a run never stopped, bit for bit; damaged checkpoints and
other data are refused.

Every process shares one store of compiled programs (conftest's BGMM_CACHE_DIR), so
each program compiles once; the runs are tiny (N = 100, 2 chains, 60 + 60 steps in 20
chunks per chain) and a killed run is slowed down (0.1 s per chunk, in ``should_stop``) so
that the kill lands while it samples.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = r"""
import json, shutil, sys, time
import numpy as np
import bgmm
from bgmm.api import resume
from bgmm.checkpoint import Interrupted

try:  # share compiled programs with the test's other processes: only faster
    bgmm.enable_compilation_cache()
except Exception as exc:
    print(f"no compilation cache: {exc}", file=sys.stderr)
X = np.load(sys.argv[1])


def model(task):
    return bgmm.BayesianGMM(
        2,
        sampler=task["sampler"],
        chain_method=task["chain_method"],
        num_chains=2,
        num_warmup=60,
        num_draws=60,
        random_state=7,
    )


def save(result, path):
    arrays = {
        f"{group}.{name}": result.idata[group][name].values
        for group in ("posterior", "sample_stats")
        for name in result.idata[group].data_vars
    }
    np.savez(path, **arrays)


for task in json.loads(sys.argv[2]):
    if task["do"] == "fit":
        calls = []

        def should_stop(task=task, calls=calls):
            calls.append(1)
            time.sleep(task.get("sleep", 0))  # slows a run down so that a kill lands in it
            return len(calls) == task.get("stop_after")

        checkpoint = {}
        if task.get("dir"):
            checkpoint = {
                "checkpoint_dir": task["dir"],
                "checkpoint_interval": 0,
                "should_stop": should_stop,
                "extra": {"command": "test", "task": task},
            }
        try:
            save(model(task).fit(X, **checkpoint).result_, task["out"])
        except Interrupted as stopped:
            print(json.dumps({"interrupted": str(stopped.directory), "calls": len(calls),
                              "steps": [stopped.steps_done, stopped.steps_total]}), flush=True)
    elif task["do"] == "copy":
        shutil.copytree(task["from"], task["to"])
    elif task["do"] == "resume":
        save(resume(task["dir"], X), task["out"])
"""

# Each sampler once and each chain layout once ("parallel": one chain per device, on two
# host devices); tests/test_runner.py resumes every layout from several chunks in-process.
RUNS = [("hmc", "parallel"), ("nuts", "sequential"), ("gibbs", "vectorized")]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((100, 2)) + np.repeat([[0.0, 0.0], [4.0, 1.0]], 50, axis=0)
    np.save(root / "data.npy", data)
    (root / "worker.py").write_text(WORKER)
    return root


def _command(workspace: Path, tasks: list[dict]) -> list[str]:
    return [
        sys.executable,
        str(workspace / "worker.py"),
        str(workspace / "data.npy"),
        json.dumps(tasks),
    ]


def _environment() -> dict[str, str]:
    # Two host devices for the parallel layout, whatever this machine has.
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")


def _run(workspace: Path, tasks: list[dict]) -> str:
    done = subprocess.run(
        _command(workspace, tasks), env=_environment(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _assert_identical(a_path: Path, b_path: Path) -> None:
    with np.load(a_path) as a, np.load(b_path) as b:
        assert sorted(a.files) == sorted(b.files)
        assert "posterior.means" in a.files and "sample_stats.lp" in a.files
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name


def _progress(directory: Path) -> dict:
    body = json.loads((directory / ".bgmm-checkpoint" / "checkpoint.json").read_text())
    return body["progress"] | {
        "group": body["runner"]["group"],
        "step": body["runner"]["next_step"],
    }


@pytest.mark.parametrize(("sampler", "chain_method"), RUNS)
def test_a_killed_run_resumes_bit_for_bit_in_a_fresh_process(workspace, sampler, chain_method):
    run = workspace / f"{sampler}-{chain_method}"
    task = {"sampler": sampler, "chain_method": chain_method}
    killed = subprocess.Popen(
        _command(
            workspace,
            [task | {"do": "fit", "dir": str(run), "sleep": 0.1, "out": str(run / "finished.npz")}],
        ),
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metadata = run / ".bgmm-checkpoint" / "checkpoint.json"
    deadline = time.monotonic() + 240
    while not metadata.exists():  # the first checkpoint: after the first chunk
        assert killed.poll() is None, killed.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    # At least 19 chunks of at least 0.1 s are left per group (one group of two chains, or
    # two of one): a kill within 1.5 s (3 s) lands mid-run, in warm-up or in the draws.
    delay = random.uniform(0.0, 3.0 if chain_method == "sequential" else 1.5)
    time.sleep(delay)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    progress = _progress(run)
    print(f"{sampler}/{chain_method}: SIGKILL {delay:.3f} s after the first checkpoint: {progress}")
    assert killed.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert 0 < progress["steps_done"] < progress["steps_total"], progress

    tasks = [
        task | {"do": "resume", "dir": str(run), "out": str(run / "resumed.npz")},
        task | {"do": "fit", "out": str(run / "uninterrupted.npz")},  # same seed, no checkpoint
    ]
    _run(workspace, tasks)
    _assert_identical(run / "resumed.npz", run / "uninterrupted.npz")
    assert not (run / ".bgmm-checkpoint").exists()  # the results supersede it


@pytest.fixture(scope="module")
def stopped(workspace):
    """A run stopped by should_stop after its 5th chunk, a spare copy of its checkpoint,
    the run resumed (same process) and a run never stopped."""
    run, spare = workspace / "stopped", workspace / "spare"
    task = {"sampler": "gibbs", "chain_method": "vectorized"}
    output = _run(
        workspace,
        [
            task
            | {"do": "fit", "dir": str(run), "stop_after": 5, "out": str(run / "finished.npz")},
            {"do": "copy", "from": str(run), "to": str(spare)},
            task | {"do": "resume", "dir": str(run), "out": str(run / "resumed.npz")},
            task | {"do": "fit", "out": str(run / "uninterrupted.npz")},
        ],
    )
    return run, spare, json.loads(output.splitlines()[0])


def test_should_stop_stops_after_the_chunk_and_the_run_resumes_bit_for_bit(stopped):
    run, spare, report = stopped
    assert report["interrupted"] == str(run) and report["calls"] == 5
    # 120 steps in chunks of 6; both chains in one vectorised group: 5 chunks of 2 x 6.
    assert report["steps"] == [60, 240]
    assert _progress(spare) == {"steps_done": 60, "steps_total": 240, "group": 0, "step": 30}
    _assert_identical(run / "resumed.npz", run / "uninterrupted.npz")


def _copy(spare: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(spare, target)
    return target


def test_a_checkpoint_records_what_the_cli_needs(stopped, workspace):
    from bgmm.checkpoint import data_digest, read_checkpoint

    checkpoint = read_checkpoint(stopped[1])
    assert checkpoint.extra["command"] == "test"
    assert checkpoint.fit["feature_names"] == ["x0", "x1"]
    assert checkpoint.data["sha256"] == data_digest(np.load(workspace / "data.npy"))
    assert checkpoint.data["shape"] == [100, 2]
    settings = checkpoint.settings
    assert (settings["sampler"], settings["chain_method"], settings["random_state"]) == (
        "gibbs",
        "vectorized",
        7,
    )
    assert {"bgmm", "jax", "jaxlib", "platform"} <= set(checkpoint.environment)
    assert checkpoint.starts.means.shape == (2, 2, 2)


def test_resume_refuses_changed_data(stopped, workspace, tmp_path):
    from bgmm.api import resume
    from bgmm.checkpoint import CheckpointError

    run = _copy(stopped[1], tmp_path)
    data = np.load(workspace / "data.npy")
    changed = data.copy()
    changed[17, 1] += 1e-9
    with pytest.raises(CheckpointError, match="the data changed since the checkpoint was written"):
        resume(run, changed)
    with pytest.raises(CheckpointError, match="the data changed"):
        resume(run, data[:-1])
    assert (run / ".bgmm-checkpoint" / "checkpoint.json").exists()  # left for the right data


def test_a_damaged_checkpoint_is_refused(stopped, workspace, tmp_path):
    from bgmm.api import resume
    from bgmm.checkpoint import CheckpointError, read_checkpoint

    data = np.load(workspace / "data.npy")
    run = _copy(stopped[1], tmp_path)
    (arrays,) = (run / ".bgmm-checkpoint").glob("arrays-*.npz")
    blob = bytearray(arrays.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    arrays.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        read_checkpoint(run)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        resume(run, data)

    run = _copy(stopped[1], tmp_path / "json")
    metadata = run / ".bgmm-checkpoint" / "checkpoint.json"
    text = metadata.read_text()
    assert '"random_state": 7' in text
    metadata.write_text(text.replace('"random_state": 7', '"random_state": 8'))
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        read_checkpoint(run)
    metadata.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        read_checkpoint(run)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "nowhere")


def test_fit_refuses_a_directory_with_an_unfinished_run(stopped, workspace, tmp_path):
    import bgmm
    from bgmm.checkpoint import CheckpointError

    run = _copy(stopped[1], tmp_path)
    with pytest.raises(CheckpointError, match="unfinished run"):
        bgmm.BayesianGMM(2).fit(np.load(workspace / "data.npy"), checkpoint_dir=run)


def test_checkpoint_arguments_are_checked():
    import bgmm

    data = np.zeros((5, 1))
    with pytest.raises(ValueError, match="should_stop needs a checkpoint_dir"):
        bgmm.BayesianGMM(2).fit(data, should_stop=lambda: False)
    with pytest.raises(ValueError, match="JSON"):
        bgmm.BayesianGMM(2).fit(data, checkpoint_dir="x", extra={"f": print})
    with pytest.raises(ValueError, match="checkpoint_interval"):
        bgmm.BayesianGMM(2).fit(data, checkpoint_dir="x", checkpoint_interval=-1)


# ---------------------------------------------------------------------------------------
# The writer, in this process, on a made-up state (nothing compiled).
# ---------------------------------------------------------------------------------------


def _checkpoint(next_step: int):
    from bgmm.checkpoint import Checkpoint
    from bgmm.model import Params
    from bgmm.samplers.hmc import Tuning
    from bgmm.samplers.runner import RunnerState

    state = RunnerState(
        chain_method="sequential",
        num_chains=1,
        num_warmup=2,
        num_draws=2,
        chunk_size=1,
        num_groups=1,
        group=0,
        next_step=next_step,
        carry=(np.full((1, 3), float(next_step)),),
        carry_key_impls=("",),
        draws={"x": np.zeros((0, 2))},
        tuning=Tuning(np.zeros(0), np.zeros((0, 3)), np.zeros(0, np.int32)),
        group_draws={"x": np.zeros((1, max(next_step - 2, 0)))},
    )
    starts = Params(np.ones((1, 2)), np.zeros((1, 2, 1)), np.ones((1, 2, 1, 1)))
    return Checkpoint({"priors": "default"}, {}, {}, {}, starts, None, state)


def test_writes_are_atomic(tmp_path, monkeypatch):
    from bgmm.checkpoint import read_checkpoint, write_checkpoint

    write_checkpoint(tmp_path, _checkpoint(1))
    real_replace = os.replace

    def die_on_the_metadata(src, dst):
        if str(dst).endswith("checkpoint.json"):
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", die_on_the_metadata)
    with pytest.raises(OSError, match="killed"):
        write_checkpoint(tmp_path, _checkpoint(2))
    monkeypatch.undo()
    # The first checkpoint, whole, though the second's arrays were written.
    assert read_checkpoint(tmp_path).state.next_step == 1
    write_checkpoint(tmp_path, _checkpoint(3))
    assert read_checkpoint(tmp_path).state.next_step == 3
    assert len(list((tmp_path / ".bgmm-checkpoint").iterdir())) == 2  # the JSON, one npz


def test_the_writer_throttles_but_writes_when_stopping_and_at_the_end(tmp_path):
    from bgmm.checkpoint import CheckpointWriter, has_checkpoint, read_checkpoint

    stop = []
    writer = CheckpointWriter(
        tmp_path,
        lambda state: _checkpoint(state.next_step),
        3600.0,
        lambda: bool(stop),
        write_last=True,
    )
    states = {step: _checkpoint(step).state for step in (1, 2, 3, 4)}
    assert writer(states[1]) is False and not has_checkpoint(tmp_path)  # within the hour
    stop.append(1)
    assert writer(states[2]) is True and read_checkpoint(tmp_path).state.next_step == 2
    stop.clear()
    assert writer(states[3]) is False and read_checkpoint(tmp_path).state.next_step == 2
    assert writer(states[4]) is False and read_checkpoint(tmp_path).state.next_step == 4  # last
    assert writer.writes == 2
    short = CheckpointWriter(tmp_path / "short", _checkpoint, 3600.0, write_last=True)
    assert short(states[4]) is False and not has_checkpoint(tmp_path / "short")  # none due


def test_stop_on_signal_asks_once_then_interrupts():
    from bgmm.checkpoint import stop_on_signal

    before = signal.getsignal(signal.SIGINT)
    seen = []
    with stop_on_signal(notice=seen.append) as should_stop:
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes
        assert should_stop() and seen == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before


def test_settings_and_custom_priors_make_the_same_model_again(tmp_path):
    import bgmm
    from bgmm.api import BayesianGMM
    from bgmm.checkpoint import read_checkpoint, write_checkpoint
    from bgmm.config import RunConfig

    priors = bgmm.Priors(np.array([1.0, 2.0]), np.array([[0.5], [-0.5]]), 3.0, 4.0, np.eye(1))
    model = BayesianGMM(2, priors=priors, sampler="nuts", random_state=5, target_accept=0.9)
    settings = model.config.to_dict() | {"chain_method": "vectorized"}
    write_checkpoint(tmp_path, _checkpoint(1)._replace(settings=settings, priors=priors))
    checkpoint = read_checkpoint(tmp_path)
    assert checkpoint.settings == settings and checkpoint.settings["priors"] == "custom"
    again = RunConfig.from_dict(checkpoint.settings, checkpoint.priors)
    assert again.to_dict() == settings
    assert again.sampler_settings() == model.config.sampler_settings("vectorized")
    for a, b in zip(again.priors, priors, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path):
    from types import SimpleNamespace

    from bgmm.checkpoint import CheckpointWarning, CheckpointWriter

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # the checkpoint's folder cannot be made under a file
    made = []
    writer = CheckpointWriter(blocked, made.append, interval=0)
    state = SimpleNamespace(finished=False)
    with pytest.warns(CheckpointWarning, match="the run goes on without one") as caught:
        assert writer(state) is False
        assert writer(state) is False
    assert len(caught) == 1 and writer.writes == 0 and len(made) == 2
    stopping = CheckpointWriter(blocked, made.append, interval=0, should_stop=lambda: True)
    with pytest.warns(CheckpointWarning), pytest.raises(KeyboardInterrupt):
        stopping(state)
