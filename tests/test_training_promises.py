"""The training side keeps the promises of the image side: a finished record is never lost, a refused value
changes nothing, a broken network fails honestly, and the first contact says what to do next."""

import csv
import json
import signal
import tempfile
from pathlib import Path

import matplotlib
import pytest
import torch
from PIL import Image

from nst.configs import example
from nst.train.model_file import load_model
from nst.train.validation import Validation
from tests.helpers import run_cli, run_cli_output, signal_at
from tests.test_training import TINY, photos


def _interrupted_training(tmp_path: Path, capsys, monkeypatch) -> Path:
    run = tmp_path / "cut"
    signal_at(monkeypatch, 1, signal.SIGTERM)
    code, _ = run_cli(tmp_path, capsys, *TINY, "trainer.max_steps=3", f"hydra.run.dir={run}")
    monkeypatch.undo()
    assert code == 143
    return run


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    for command, name in ((["debug=tiny"], "image"), (TINY, "training")):
        run = tmp_path / name
        assert run_cli(tmp_path, capsys, *command, f"hydra.run.dir={run}")[0] == 0
        record = (run / "metrics.json").read_bytes()
        code, err = run_cli(tmp_path, capsys, *command[:-1], f"resume={run}")
        assert code == 2 and err.strip() == (
            f"nst: error: resume={run} finished: nothing to continue, and its outputs are kept as they are; start a "
            "new run to go further"
        )
        assert (run / "metrics.json").read_bytes() == record


def test_a_training_resumed_by_the_image_command_is_told_its_command(tmp_path, capsys, monkeypatch):
    run = _interrupted_training(tmp_path, capsys, monkeypatch)
    record = (run / "metrics.json").read_bytes()
    code, err = run_cli(tmp_path, capsys, "debug=tiny", f"resume={run}")
    assert code == 2 and f"continue it with `nst train resume={run}`" in err and len(err.strip().splitlines()) == 1
    assert (run / "metrics.json").read_bytes() == record


def test_a_refused_value_on_resume_leaves_the_saved_config_as_it_was(tmp_path, capsys, monkeypatch):
    run = _interrupted_training(tmp_path, capsys, monkeypatch)
    config = (run / ".hydra" / "config.yaml").read_bytes()
    for value, says in (("9.5", "must be an integer"), ("abc", "is not a number")):
        code, err = run_cli(tmp_path, capsys, *TINY[:1], f"resume={run}", f"trainer.max_steps={value}")
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
        assert (run / ".hydra" / "config.yaml").read_bytes() == config
    assert run_cli(tmp_path, capsys, *TINY[:1], f"resume={run}", "trainer.max_steps=4")[0] == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 4


def test_a_training_whose_loss_becomes_infinite_fails_and_keeps_its_last_good_network(tmp_path, capsys):
    run = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TINY, "optimizer.lr=1e30", "trainer.max_steps=4", f"hydra.run.dir={run}")
    metrics = json.loads((run / "metrics.json").read_text())
    assert code == 2 and metrics["status"] == "failed" and "the training loss became" in metrics["error"]
    assert "the network after step 0 is kept as last_good.pt" in err and not (run / "model.pt").exists()
    network, info = load_model(run / "last_good.pt")
    assert info["steps"] == 0 and all(torch.isfinite(p).all() for p in network.parameters())


def test_a_finished_training_names_its_model_and_how_to_use_it(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli_output(tmp_path, capsys, *TINY, f"hydra.run.dir={run}")
    assert code == 0, err
    assert f"done: {run}/model.pt" in out and f"use it: nst stylize model={run} content=PHOTO out=FILE" in out


def test_a_held_out_photo_that_cannot_be_decoded_is_skipped(tmp_path, capsys):
    from nst.train.data import photo_files, split

    data = photos(tmp_path / "photos", 5)
    broken = split(photo_files(data), 2, 0).val[0]
    broken.write_bytes(broken.read_bytes()[:80])  # its header reads, its pixels do not
    run = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TINY, f"data.content={data}", "data.val_count=2", f"hydra.run.dir={run}")
    assert code == 0, err
    assert str(broken) not in json.loads((run / "metrics.json").read_text())["validated_on"]
    assert f"held-out photo skipped: cannot read image {broken}" in (run / "run.log").read_text()


def test_stylize_refuses_what_it_cannot_write_or_run_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(tmp_path, capsys, *TINY, f"hydra.run.dir={run}")[0] == 0
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 6), "red").save(tiny)
    photo = example("tubingen.jpg")
    cases = [
        ([], "model=, content= and out= are missing"),
        ([f"model={run}", f"content={photo}", f"out={tmp_path}"], "is a directory: give the file to write"),
        ([f"model={run}", f"content={photo}", f"out={tmp_path}/none/x.png"], "does not exist: create it"),
        ([f"model={run}", f"content={photo}", "size=3", f"out={tmp_path}/x.png"], "size=3 must be a whole number"),
        ([f"model={run}", f"content={photo}", "size=100000", f"out={tmp_path}/x.png"], "from 16 to 30000"),
        ([f"model={run}", f"content={tiny}", f"out={tmp_path}/x.png"], "smaller than the 16 px"),
    ]
    for args, says in cases:
        code, err = run_cli(tmp_path, capsys, "stylize", *args)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "x.png").exists()


def test_the_comparison_plots_keep_matplotlib_s_tick_labels_and_show_a_dollar_as_text():
    from nst.compare import _plain

    assert matplotlib.rcParams["text.parse_math"] is True  # tick labels such as 10^3 render as maths
    assert _plain("style=$HOME/a.jpg") == r"style=\$HOME/a.jpg"


def test_model_pt_is_the_best_validated_network_and_patience_stops_a_training_that_no_longer_improves(
    tmp_path, capsys
):
    run = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TINY, "judge=true", "val_every=1", "trainer.max_steps=8", "patience=2",
                        "optimizer.lr=0.05", "best=error_sum", f"hydra.run.dir={run}")  # fmt: skip
    assert code == 0, err
    with open(run / "val.csv") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)][1:]  # step 0 is never kept
    sums = [row["content_error"] + row["style_error"] for row in rows]
    best = rows[sums.index(min(sums))]
    metrics = json.loads((run / "metrics.json").read_text())
    assert abs(metrics["error_sum"] - min(sums)) < 1e-4
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["info"]["best_step"] == best["step"]
    stale = next((i for i in range(2, len(sums)) if min(sums[: i - 1]) <= min(sums[i - 1 : i + 1])), None)
    assert metrics["steps"] == (rows[stale]["step"] if stale is not None else 8)
    assert (run / "last.pt").is_file() == (best["step"] != metrics["steps"])


def test_dominance_prefers_a_network_ahead_of_step_0_on_both_figures_to_one_that_buys_content_with_style():
    validation = Validation([], 0, Path("."), False, best="dominance")
    validation.start = {"content_error": 1.0, "style_error": 0.20, "style_swd": 0.040}
    content_only = {"content_error": 0.70, "style_error": 0.15, "style_swd": 0.044}  # SWD 10% worse than at step 0
    both = {"content_error": 0.90, "style_error": 0.20, "style_swd": 0.036}  # 10% better on both
    assert validation.figure(both) == pytest.approx(0.9) and validation.figure(content_only) == pytest.approx(1.1)
    validation.criterion = "error_sum"  # content + Gram error: the other choice
    assert validation.figure(content_only) < validation.figure(both)


def test_best_dominance_keeps_the_network_furthest_ahead_of_step_0_in_its_weaker_figure_even_after_a_resume(
    tmp_path, capsys, monkeypatch
):
    common = [*TINY, "judge=true", "val_every=1", "trainer.max_steps=5", "checkpoint_every=1", "optimizer.lr=0.05",
              "best=dominance"]  # fmt: skip
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli(tmp_path, capsys, *common, f"hydra.run.dir={whole}")[0] == 0
    with open(whole / "val.csv") as f:
        start, *rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    ahead = [max(row[k] / start[k] for k in ("content_error", "style_swd")) for row in rows]
    kept = rows[ahead.index(min(ahead))]["step"]
    assert torch.load(whole / "model.pt", weights_only=True)["info"]["best_step"] == kept
    signal_at(monkeypatch, 2, signal.SIGTERM)  # step 0's figures must survive the checkpoint: no step 0 on resume
    assert run_cli(tmp_path, capsys, *common, f"hydra.run.dir={cut}")[0] == 143
    monkeypatch.undo()
    assert run_cli(tmp_path, capsys, *TINY[:1], f"resume={cut}")[0] == 0
    assert torch.load(cut / "model.pt", weights_only=True)["info"]["best_step"] == kept


def test_a_full_disk_stops_the_periodic_checkpoints_not_the_training_and_keeps_the_model(
    tmp_path, capsys, monkeypatch, small_disk
):
    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))  # where outputs the disk cannot take are rescued
    run = small_disk / "run"
    code, out, err = run_cli_output(tmp_path, capsys, *TINY, "network=johnson", "network.width=4", "checkpoint_every=1",
                                    "trainer.max_steps=4", f"hydra.run.dir={run}")  # fmt: skip
    assert "no more periodic checkpoints, the run goes on" in out + err
    assert "Traceback" not in out + err
    model = run / "model.pt" if (run / "model.pt").is_file() else next(spare.rglob("model.pt"))
    _, info = load_model(model)
    assert info["steps"] == 4 and code in (0, 2)  # 2: some outputs were rescued, and the line says where
    if code == 2:
        assert "could not take" in err and str(spare) in err
