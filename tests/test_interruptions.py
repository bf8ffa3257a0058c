"""Ctrl-C and SIGTERM leave a run, a sweep or a batch resumable, and a resumed run ends as an uninterrupted one."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY, nst


def interrupt(args: list[str], cwd: Path, once: Path, signum: int) -> tuple[int, str]:
    """Start `nst *args`, send `signum` once the file `once` exists; its exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = [sys.executable, "-m", "nst", *args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not once.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, signum):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["optimizer.steps=40", "snapshot_every=1", "logger=csv"]
    assert nst(*settings, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path).returncode == 0

    cut = tmp_path / "cut"
    once = cut / "snapshots" / "step_00003.png"
    returncode, stderr = interrupt([*settings, f"hydra.run.dir={cut}"], tmp_path, once, signum)
    assert returncode == 128 + signum, stderr
    assert f"continue with `nst resume={cut}`" in stderr
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and (cut / "interrupted.png").is_file()
    assert not (cut / "final.png").exists()

    resumed = nst(f"resume={cut}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = np.asarray(Image.open(tmp_path / "whole" / "final.png"), dtype=float)
    again = np.asarray(Image.open(cut / "final.png"), dtype=float)
    assert np.abs(whole - again).max() <= 1  # same result, up to one 8-bit level
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 40
    assert metrics["evaluations"] == json.loads((tmp_path / "whole" / "metrics.json").read_text())["evaluations"]
    assert not (cut / "resume.ckpt").exists()
    with open(cut / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == list(range(41))  # step 0 (the start) to the end
    seconds = [float(row["time_s"]) for row in rows]
    assert seconds[0] == 0 < seconds[1] and seconds == sorted(seconds)  # counted on across the interruption


@pytest.mark.parametrize("snapshots", ["snapshots_32px", "snapshots"], ids=["first-scale", "last-scale"])
def test_a_coarse_to_fine_run_resumes_at_the_scale_it_was_interrupted_at(tmp_path, snapshots):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["image.scales=[32,48]", "optimizer.steps=20", "snapshot_every=1", "logger=csv"]
    assert nst(*settings, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path).returncode == 0

    cut = tmp_path / "cut"
    once = cut / snapshots / "step_00003.png"
    returncode, stderr = interrupt([*settings, f"hydra.run.dir={cut}"], tmp_path, once, signal.SIGINT)
    assert returncode == 130, stderr
    assert ("of 20 of the 32x24 px stage;" in stderr) == (snapshots == "snapshots_32px")
    assert (cut / "stage_32px.png").exists() == (snapshots == "snapshots")
    resumed = nst(f"resume={cut}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("stage_32px.png", "final.png"):
        whole = np.asarray(Image.open(tmp_path / "whole" / name), dtype=float)
        again = np.asarray(Image.open(cut / name), dtype=float)
        assert np.abs(whole - again).max() <= 1, name
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["evaluations"] == json.loads((tmp_path / "whole" / "metrics.json").read_text())["evaluations"]


def test_an_interrupted_job_of_a_sweep_stops_the_sweep(tmp_path):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    sweep = ["-m", "loss.style_weight=1e3,1e4", *settings, "optimizer.steps=40", "snapshot_every=1", "logger=csv"]
    cut = tmp_path / "cut"
    once = cut / "0" / "snapshots" / "step_00003.png"
    returncode, stderr = interrupt([*sweep, f"hydra.sweep.dir={cut}"], tmp_path, once, signal.SIGTERM)
    assert returncode == 143, stderr
    assert f"continue with `nst resume={cut / '0'}`" in stderr
    assert (cut / "0" / "resume.ckpt").is_file() and not (cut / "1").exists()


def test_an_interrupted_batch_stops_the_sweep_and_leaves_each_run_resumable_alone(tmp_path):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    sweep = ["-m", "hydra/launcher=batched", "hydra.launcher.batch_size=2", "loss.style_weight=1e3,1e4,1e5"]
    sweep += [*settings, "optimizer.steps=16", "snapshot_every=1", "logger=csv"]
    assert nst(*sweep, f"hydra.sweep.dir={tmp_path / 'whole'}", cwd=tmp_path).returncode == 0

    cut = tmp_path / "cut"
    once = cut / "0" / "snapshots" / "step_00003.png"
    returncode, stderr = interrupt([*sweep, f"hydra.sweep.dir={cut}"], tmp_path, once, signal.SIGINT)
    assert returncode == 130, stderr
    assert "continue each alone with `nst resume=<directory>`" in stderr
    assert not (cut / "2" / "metrics.json").exists()  # the second batch never started
    for job in ("0", "1"):
        run = cut / job
        assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
        assert (run / "interrupted.png").is_file()
        resumed = nst(f"resume={run}", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        whole = np.asarray(Image.open(tmp_path / "whole" / job / "final.png"), dtype=float)
        again = np.asarray(Image.open(run / "final.png"), dtype=float)
        assert np.abs(whole - again).max() <= 2  # the rest of the run alone, not in the batch: float noise
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "finished" and metrics["steps"] == 16


def test_a_run_that_failed_before_its_batch_was_interrupted_stays_failed(tmp_path):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "optimizer.torch.max_iter", "snapshot_every"))]
    sweep = ["-m", "hydra/launcher=batched", "optimizer=adam", "optimizer.torch.lr=1e30,0.02"]
    sweep += [*settings, "optimizer.steps=200", "snapshot_every=1", "logger=csv"]
    cut = tmp_path / "cut"
    once = cut / "1" / "snapshots" / "step_00003.png"
    returncode, stderr = interrupt([*sweep, f"hydra.sweep.dir={cut}"], tmp_path, once, signal.SIGINT)
    assert returncode == 130, stderr
    assert f"continue with `nst resume={cut / '1'}`" in stderr
    failed, going = json.loads((cut / "0" / "metrics.json").read_text()), cut / "1"
    assert failed["status"] == "failed" and "lower the learning rate" in failed["error"]
    assert (cut / "0" / "last_good.png").is_file()
    assert not (cut / "0" / "resume.ckpt").exists() and not (cut / "0" / "interrupted.png").exists()
    assert json.loads((going / "metrics.json").read_text())["status"] == "interrupted"
    assert (going / "interrupted.png").is_file() and (going / "resume.ckpt").is_file()
