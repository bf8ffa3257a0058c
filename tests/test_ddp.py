"""One training on several processes (Lightning DDP, gloo on the CPU): the batch shared, one set of outputs.

Lightning starts the extra processes by running the command line again, so the
DDP run goes through a process of its own; the one-process run it is compared with
goes through the same entry point in this process.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import nst, run_cli

# 2 photos a step shared by 2 processes, 4 steps of the tiny training.
TWO = ["train", "debug=tiny", "network=johnson", "network.width=8", "trainer.max_steps=4", "trainer.accelerator=cpu"]


def totals(run_dir: Path) -> list[float]:
    rows = (run_dir / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("total")
    return [float(row.split(",")[column]) for row in rows[1:]]


def test_two_cpu_processes_give_the_loss_curve_of_one_with_the_same_global_batch_and_one_set_of_outputs(
    tmp_path, capsys
):
    """Slow-ish (~15 s): a second process imports torch and Lightning. Tolerance: 1 % a step (the gradients'
    all-reduce sums in another order, and Adam's first steps magnify the last bits)."""
    one, two = tmp_path / "one", tmp_path / "two"
    code, err = run_cli(tmp_path, capsys, *TWO, f"hydra.run.dir={one}")
    assert code == 0, err
    result = nst(*TWO, "trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={two}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert totals(two) == pytest.approx(totals(one), rel=1e-2)
    assert len(totals(two)) == 4
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["processes"] == 2 and metrics["steps"] == 4
    assert (result.stdout + result.stderr).count("done: ") == 1
    kept = sorted(p.name for p in two.iterdir() if not p.name.endswith(".log"))
    assert kept == [".hydra", "final.png", "history.csv", "metrics.json", "model.pt", "samples"]
    a = torch.load(one / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(two / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-2) for k in a)


def test_a_ddp_training_stopped_by_sigterm_resumes_every_process_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """Slow-ish (~60 s): three DDP trainings. SIGTERM reaches the first process only; all stop after the same step,
    one resume.ckpt is written, and `resume=` restarts both processes from it."""
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    settings = [*TWO, "trainer.devices=2", "trainer.max_steps=200"]  # steps enough that SIGTERM lands mid-run
    command = [sys.executable, "-m", "nst", *settings, f"hydra.run.dir={stopped}"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (stopped / "history.csv").is_file() or len((stopped / "history.csv").read_text().splitlines()) < 4:
        assert time.monotonic() < deadline and process.poll() is None, "the training never got going"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert err.decode().count("nst: interrupted by SIGTERM") == 1 and (stopped / "resume.ckpt").is_file()
    assert json.loads((stopped / "metrics.json").read_text())["status"] == "interrupted"
    resumed = nst("train", f"resume={stopped}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert nst(*settings, f"hydra.run.dir={whole}", cwd=tmp_path).returncode == 0
    a = torch.load(stopped / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(whole / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)
