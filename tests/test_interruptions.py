"""Ctrl-C and SIGTERM leave a run, a sweep or a batch resumable, and a resumed run ends as an uninterrupted one.

Each run goes through the real entry point in this process; the signal is sent when a
given step has ended (`signal_at`), as an event rather than a race against a long run.
The process boundary itself (exit codes, the console) is tested in test_console.py.
"""

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY, run_cli, signal_at


def interrupt(tmp_path: Path, capsys, monkeypatch, args: list[str], step: int, signum: int) -> tuple[int, str]:
    """`nst ARGS` with `signum` sent once step `step` has ended; its exit code and stderr."""
    signal_at(monkeypatch, step, signum)
    try:
        return run_cli(tmp_path, capsys, *args)
    finally:
        monkeypatch.undo()


def nst(tmp_path: Path, capsys, *args: str) -> int:
    code, err = run_cli(tmp_path, capsys, *args)
    assert code == 0, err
    return code


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, capsys, monkeypatch, signum):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["optimizer.steps=8", "snapshot_every=1", "logger=csv"]
    nst(tmp_path, capsys, *settings, f"hydra.run.dir={tmp_path / 'whole'}")

    cut = tmp_path / "cut"
    returncode, stderr = interrupt(tmp_path, capsys, monkeypatch, [*settings, f"hydra.run.dir={cut}"], 3, signum)
    assert returncode == 128 + signum, stderr
    assert f"continue with `nst resume={cut}`" in stderr
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and (cut / "interrupted.png").is_file()
    assert not (cut / "final.png").exists()

    nst(tmp_path, capsys, f"resume={cut}")
    whole = np.asarray(Image.open(tmp_path / "whole" / "final.png"), dtype=float)
    again = np.asarray(Image.open(cut / "final.png"), dtype=float)
    assert np.abs(whole - again).max() <= 1  # same result, up to one 8-bit level
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 8
    assert metrics["evaluations"] == json.loads((tmp_path / "whole" / "metrics.json").read_text())["evaluations"]
    assert not (cut / "resume.ckpt").exists()
    with open(cut / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == list(range(9))  # step 0 (the start) to the end
    seconds = [float(row["time_s"]) for row in rows]
    assert seconds[0] == 0 < seconds[1] and seconds == sorted(seconds)  # counted on across the interruption


@pytest.mark.parametrize("snapshots", ["snapshots_32px", "snapshots"], ids=["first-scale", "last-scale"])
def test_a_coarse_to_fine_run_resumes_at_the_scale_it_was_interrupted_at(tmp_path, capsys, monkeypatch, snapshots):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["image.scales=[32,48]", "optimizer.steps=6", "snapshot_every=1", "logger=csv"]
    nst(tmp_path, capsys, *settings, f"hydra.run.dir={tmp_path / 'whole'}")

    cut = tmp_path / "cut"
    first_scale = snapshots == "snapshots_32px"
    signal_at(monkeypatch, 3, signal.SIGINT, fit=1 if first_scale else 2)
    returncode, stderr = run_cli(tmp_path, capsys, *settings, f"hydra.run.dir={cut}")
    monkeypatch.undo()
    assert returncode == 130, stderr
    assert ("of 6 of the 32x24 px stage;" in stderr) == first_scale
    assert (cut / "stage_32px.png").exists() == (not first_scale)
    nst(tmp_path, capsys, f"resume={cut}")
    for name in ("stage_32px.png", "final.png"):
        whole = np.asarray(Image.open(tmp_path / "whole" / name), dtype=float)
        again = np.asarray(Image.open(cut / name), dtype=float)
        assert np.abs(whole - again).max() <= 1, name
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["evaluations"] == json.loads((tmp_path / "whole" / "metrics.json").read_text())["evaluations"]


def test_an_interrupted_job_of_a_sweep_stops_the_sweep(tmp_path, capsys, monkeypatch):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    sweep = ["-m", "loss.style_weight=1e3,1e4", *settings, "optimizer.steps=8", "snapshot_every=1", "logger=csv"]
    cut = tmp_path / "cut"
    returncode, stderr = interrupt(tmp_path, capsys, monkeypatch, [*sweep, f"hydra.sweep.dir={cut}"], 3, signal.SIGTERM)
    assert returncode == 143, stderr
    assert f"continue with `nst resume={cut / '0'}`" in stderr
    assert (cut / "0" / "resume.ckpt").is_file() and not (cut / "1").exists()


def test_an_interrupted_batch_stops_the_sweep_and_leaves_each_run_resumable_alone(tmp_path, capsys, monkeypatch):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    sweep = ["-m", "hydra/launcher=batched", "hydra.launcher.batch_size=2", "loss.style_weight=1e3,1e4,1e5"]
    sweep += [*settings, "optimizer.steps=8", "snapshot_every=1", "logger=csv"]
    nst(tmp_path, capsys, *sweep, f"hydra.sweep.dir={tmp_path / 'whole'}")

    cut = tmp_path / "cut"
    returncode, stderr = interrupt(tmp_path, capsys, monkeypatch, [*sweep, f"hydra.sweep.dir={cut}"], 3, signal.SIGINT)
    assert returncode == 130, stderr
    assert "continue each alone with `nst resume=<directory>`" in stderr
    assert not (cut / "2" / "metrics.json").exists()  # the second batch never started
    for job in ("0", "1"):
        run = cut / job
        assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
        assert (run / "interrupted.png").is_file()
        nst(tmp_path, capsys, f"resume={run}")
        whole = np.asarray(Image.open(tmp_path / "whole" / job / "final.png"), dtype=float)
        again = np.asarray(Image.open(run / "final.png"), dtype=float)
        assert np.abs(whole - again).max() <= 2  # the rest of the run alone, not in the batch: float noise
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "finished" and metrics["steps"] == 8


def test_a_run_that_failed_before_its_batch_was_interrupted_stays_failed(tmp_path, capsys, monkeypatch):
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    sweep = ["-m", "hydra/launcher=batched", "optimizer=adam", "optimizer.torch.lr=1e30,0.02"]
    sweep += [*settings, "optimizer.steps=8", "snapshot_every=1", "logger=csv"]
    cut = tmp_path / "cut"
    returncode, stderr = interrupt(tmp_path, capsys, monkeypatch, [*sweep, f"hydra.sweep.dir={cut}"], 3, signal.SIGINT)
    assert returncode == 130, stderr
    assert f"continue with `nst resume={cut / '1'}`" in stderr
    failed, going = json.loads((cut / "0" / "metrics.json").read_text()), cut / "1"
    assert failed["status"] == "failed" and "lower the learning rate" in failed["error"]
    assert (cut / "0" / "last_good.png").is_file()
    assert not (cut / "0" / "resume.ckpt").exists() and not (cut / "0" / "interrupted.png").exists()
    assert json.loads((going / "metrics.json").read_text())["status"] == "interrupted"
    assert (going / "interrupted.png").is_file() and (going / "resume.ckpt").is_file()


def _signal_during(monkeypatch, module, name: str, signum: int) -> None:
    """Send `signum` to this process when `module.name` is called, then let the call go on."""
    original = getattr(module, name)

    def sending(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, sending)


def test_a_signal_after_the_fit_waits_for_the_outputs_and_the_run_stays_finished(tmp_path, capsys, monkeypatch):
    """SIGTERM while the judge measures final.png: the image, metrics.json and the history are written first."""
    import nst.pipeline

    _signal_during(monkeypatch, nst.pipeline, "quality", signal.SIGTERM)
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TINY, "judge=true", f"hydra.run.dir={run_dir}")
    assert code == 143 and "nst: stopped by SIGTERM after the run finished: its outputs are complete" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["content_error"] > 0 and (run_dir / "final.png").is_file()
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [[], ["train"]], ids=["image", "training"])
def test_a_signal_before_the_fit_stops_the_run_in_one_line_and_says_it_is_not_resumable(
    tmp_path, capsys, monkeypatch, command
):
    """Ctrl-C while the logger starts (W&B's start takes a second): no traceback, an honest metrics.json."""
    import nst.lifecycle

    _signal_during(monkeypatch, nst.lifecycle, "build_logger", signal.SIGINT)
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *command, "debug=tiny", f"hydra.run.dir={run_dir}")
    stopped = "nst: stopped by SIGINT before optimising began: nothing to resume; start the run again"
    assert code == 130 and err.strip() == stopped
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert not (run_dir / ".nst.lock").exists()


def test_sigterm_to_the_whole_process_group_interrupts_a_training_with_loader_processes_and_stops_its_sweep(tmp_path):
    """As `kill -- -PGID`, a terminal's Ctrl-C or scancel deliver it: the loader processes get the signal too."""
    import subprocess
    import sys
    import time

    sweep = tmp_path / "sweep"
    args = ["train", "-m", "debug=tiny", "network=johnson", "data.workers=1", "trainer.max_steps=100000",
            "log_every=1", "seed=0,1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "nst", *args], cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    history = sweep / "0" / "history.csv"
    deadline = time.monotonic() + 120
    while not (history.is_file() and len(history.read_text().splitlines()) > 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=120)
    finally:  # a sweep that went on is not left running
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, err.decode()[-2000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "interrupted"
    assert (sweep / "0" / "resume.ckpt").is_file() and not (sweep / "1").exists()
