"""The judge: one fixed network and three figures for every run, whatever it optimised."""

import pytest
import torch

from nst.configs import example
from nst.images import load_image, save_image
from nst.judge import quality
from tests.helpers import train

CONTENT, STYLE = load_image(example("tubingen.jpg"), 64), load_image(example("starry_night.jpg"), 64)


def test_the_style_image_itself_has_no_style_error_and_the_content_no_content_error():
    itself = quality(STYLE, STYLE, [STYLE], [1.0])  # the style image as its own content and style
    assert itself["style_swd"] == pytest.approx(0, abs=1e-6) and itself["style_error"] == pytest.approx(0, abs=1e-6)
    assert quality(CONTENT, CONTENT, [STYLE], [1.0])["content_error"] == 0


def test_the_sliced_wasserstein_figure_repeats_exactly_and_ranks_like_a_style_figure():
    first, again = quality(CONTENT, CONTENT, [STYLE], [1.0]), quality(CONTENT, CONTENT, [STYLE], [1.0])
    assert first == again
    noise = torch.rand(CONTENT.shape, generator=torch.Generator().manual_seed(0))
    assert quality(noise, CONTENT, [STYLE], [1.0])["style_swd"] > first["style_swd"] > 0


def test_no_steps_leave_the_start_image_as_the_result_judged(make_cfg, tmp_path):
    metrics = train(make_cfg("optimizer.steps=0", "image.size=48", "judge=true"), tmp_path)
    assert metrics["status"] == "finished" and metrics["evaluations"] == 0 and metrics["steps"] == 0
    assert metrics["content_error"] == 0 and metrics["loss/content"] == 0  # the content start, untouched
    assert {"style_error", "style_swd", "loss/style"} <= set(metrics)
    save_image(load_image(example("tubingen.jpg"), 48), tmp_path / "content.png")
    assert (tmp_path / "final.png").read_bytes() == (tmp_path / "content.png").read_bytes()
