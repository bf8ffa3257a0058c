"""No finished work is lost: to a full or read-only disk, a kill, a second run in the same directory, a bad resume.

Each case goes through the real entry point as a user meets it: in this process, or in
a process of its own where the process is the behaviour (a kill, W&B's service on a full
disk). Signals come at a given step, a second run meets a lock already held: no races.
"""

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.helpers import TINY, TINY_WANDB, claim_huge, nst, run_cli, signal_at

LONG = [*TINY, "optimizer.steps=150", "snapshot_every=0"]  # a run that lasts until it is killed


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
    result = nst(*TINY_WANDB, *args, cwd=tmp_path, env={"TMPDIR": str(spare)})  # W&B on: it fills the disk too
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


def test_a_read_only_directory_stops_the_run_before_it_optimises(tmp_path, capsys, small_disk):
    (small_disk / "results").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, err = run_cli(tmp_path, capsys, *TINY, f"hydra.run.dir={small_disk / 'results' / 'run'}")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"nst: error: cannot write {small_disk / 'results' / 'run'} ")
    assert line.endswith(
        "(Read-only file system): make it writable or choose another hydra.run.dir; nothing was optimised"
    )


def test_a_killed_run_keeps_its_history_and_nst_compare_lists_it(tmp_path, capsys):
    run_dir = tmp_path / "killed"
    process = start(*LONG, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    history = run_dir / "history.csv"
    wait_for(lambda: history.is_file() and len(history.read_text().splitlines()) >= 4)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "running"
    with open(history, "a") as f:
        f.write("9,90,1.")  # and the kill came in the middle of a row
    code, err = run_cli(tmp_path, capsys, "compare", str(run_dir))
    assert code == 0, err
    table = (run_dir / "report" / "metrics.md").read_text()
    assert "| running |" in table and "killed before it ended" in table and "cut short after" in table


def test_a_second_run_in_the_same_directory_refuses_and_changes_nothing_there(tmp_path, capsys):
    run_dir = tmp_path / "shared"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- the first run's\n")
    first = subprocess.Popen(["sleep", "60"])  # the live process that holds the directory
    (run_dir / ".nst.lock").write_text(str(first.pid))
    try:
        code, err = run_cli(tmp_path, capsys, *TINY, "seed=7", f"hydra.run.dir={run_dir}")
    finally:
        first.kill()
        first.wait()
    assert code == 2
    assert err.strip().splitlines() == [
        f"nst: error: {run_dir} is in use by another nst run (pid {first.pid}): give each run its own "
        "hydra.run.dir, or wait for it to end"
    ]
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == "- the first run's\n"
    assert not (run_dir / "metrics.json").exists()
    code, err = run_cli(tmp_path, capsys, *TINY, f"hydra.run.dir={run_dir}")  # its holder is gone: free again
    assert code == 0, err
    assert not (run_dir / ".nst.lock").exists()


def test_a_second_sweep_into_the_same_directory_refuses_before_writing_there(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- the first sweep's\n")
    first = subprocess.Popen(["sleep", "60"])  # the live sweep that holds the directory
    (sweep / ".nst.lock").write_text(str(first.pid))
    try:
        code, err = run_cli(tmp_path, capsys, "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={sweep}")
    finally:
        first.kill()
        first.wait()
    assert code == 2 and err.strip().splitlines() == [
        f"nst: error: {sweep} is in use by another nst run (pid {first.pid}): give each run its own "
        "hydra.sweep.dir, or wait for it to end"
    ]
    assert (sweep / "0" / ".hydra" / "overrides.yaml").read_text() == "- the first sweep's\n"
    assert sorted(p.name for p in sweep.iterdir()) == [".nst.lock", "0"]


def interrupted(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> Path:
    """A run stopped by SIGINT after its third step, as Ctrl-C leaves it."""
    run_dir = tmp_path / "cut"
    signal_at(monkeypatch, 3, signal.SIGINT)
    code, err = run_cli(tmp_path, capsys, *TINY, "optimizer.steps=6", "snapshot_every=1", *args,
                        f"hydra.run.dir={run_dir}")  # fmt: skip
    monkeypatch.undo()
    assert code == 130, err
    return run_dir


def test_a_damaged_checkpoint_is_one_line_and_leaves_the_interrupted_run_as_it_was(tmp_path, capsys, monkeypatch):
    run_dir = interrupted(tmp_path, capsys, monkeypatch, "logger=wandb")
    checkpoint = run_dir / "resume.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    metrics, wandb_runs = (run_dir / "metrics.json").read_text(), sorted((run_dir / "wandb").iterdir())
    code, err = run_cli(tmp_path, capsys, f"resume={run_dir}")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"nst: error: resume={run_dir}: its resume.ckpt cannot be read (") and "damaged" in line
    assert (run_dir / "metrics.json").read_text() == metrics  # still "interrupted"
    assert sorted((run_dir / "wandb").iterdir()) == wandb_runs  # no second W&B run


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("code", "its resume.ckpt cannot be read"),
        ("minimal", "its resume.ckpt cannot be read (it holds no state_dict)"),
        ("config-missing", "its .hydra/config.yaml is missing or damaged"),
        ("config-damaged", "its .hydra/config.yaml is missing or damaged"),
    ],
)
def test_a_checkpoint_or_config_that_cannot_serve_is_one_line_and_runs_no_code(
    tmp_path, capsys, monkeypatch, damage, says
):
    """Run directories are shared on clusters and downloaded: resume.ckpt is read with weights_only=True, and a run
    that cannot resume stays as it was."""
    run_dir = interrupted(tmp_path, capsys, monkeypatch)
    marker = tmp_path / "ran"
    if damage == "code":
        (run_dir / "resume.ckpt").write_bytes(pickle.dumps(Exploit(str(marker))))
    elif damage == "minimal":
        torch.save({"global_step": 3}, run_dir / "resume.ckpt")
    elif damage == "config-missing":
        (run_dir / ".hydra" / "config.yaml").unlink()
    else:
        (run_dir / ".hydra" / "config.yaml").write_text("image: [unclosed\n")
    metrics = (run_dir / "metrics.json").read_text()
    code, err = run_cli(tmp_path, capsys, f"resume={run_dir}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not marker.exists() and (run_dir / "metrics.json").read_text() == metrics


class Exploit:
    """A pickle that touches a file when loaded without weights_only."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.path),))


def test_resume_extends_a_run_with_more_steps_and_refuses_what_it_cannot_change(tmp_path, capsys, monkeypatch):
    run_dir = interrupted(tmp_path, capsys, monkeypatch)
    code, err = run_cli(tmp_path, capsys, f"resume={run_dir}", "image.size=64")
    assert code == 2 and "it takes optimizer.steps=N (to extend it)" in err and "not image.size" in err
    code, err = run_cli(tmp_path, capsys, f"resume={run_dir}", "optimizer.steps=8")
    assert code == 0, err
    assert not (tmp_path / "outputs").exists()  # the run goes on in its own directory: no new one
    code, err = run_cli(tmp_path, capsys, f"resume={tmp_path / 'nothing'}")
    assert code == 2 and err.strip().endswith("nothing: no such directory; give the directory of an interrupted run")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 8
    assert "steps: 8" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_outputs_are_created_with_the_users_umask(tmp_path, capsys):
    before = os.umask(0o022)
    try:
        code, err = run_cli(tmp_path, capsys, *TINY, f"hydra.run.dir={tmp_path / 'run'}")
    finally:
        os.umask(before)
    assert code == 0, err
    for name in ("final.png", "metrics.json", "history.csv", "snapshots/step_00002.png"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_nst_compare_lists_damaged_runs_with_why_and_still_writes_the_report(tmp_path, capsys):
    """Whatever is in a run folder (downloaded, half-written, hostile) is reported, skipped or drawn as text."""
    sweep = tmp_path / "sweep"
    names = ("good", "bad_metrics", "broken_final", "wrong_types", "no_total", "dollar_label", "fifo", "bomb")
    for name in names:
        (sweep / name).mkdir(parents=True)
        metrics = {"status": "finished", "content_error": 0.5, "style_error": 0.1, "error_sum": 0.6}
        (sweep / name / "metrics.json").write_text(json.dumps(metrics))
        (sweep / name / "history.csv").write_text("step,evaluations,time_s,total\n0,1,0.0,5.0\n1,20,1.0,2.0\n")
        Image.new("RGB", (32, 24), "blue").save(sweep / name / "final.png")
    (sweep / "bad_metrics" / "metrics.json").write_text('{"status": "fini')
    final = sweep / "broken_final" / "final.png"
    final.write_bytes(final.read_bytes()[:40])
    (sweep / "wrong_types" / "metrics.json").write_text('{"status": 3, "content_error": "low", "lbfgs_pairs": "x"}')
    (sweep / "no_total" / "history.csv").write_text("step,loss\n0,1.0\n")
    (sweep / "dollar_label" / ".hydra").mkdir()
    (sweep / "dollar_label" / ".hydra" / "overrides.yaml").write_text("- tag=$\\frac{a$\n")
    (sweep / "fifo" / "metrics.json").unlink()
    os.mkfifo(sweep / "fifo" / "metrics.json")  # reading it would wait for a writer forever
    claim_huge(sweep / "bomb" / "final.png")
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep))
    assert code == 0, err
    table = (sweep / "report" / "metrics.md").read_text()
    assert "| unreadable |" in table and "metrics.json unreadable" in table and "final.png unreadable" in table
    assert "content_error is not a number" in table and "without a total column" in table
    assert "not a regular file" in table and table.count("final.png unreadable") == 2  # broken, bomb
    page = (sweep / "report" / "index.html").read_text()
    assert page.count("<tr class=") == page.count("</tr>") - 1 == len(names)  # the header row, then each run
    assert (sweep / "report" / "contact_sheet.png").is_file()
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep), "--sort", "prettiness")
    assert code == 2 and err.startswith("nst compare: error: --sort prettiness: choose one of content_error")
    (tmp_path / "taken").write_text("")
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep), "--out", str(tmp_path / "taken"))
    assert code == 2 and "is a file: give a directory for the report" in err
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep), "--out", "/proc/nst-report")
    assert code == 2 and err.startswith("nst compare: error: cannot write the report to /proc/nst-report")


def test_nst_compare_into_a_read_only_folder_is_one_line_and_writes_nothing_elsewhere(tmp_path, capsys,
                                                                                      read_only_disk):  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"status": "finished", "content_error": 0.5, "style_error": 0.1}')
    rescued = set(Path(tempfile.gettempdir(), "nst-rescued").glob("*"))
    for out in (read_only_disk, read_only_disk / "report"):
        code, err = run_cli(tmp_path, capsys, "compare", str(run_dir), "--out", str(out))
        assert code == 2 and err == f"nst compare: error: cannot write the report to {out} (Read-only file system): " \
            "choose another --out\n"
    assert set(Path(tempfile.gettempdir(), "nst-rescued").glob("*")) == rescued
