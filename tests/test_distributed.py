"""The data's rows split across devices and across processes (JAX's distributed runtime,
gloo collectives on this CPU) give the log density and gradient of the whole data.

Each configuration runs in its own processes (tests/distributed_driver.py): a JAX process
cannot change its devices or join a distributed runtime after it has started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bgmm

DRIVER = Path(__file__).with_name("distributed_driver.py")
TOLERANCE = 1e-10  # relative, float64 (issue 11)


def _env(**extra: str) -> dict[str, str]:
    # The children run the bgmm this process imported (a source tree on PYTHONPATH too).
    source = str(Path(bgmm.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return env | {"PYTHONPATH": path, "JAX_PLATFORMS": "cpu"} | extra


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Value and gradient per structure: whole data, two devices, two processes."""
    tmp = tmp_path_factory.mktemp("distributed")
    port = str(_free_port())
    processes = [
        _start(["whole", str(tmp / "whole.json")]),
        _start(
            ["devices", str(tmp / "devices.json")],
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
        ),
        *(_start(["processes", str(tmp / "processes.json"), str(i), "2", port]) for i in (0, 1)),
    ]
    for process in processes:
        _finish(process)
    return {
        name: json.loads((tmp / f"{name}.json").read_text())
        for name in ("whole", "devices", "processes")
    }


@pytest.mark.parametrize("layout", ["devices", "processes"])
@pytest.mark.parametrize("structure", ["full", "diag", "tied", "spherical"])
def test_split_rows_give_the_whole_data_log_density_and_gradient(results, layout, structure):
    whole, split = results["whole"][structure], results[layout][structure]
    np.testing.assert_allclose(split["value"], whole["value"], rtol=TOLERANCE)
    gradient = np.asarray(whole["gradient"])
    scale = np.max(np.abs(gradient))
    np.testing.assert_allclose(split["gradient"], gradient, rtol=0, atol=TOLERANCE * scale)
