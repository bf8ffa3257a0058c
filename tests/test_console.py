"""What a person sees while nst works: progress in evaluations with the loss, a quiet console, a real --help."""

import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image

from nst.compare import Run, contact_sheet, human
from tests.helpers import TINY_WANDB, nst, run_cli, run_cli_output, signal_at

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """`nst ARGS` with a pseudo-terminal as its stdout and stderr, as in a shell; exit code and what it showed."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, "-m", "nst", *args], cwd=cwd, env=env, stdout=secondary, stderr=secondary, close_fds=True
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    return process.wait(timeout=120), ANSI.sub("", shown.decode(errors="replace").replace("\r", "\n"))


def test_on_a_terminal_the_progress_line_counts_evaluations_and_shows_the_loss(tmp_path):
    args = ["debug=tiny", "optimizer.steps=3", "trainer.enable_progress_bar=true", f"hydra.run.dir={tmp_path / 'r'}"]
    code, shown = on_a_terminal(*args, cwd=tmp_path)
    assert code == 0, shown
    last = [line for line in shown.splitlines() if "evaluations" in line and "loss" in line][-1]
    assert re.search(r"6/6 evaluations\s+loss \S+\s+[\d.]+/s\s+0:00 left", last), last
    assert "Epoch" not in shown and "it/s" not in shown  # not Lightning's bar in steps


def test_in_a_log_the_progress_is_a_line_every_tenth_of_the_run(tmp_path, capsys):
    args = ["debug=tiny", "optimizer.steps=20", "trainer.enable_progress_bar=true", f"hydra.run.dir={tmp_path / 'r'}"]
    code, out, err = run_cli_output(tmp_path, capsys, *args)  # stderr is no terminal here, as in a SLURM log
    assert code == 0, err
    lines = [line for line in (out + err).splitlines() if " evaluations, loss " in line]
    assert [re.search(r"(\d+)/40 evaluations", line).group(1) for line in lines] == [str(n) for n in range(4, 41, 4)]


def test_a_default_run_shows_no_lightning_banner_and_a_few_wandb_lines(tmp_path, capfd):
    """A process of its own: what W&B's service and Lightning print there is what a user sees."""
    result = nst(*TINY_WANDB, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    assert "GPU available" not in shown and "TPU available" not in shown and "max_steps=" not in shown
    assert len([line for line in shown.splitlines() if line.startswith("wandb:")]) <= 4
    code, out, err = run_cli_output(tmp_path, capfd, *TINY_WANDB, "verbose=true", f"hydra.run.dir={tmp_path / 'v'}")
    assert code == 0 and "GPU available" in out + err and "Run summary" in out + err


def test_an_interrupted_run_says_so_and_its_resume_continues_the_same_wandb_run(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "cut"
    signal_at(monkeypatch, 2, signal.SIGINT)
    code, err = run_cli(tmp_path, capsys, *TINY_WANDB, "optimizer.steps=6", "snapshot_every=1",
                        f"hydra.run.dir={run_dir}")  # fmt: skip
    monkeypatch.undo()
    assert code == 130
    assert "nst: interrupted by SIGINT at step" in err and "nst: error" not in err
    assert run_cli(tmp_path, capsys, f"resume={run_dir}")[0] == 0
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and len({run.name.rsplit("-", 1)[1] for run in runs}) == 1  # one W&B run id
    log = (run_dir / "run.log").read_text()
    assert "interrupted by SIGINT at step" in log and re.search(r"resumed at step \d+ of 6", log)
    assert "done: " in log


def test_nst_help_shows_examples_the_groups_and_nst_compare(tmp_path):
    result = nst("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "is powered by Hydra" not in result.stdout
    groups = ("gatys2016_fig2, gatys2016_fig3", "style_loss: gram, mean_std, mrf")
    for shown in ("== Examples ==", "nst -m ", "resume=", "nst compare", *groups, "image:"):
        assert shown in result.stdout, shown


def test_a_sweep_ends_with_its_directory_and_the_compare_command(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "-m", "debug=tiny", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert code == 0, err
    assert f"nst: sweep done: {sweep}; compare its runs with `nst compare {sweep}`" in err


def test_the_contact_sheet_scales_small_finals_to_their_tile_and_writes_numbers_as_people_do(tmp_path):
    Image.new("RGB", (24, 16), "red").save(tmp_path / "final.png")
    run = Run(path=tmp_path, metrics={"status": "finished"}, overrides={}, label="x", number=1)
    contact_sheet([run], tmp_path / "sheet.png", tile=96)
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.getpixel((8 + 2, 8 + 48)) == (255, 0, 0)  # the left edge of the tile, not grey
    assert [human(v) for v in ("10000.0", "0.0001", "0.5", "1.5e-07", "gatys")] == [
        "1e4",
        "1e-4",
        "0.5",
        "1.5e-7",
        "gatys",
    ]
