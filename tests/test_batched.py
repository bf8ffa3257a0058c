"""Batched sweeps: N jobs optimised as one batch, each with the result it gets alone and its own outputs."""

import csv
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image

from nst.batching import batches
from nst.cli import main
from nst.pipeline import Job, run
from tests.helpers import TINY_WANDB, run_cli, run_cli_output, train, wandb_exit_code, wandb_run

FAST = [o for o in TINY_WANDB if not o.startswith(("optimizer.steps", "snapshot_every"))]
FAST += ["optimizer.steps=3", "snapshot_every=2"]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


def alone_and_together(make_cfg: Callable[..., DictConfig], points: list[list[str]], tmp_path: Path):
    """Each point run alone, then all of them as one batch: (alone, together) metrics and directories."""
    alone = [train(make_cfg(*p), tmp_path / f"alone{i}") for i, p in enumerate(points)]
    jobs = [Job(make_cfg(*p), tmp_path / f"together{i}") for i, p in enumerate(points)]
    together = run(jobs)
    return alone, together


@pytest.mark.parametrize(
    "points",
    [
        [  # L-BFGS: a history, a first step and a learning rate per run
            ["loss.style_weight=1e4", "init=content", "optimizer.torch.lr=1.0"],
            ["loss.style_weight=1e5", "init=random", "optimizer.torch.lr=0.5", "seed=3"],
            ["loss.style_weight=1e3", "init=noisy", "layers=johnson", "loss.tv_weight=1.0"],
            ["loss.content_weight=5", "init=random", "seed=7", "layers.style.conv5_1=0"],
        ],
        [  # Adam: moments and a learning rate per run
            ["optimizer=adam", "optimizer.steps=6", "optimizer.torch.lr=0.05", "init=random"],
            ["optimizer=adam", "optimizer.steps=6", "optimizer.torch.lr=0.01", "loss.style_weight=1e4"],
            ["optimizer=adam", "optimizer.steps=6", "optimizer.torch.lr=0.02", "layers=jcjohnson"],
        ],
    ],
    ids=["lbfgs", "adam"],
)
def test_a_batch_of_runs_gives_each_run_what_it_gets_alone(make_cfg, tmp_path, points):
    points = [["backbone.weights=caffe", "judge=false", *p] for p in points]  # one network for every seed
    alone, together = alone_and_together(make_cfg, points, tmp_path)
    for i, (one, batched) in enumerate(zip(alone, together, strict=True)):
        assert batched["status"] == "finished" and batched["batch_size"] == len(points)
        assert batched["evaluations"] == one["evaluations"]
        assert batched["loss/total"] == pytest.approx(one["loss/total"], rel=1e-3), points[i]
        difference = np.abs(pixels(tmp_path / f"alone{i}/final.png") - pixels(tmp_path / f"together{i}/final.png"))
        assert difference.max() <= 2, points[i]
        assert (tmp_path / f"together{i}/snapshots/step_00001.png").is_file()
        start_row = batched["evaluations"] > batched["steps"]  # L-BFGS: the start image's loss, at step 0
        assert (tmp_path / f"together{i}/history.csv").read_text().count("\n") == 1 + start_row + batched["steps"]
        assert json.loads((tmp_path / f"together{i}/metrics.json").read_text())["status"] == "finished"


def test_a_run_whose_loss_explodes_fails_alone_and_keeps_its_last_good_image(make_cfg, tmp_path):
    points = [
        ["optimizer=adam", "optimizer.torch.lr=0.02"],
        ["optimizer=adam", "optimizer.torch.lr=1e30"],
        ["optimizer=adam", "optimizer.torch.lr=0.01"],
    ]
    together = run([Job(make_cfg(*p), tmp_path / str(i)) for i, p in enumerate(points)])
    assert [r["status"] for r in together] == ["finished", "failed", "finished"]
    assert "lower the learning rate" in together[1]["error"]
    assert (tmp_path / "1" / "last_good.png").is_file() and not (tmp_path / "1" / "final.png").exists()
    assert (tmp_path / "0" / "final.png").is_file() and (tmp_path / "2" / "final.png").is_file()


def test_a_run_that_failed_at_a_coarse_scale_stays_at_its_last_good_image_at_the_finer_ones(make_cfg, tmp_path):
    points = [["optimizer=adam", "optimizer.torch.lr=0.02"], ["optimizer=adam", "optimizer.torch.lr=1e30"]]
    jobs = [Job(make_cfg(*p, "image.scales=[32,48]"), tmp_path / str(i)) for i, p in enumerate(points)]
    together = run(jobs)
    assert [r["status"] for r in together] == ["finished", "failed"]
    with open(tmp_path / "1" / "history.csv", newline="") as f:  # the 48 px stage
        totals = [float(row["total"]) for row in csv.DictReader(f)]
    assert len(totals) > 1 and np.isfinite(totals).all() and len(set(totals)) == 1, totals


def test_a_batch_too_large_for_the_device_runs_its_jobs_one_by_one_with_one_wandb_run_each(
    tmp_path, capsys, monkeypatch
):
    alone = tmp_path / "alone"
    assert run_cli(tmp_path, capsys, *FAST, "logger=none", f"hydra.run.dir={alone}")[0] == 0
    need = json.loads((alone / "metrics.json").read_text())["memory_estimate_mb"] * 2**20
    monkeypatch.setattr("nst.memory.free_memory", lambda device: int(1.5 * need))  # room for one run, not two
    sweep = tmp_path / "sweep"
    sweep_args = ["-m", *FAST, "hydra/launcher=batched", "loss.style_weight=1e3,1e4", f"hydra.sweep.dir={sweep}"]
    monkeypatch.setattr(sys, "argv", ["nst", *sweep_args])
    monkeypatch.chdir(tmp_path)
    main()  # in this process, where the device's free memory is what the line above says
    for job in (sweep / "0", sweep / "1"):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "finished" and "batch_size" not in metrics
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and wandb_exit_code(runs[0]) == 0


def test_only_jobs_that_share_everything_but_per_run_settings_share_a_batch(make_cfg):
    cfgs = [
        make_cfg("loss.style_weight=1e3", "backbone.weights=caffe"),
        make_cfg("loss.style_weight=1e4", "seed=2", "backbone.weights=caffe", "init=random"),
        make_cfg("image.size=48", "backbone.weights=caffe"),  # another size
        make_cfg("loss.style_weight=1e5", "optimizer.torch.lr=0.3", "backbone.weights=caffe"),
        make_cfg("seed=2"),  # random weights: another seed is another network
        make_cfg("seed=3"),
        make_cfg("backbone.weights=caffe", "optimizer.torch.line_search_fn=strong_wolfe"),
        make_cfg("backbone.weights=caffe", "optimizer.torch.line_search_fn=strong_wolfe"),
    ]
    assert batches(cfgs, size=8) == [[0, 1, 3], [2], [4], [5], [6], [7]]
    assert batches(cfgs, size=2) == [[0, 1], [3], [2], [4], [5], [6], [7]]


def test_the_batched_launcher_runs_a_sweep_as_one_batch_with_a_run_dir_and_wandb_run_per_job(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    grid = {"loss.style_weight": ["1e3", "1e4"], "optimizer.torch.lr": ["1.0", "0.5"], "loss.tv_weight": ["-1", "0"]}
    code, out, err = run_cli_output(
        tmp_path, capsys, "-m", *FAST, "hydra/launcher=batched",
        *(f"{key}={','.join(values)}" for key, values in grid.items()), f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert code == 1, err  # the four jobs with a negative TV weight fail
    assert "batch of 4 runs" in out + err
    done = [line for line in out.splitlines() if "done: " in line]
    assert len(done) == 4 and all("][nst" in line for line in done)  # each run's line, under nst's name
    assert err.count("nst: error: loss.tv_weight=-1 must be a finite number >= 0") == 4
    points, names = list(itertools.product(*grid.values())), []
    for index, (style_weight, lr, tv_weight) in enumerate(points):
        job = sweep / str(index)
        metrics = json.loads((job / "metrics.json").read_text())
        if tv_weight == "-1":  # refused before its logger opened
            assert metrics["status"] == "failed" and not (job / "wandb").exists()
            continue
        run = wandb_run(next((job / "wandb").glob("offline-run-*")))
        assert run.config["loss"]["style_weight"] == float(style_weight)
        assert run.config["optimizer"]["torch"]["lr"] == float(lr)
        assert metrics["status"] == "finished" and metrics["batch_size"] == 4
        assert (job / "final.png").is_file() and (job / ".hydra" / "config.yaml").is_file()
        assert run.exit_code == 0
        assert [r["trainer/global_step"] for r in run.history if "loss/total" in r] == [0, 1, 2, 3]
        names.append(run.name)
    assert len(set(names)) == 4
