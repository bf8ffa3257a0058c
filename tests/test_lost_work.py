"""No finished work is lost: to a full or read-only disk, a kill, a second run in the same directory, a bad resume.

Each case goes through the real `nst` command, as a user meets it.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import TINY, nst

LONG = [*TINY, "logger=none", "optimizer.steps=150", "snapshot_every=0"]  # a run that takes several seconds


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 150 KiB tmpfs: room for a run's start, not for its snapshots and W&B files (needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.Popen([sys.executable, "-m", "nst", *args], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("waited too long")
        time.sleep(0.05)


def test_a_full_disk_keeps_the_finished_image_elsewhere_and_says_where_in_one_line(tmp_path, small_disk):
    spare = tmp_path / "spare"
    spare.mkdir()
    run_dir = small_disk / "run"
    args = ["image.size=64", "optimizer.steps=8", "snapshot_every=1", f"hydra.run.dir={run_dir}"]
    result = nst(*TINY, *args, cwd=tmp_path, env={"TMPDIR": str(spare)})  # W&B on: it fills the disk too
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Traceback" not in output and "Logging error" not in output and "socket.send" not in output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("nst: error:")]
    assert f"{run_dir} could not take final.png" in line and "free about" in line
    (rescue,) = (spare / "nst-rescued").iterdir()
    assert str(rescue) in line
    assert json.loads((rescue / "metrics.json").read_text())["status"] == "finished"
    assert (rescue / "final.png").stat().st_size > 0
    assert not (run_dir / "metrics.json").exists()  # its "running" version would mislead nst compare


def test_a_read_only_directory_stops_the_run_before_it_optimises(tmp_path, small_disk):
    (small_disk / "results").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = nst(*TINY, f"hydra.run.dir={small_disk / 'results' / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"nst: error: cannot write {small_disk / 'results' / 'run'} ")
    assert line.endswith(
        "(Read-only file system): make it writable or choose another hydra.run.dir; nothing was optimised"
    )


def test_a_killed_run_keeps_its_history_and_nst_compare_lists_it(tmp_path):
    run_dir = tmp_path / "killed"
    process = start(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    history = run_dir / "history.csv"
    wait_for(lambda: history.is_file() and len(history.read_text().splitlines()) >= 4)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "running"
    with open(history, "a") as f:
        f.write("9,90,1.")  # and the kill came in the middle of a row
    compare = subprocess.run([sys.executable, "-m", "nst", "compare", str(run_dir)], capture_output=True, text=True)
    assert compare.returncode == 0, compare.stderr
    table = (run_dir / "report" / "metrics.md").read_text()
    assert "| running |" in table and "killed before it ended" in table and "cut short after" in table


def test_a_second_run_in_the_same_directory_refuses_and_changes_nothing_there(tmp_path):
    run_dir = tmp_path / "shared"
    first = start(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(lambda: (run_dir / "history.csv").is_file())
    second = nst(*TINY, "logger=none", "seed=7", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"nst: error: {run_dir} is in use by another nst run (pid {first.pid}): give each run its own "
        "hydra.run.dir, or wait for it to end"
    ]
    assert first.wait(timeout=300) == 0
    assert "seed=7" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert not (run_dir / ".nst.lock").exists()
    assert nst(*TINY, "logger=none", f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0  # free again


def interrupted(tmp_path: Path, *args: str) -> Path:
    """A run stopped by SIGINT after its third step, as Ctrl-C leaves it."""
    run_dir = tmp_path / "cut"
    process = start(*TINY, "optimizer.steps=40", "snapshot_every=1", *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(lambda: (run_dir / "snapshots" / "step_00003.png").is_file())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    return run_dir


def test_a_damaged_checkpoint_is_one_line_and_leaves_the_interrupted_run_as_it_was(tmp_path):
    run_dir = interrupted(tmp_path)
    checkpoint = run_dir / "resume.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    metrics, wandb_runs = (run_dir / "metrics.json").read_text(), sorted((run_dir / "wandb").iterdir())
    result = nst(f"resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"nst: error: resume={run_dir}: its resume.ckpt cannot be read (") and "damaged" in line
    assert (run_dir / "metrics.json").read_text() == metrics  # still "interrupted"
    assert sorted((run_dir / "wandb").iterdir()) == wandb_runs  # no second W&B run


def test_resume_extends_a_run_with_more_steps_and_refuses_what_it_cannot_change(tmp_path):
    run_dir = interrupted(tmp_path, "logger=none")
    refused = nst(f"resume={run_dir}", "image.size=64", cwd=tmp_path)
    assert refused.returncode == 2 and "it takes optimizer.steps=N (to extend it)" in refused.stderr
    assert "not image.size" in refused.stderr
    extended = nst(f"resume={run_dir}", "optimizer.steps=44", cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 44
    assert "steps: 44" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_outputs_are_created_with_the_users_umask(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.umask(0o022); from nst.cli import main; main()", *TINY,
         "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("final.png", "metrics.json", "history.csv", "snapshots/step_00002.png"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_nst_compare_lists_damaged_runs_with_why_and_still_writes_the_report(tmp_path):
    sweep = tmp_path / "sweep"
    for name in ("good", "bad_metrics", "broken_final"):
        (sweep / name).mkdir(parents=True)
        metrics = {"status": "finished", "content_error": 0.5, "style_error": 0.1, "error_sum": 0.6}
        (sweep / name / "metrics.json").write_text(json.dumps(metrics))
        (sweep / name / "history.csv").write_text("step,evaluations,time_s,total\n0,1,0.0,5.0\n1,20,1.0,2.0\n")
        Image.new("RGB", (32, 24), "blue").save(sweep / name / "final.png")
    (sweep / "bad_metrics" / "metrics.json").write_text('{"status": "fini')
    final = sweep / "broken_final" / "final.png"
    final.write_bytes(final.read_bytes()[:40])
    compare = [sys.executable, "-m", "nst", "compare", str(sweep)]
    result = subprocess.run(compare, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = (sweep / "report" / "metrics.md").read_text()
    assert "| unreadable |" in table and "metrics.json unreadable" in table and "final.png unreadable" in table
    assert (sweep / "report" / "index.html").is_file() and (sweep / "report" / "contact_sheet.png").is_file()
    bad_sort = subprocess.run([*compare, "--sort", "prettiness"], capture_output=True, text=True)
    assert bad_sort.returncode == 2 and bad_sort.stdout == ""
    assert bad_sort.stderr.startswith("nst compare: error: --sort prettiness: choose one of content_error")
    (tmp_path / "taken").write_text("")
    on_a_file = subprocess.run([*compare, "--out", str(tmp_path / "taken")], capture_output=True, text=True)
    assert on_a_file.returncode == 2 and "is a file: give a directory for the report" in on_a_file.stderr
