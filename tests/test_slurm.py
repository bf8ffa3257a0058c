"""A sweep sent to a real one-node SLURM cluster (`bash .ci/slurm/start.sh` brings one up), as a user sends it.

Marked `slurm`: skipped with the reason where no cluster answers; CI starts one and
sets NST_REQUIRE=slurm, which turns that skip into a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import required, run_cli, train


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch not found): `bash .ci/slurm/start.sh` brings up a one-node cluster"
    for command in (["sinfo", "-h"], ["sacct", "-n", "-X"]):
        if subprocess.run(command, capture_output=True, timeout=30).returncode:
            return f"`{' '.join(command)}` fails: start the cluster with `bash .ci/slurm/start.sh`"
    return None


PROBLEM = _cluster_problem()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(PROBLEM is not None and not required("slurm"), reason=str(PROBLEM)),
]

# 32 px, random weights, 2 evaluations a step; a long job optimises for half a minute or more.
JOB = ["debug=tiny", "snapshot_every=0", "optimizer.torch.max_iter=2", "logger=none"]
LONG = 500


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s} s")
        time.sleep(0.5)


def _history_lines(job: Path) -> int:
    path = job / "history.csv"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _array_task(sweep: Path, index: int) -> str:
    """The SLURM id of the sweep's job `index`: submitit names its folders after them (`<array>_<index>`; a sweep of
    one job is no array, its folder is the job's id)."""
    folders = [p for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    (folder,) = [p for p in folders if p.name.endswith(f"_{index}")] or folders
    return folder.name


@pytest.mark.slow
def test_a_slurm_sweep_reports_each_job_and_keeps_the_work_of_cancelled_and_timed_out_ones(tmp_path, make_cfg):
    """Jobs 0, 1 finish; 2 has bad input; 3 is cancelled (`scancel --signal=TERM`); 4 gets SLURM's time-limit
    warning (SIGUSR2), checkpoints, is requeued and resumes.

    The warning is sent with `scancel --signal=USR2`, as SLURM sends it `signal_delay_s` before
    the limit: SLURM's own timing of it may be up to a minute early, which on a 1-minute limit
    means at the start. A requeued job waits about two minutes before it starts again.
    """
    assert PROBLEM is None, PROBLEM
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "nst", "-m", "hydra/launcher=slurm", *JOB, f"optimizer.steps=2,3,-1,{LONG},{LONG + 1}",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    sweeping = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for index, signal in ((3, "TERM"), (4, "USR2")):
            _wait_for(lambda i=index: _history_lines(sweep / str(i)) > 3, 300, f"job {index} optimising")
            sent = subprocess.run(["scancel", f"--signal={signal}", _array_task(sweep, index)], capture_output=True)
            assert sent.returncode == 0, sent.stderr
        # Meanwhile, job 4 uninterrupted, here: the image its requeued runs must end with.
        reference = train(make_cfg(*JOB[1:], f"optimizer.steps={LONG + 1}"), tmp_path / "reference")
        _, stderr = sweeping.communicate(timeout=900)
    finally:
        sweeping.kill()
    stderr = stderr.decode()
    assert sweeping.returncode == 1, stderr

    status = {i: json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(5)}
    assert [status[i]["status"] for i in range(5)] == ["finished", "finished", "failed", "interrupted", "finished"]
    assert f"nst: job {sweep / '2'} failed: optimizer.steps=-1" in stderr
    assert f"nst: job {sweep / '3'} interrupted: interrupted by SIGTERM" in stderr
    assert "nst: 1 failed and 1 interrupted job(s) of the sweep" in stderr
    assert (sweep / "3" / "resume.ckpt").is_file()
    assert f"nst resume={sweep / '3'}" in status[3]["error"]

    log = (sweep / "4" / "run.log").read_text()
    assert "interrupted by SIGUSR2" in log and "resumed at step" in log, log
    assert status[4]["steps"] == reference["steps"] == LONG + 1
    assert (sweep / "4" / "final.png").read_bytes() == (tmp_path / "reference" / "final.png").read_bytes()


@pytest.mark.skipif(
    not required("slurm-time-limit"),
    reason="SLURM's own time limit, about 4 minutes (a requeued job waits 2): NST_REQUIRE=slurm-time-limit runs it",
)
def test_a_job_at_slurms_own_time_limit_checkpoints_is_requeued_and_resumes_to_the_same_image(tmp_path, make_cfg):
    """A 1-minute limit and SLURM's warning 30 s before it, which SLURM sends when its timer gets to it."""
    assert PROBLEM is None, PROBLEM
    sweep, steps = tmp_path / "sweep", 300  # about 20 s of optimising: more than one attempt before the warning
    command = [
        sys.executable, "-m", "nst", "-m", "hydra/launcher=slurm", *JOB, f"optimizer.steps={steps}",
        "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=6",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    log = (sweep / "0" / "run.log").read_text()
    assert "interrupted by SIGUSR2" in log and "resumed at step" in log, log
    train(make_cfg(*JOB[1:], f"optimizer.steps={steps}"), tmp_path / "reference")
    assert (sweep / "0" / "final.png").read_bytes() == (tmp_path / "reference" / "final.png").read_bytes()


@pytest.mark.slow
def test_a_training_job_on_slurm_is_requeued_at_its_time_limit_warning_and_resumes_to_the_same_weights(
    tmp_path, capsys
):
    """`nst train` through the SLURM launcher: SIGUSR2 checkpoints, submitit requeues, the job resumes.

    Slow (~3 min): a requeued job waits about two minutes before SLURM starts it again.
    """
    assert PROBLEM is None, PROBLEM
    sweep, alone, steps = tmp_path / "sweep", tmp_path / "alone", 400
    settings = ["debug=tiny", "network=johnson", f"trainer.max_steps={steps}", "log_every=1"]
    command = [sys.executable, "-m", "nst", "train", "-m", "hydra/launcher=slurm", *settings,
               "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    sweeping = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _history_lines(sweep / "0") > 3, 300, "the training job running")
        sent = subprocess.run(["scancel", "--signal=USR2", _array_task(sweep, 0)], capture_output=True)
        assert sent.returncode == 0, sent.stderr
        code, err = run_cli(tmp_path, capsys, "train", *settings, f"hydra.run.dir={alone}")
        assert code == 0, err
        _, stderr = sweeping.communicate(timeout=900)
    finally:
        sweeping.kill()
    assert sweeping.returncode == 0, stderr.decode()
    log = (sweep / "0" / "run.log").read_text()
    assert "interrupted by SIGUSR2" in log and "resumed at step" in log, log
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == steps
    ours, reference = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (sweep / "0", alone))
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


def test_a_training_job_with_two_slurm_tasks_trains_on_two_processes_and_leaves_one_set_of_outputs(tmp_path, capsys):
    """`hydra.launcher.tasks_per_node=2` with `trainer.devices=2`: SLURM starts both processes, Lightning takes
    their ranks from SLURM's environment, the first writes. The same curve as one process (tests/test_ddp.py)."""
    assert PROBLEM is None, PROBLEM
    sweep, alone = tmp_path / "sweep", tmp_path / "alone"
    settings = ["debug=tiny", "trainer.max_steps=4", "network=johnson", "network.width=8"]
    command = [sys.executable, "-m", "nst", "train", "-m", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2",
               "trainer.devices=2", *settings, f"hydra.sweep.dir={sweep}"]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["processes"] == 2 and metrics["steps"] == 4
    assert sorted(p.name for p in (sweep / "0").iterdir()) == [
        ".hydra", "final.png", "history.csv", "metrics.json", "model.pt", "run.log", "samples"
    ]  # fmt: skip
    assert (sweep / "0" / "run.log").read_text().count("done: ") == 1
    code, err = run_cli(tmp_path, capsys, "train", *settings, f"hydra.run.dir={alone}")
    assert code == 0, err
    assert metrics["loss/total"] == pytest.approx(json.loads((alone / "metrics.json").read_text())["loss/total"],
                                                  rel=1e-2)  # fmt: skip


def test_a_training_that_asks_for_more_processes_than_its_slurm_job_has_is_one_line(tmp_path):
    assert PROBLEM is None, PROBLEM
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "nst", "train", "-m", "hydra/launcher=slurm", "trainer.devices=2", "debug=tiny",
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert "this SLURM job has 1 tasks per node on 1 nodes: set hydra.launcher.tasks_per_node=2" in metrics["error"]
