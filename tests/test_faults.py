"""Faults during a run (a NaN loss, a stuck L-BFGS, noisy libraries) keep what finished and say what to do."""

import csv
import json
import logging
import re
import signal

import numpy as np
import pytest
import torch
from lightning_utilities.core.rank_zero import rank_zero_info
from PIL import Image

from nst.configs import example
from nst.images import load_image
from nst.module import NonFiniteLoss
from tests.helpers import TINY_WANDB, run_cli, train, wandb_exit_code


def test_a_nan_loss_stops_the_run_keeps_its_lowest_loss_image_and_marks_it_failed(tmp_path, capsys):
    """Adam at lr 1e30: step 1 evaluates the start image, step 2 the blown-up image after it, NaN.

    last_good.png is the start image, the only one with a finite loss, not the blown-up
    one that step 2 started from.
    """
    run_dir = tmp_path / "run"
    settings = [o for o in TINY_WANDB if not o.startswith(("optimizer.torch.max_iter", "optimizer.steps"))]
    code, err = run_cli(
        tmp_path, capsys, *settings, "optimizer=adam", "optimizer.torch.lr=1e30", "optimizer.steps=20",
        "loss.style_weight=1e30", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert code == 2
    assert "lower the learning rate (optimizer.torch.lr) or the loss weights" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "the loss became" in metrics["error"]
    with Image.open(run_dir / "last_good.png") as image:
        assert image.size == (48, 36)
        kept = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()
    start = load_image(example("tubingen.jpg"), 48)[0] * 255
    assert (kept - start).abs().max() <= 1
    assert wandb_exit_code(next((run_dir / "wandb").glob("offline-run-*"))) == 1
    failed_at = int(re.search(r"at step (\d+)", metrics["error"]).group(1))
    with open(run_dir / "history.csv", newline="") as f:  # Adam's step k: the loss of the image after k-1 steps
        assert [int(row["step"]) for row in csv.DictReader(f)] == list(range(1, failed_at))


def test_a_run_whose_lbfgs_history_stopped_changing_ends_with_a_warning_and_the_fix(make_cfg, tmp_path, caplog):
    """A loss scaled so small that no curvature pair passes sᵀy > 1e-10: the signature of a stuck run."""
    weights = ["loss.content_weight=0", "loss.style_weight=1e-12", "loss.tv_weight=0", "judge=false"]
    cfg = make_cfg(*weights, "optimizer.steps=12", "optimizer.restart_stuck=false")  # 12 iterations: 11 pairs
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "finished" and metrics["lbfgs_pairs"] == [0, 11] and metrics["lbfgs_restarts"] == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "curvature" in r.getMessage()]
    assert "kept only 0 of its last 11 curvature pairs" in warning
    assert "optimizer.torch.line_search_fn=strong_wolfe" in warning and "optimizer.torch.lr" in warning


@pytest.mark.parametrize("compact", [False, True], ids=["torch-lbfgs", "batched-lbfgs"])
def test_by_default_such_a_run_restarts_its_lbfgs_history_instead(make_cfg, tmp_path, caplog, compact):
    caplog.set_level(logging.INFO, logger="nst")
    weights = ["loss.content_weight=0", "loss.style_weight=1e-12", "loss.tv_weight=0", "judge=false"]
    cfg = make_cfg(*weights, "optimizer.steps=12", "optimizer.torch.max_iter=4", f"speed.compact_lbfgs={compact}")
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "finished" and metrics["lbfgs_restarts"] >= 3
    assert "restarted" in caplog.text and "kept only" not in caplog.text


def test_lightnings_advice_to_run_matmuls_in_tf32_is_not_shown_and_its_other_lines_are(caplog):
    """Lightning gives it on Ampere and newer GPUs; nst keeps its Gram matrices in fp32 on purpose."""
    advice = (
        "You are using a CUDA device ('NVIDIA H100 80GB HBM3') that has Tensor Cores. To properly utilize them, you "
        "should set `torch.set_float32_matmul_precision('medium' | 'high')` which will trade-off precision for "
        "performance."
    )
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.utilities.rank_zero"):  # as with verbose=true
        rank_zero_info(advice)  # as lightning_fabric's _check_cuda_matmul_precision says it
        rank_zero_info("GPU available: True (cuda), used: True")
    assert "Tensor Cores" not in caplog.text and "GPU available: True" in caplog.text


def test_a_failed_run_gives_back_the_signal_handlers_it_took(make_cfg, tmp_path):
    """Else, in a sweep, Ctrl-C between two jobs would reach the failed job's handler and do nothing."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(NonFiniteLoss):
        train(make_cfg("optimizer=adam", "optimizer.torch.lr=1e30", "loss.style_weight=1e30"), tmp_path)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
