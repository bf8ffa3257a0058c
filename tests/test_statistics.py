"""Style statistics (`style_loss=gram|mean_std|mrf|swd`): each runs, lowers its own loss, composes and batches."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nst.statistics import MRF, MeanStd, SlicedWasserstein
from tests.helpers import train
from tests.test_batched import alone_and_together, pixels

# MRF matches 3x3 patches at each style layer: the li2016 layers (relu3_1, relu4_1) fit 48 px, the gatys ones don't.
STATISTICS = {
    "gram": ["style_loss=gram"],
    "mean_std": ["style_loss=mean_std"],
    "mrf": ["style_loss=mrf", "layers=li2016"],
    "swd": ["style_loss=swd"],
}
SMALL = ["image.size=48", "optimizer.steps=3", "judge=true"]


def history(out_dir: Path) -> list[dict[str, float]]:
    with open(out_dir / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", STATISTICS)
def test_each_statistic_lowers_its_own_style_loss_and_is_judged_like_every_run(make_cfg, tmp_path, name):
    metrics = train(make_cfg(*STATISTICS[name], *SMALL), tmp_path)
    rows = history(tmp_path)
    assert metrics["status"] == "finished"
    assert rows[-1]["style"] < rows[0]["style"]
    assert {"content_error", "style_error", "style_swd"} <= set(metrics)


@pytest.mark.parametrize(
    "overrides",
    [
        ["style_loss=mean_std", "optimizer=adam", "optimizer.steps=4", "loss=gatys"],
        ["style_loss=mrf", "layers=li2016", "loss=keras", "image.scales=[48,64]", "optimizer.steps=2"],
        ["style_loss=mrf", "layers=li2016", "style=[${example:starry_night.jpg},${example:tubingen.jpg}]"],
        ["style_loss=mean_std", "layers=johnson", "style=[${example:starry_night.jpg},${example:tubingen.jpg}]",
         "style_blend=[3,1]"],
    ],
    ids=["mean_std-adam-gatys", "mrf-keras-coarse-to-fine", "mrf-two-styles", "mean_std-johnson-blend"],
)  # fmt: skip
def test_statistics_compose_with_optimizers_conventions_layer_sets_and_several_styles(make_cfg, tmp_path, overrides):
    metrics = train(make_cfg("image.size=48", *overrides), tmp_path)
    assert metrics["status"] == "finished" and (tmp_path / "final.png").is_file()


@pytest.mark.parametrize("name", ["mean_std", "mrf", "swd"])
def test_a_batch_of_runs_with_one_statistic_gives_each_run_what_it_gets_alone(make_cfg, tmp_path, name):
    base = ["backbone.weights=caffe", "judge=false", *STATISTICS[name], *SMALL]
    points = [[*base, "loss.style_weight=1e4"], [*base, "loss.style_weight=10", "init=random", "seed=3"]]
    alone, together = alone_and_together(make_cfg, points, tmp_path)
    for i, (one, batched) in enumerate(zip(alone, together, strict=True)):
        assert batched["batch_size"] == 2 and batched["loss/total"] == pytest.approx(one["loss/total"], rel=1e-3)
        difference = np.abs(pixels(tmp_path / f"alone{i}/final.png") - pixels(tmp_path / f"together{i}/final.png"))
        assert difference.max() <= 2


def encode_as_is(image: torch.Tensor, layers: set[str]) -> dict[str, torch.Tensor]:
    """An 'encoder' that hands the image on: what MRF does to the style images shows in the patch counts."""
    return {name: image for name in layers}


def test_mrf_takes_patches_from_every_style_image_and_from_its_rotated_and_scaled_copies():
    style, other = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 10, 10)
    assert len(MRF().targets(encode_as_is, [style], [1.0], {"x"})["x"]) == 18 * 22  # every 3x3 patch, stride 1
    assert len(MRF(stride=2).targets(encode_as_is, [style], [1.0], {"x"})["x"]) == 9 * 11
    both = MRF().targets(encode_as_is, [style, other], [0.5, 0.5], {"x"})["x"]
    assert len(both) == 18 * 22 + 8 * 8
    copies = MRF(rotations=[10.0], scales=[0.5]).variants(style)
    # Rotated by 10° and cropped to the upright rectangle inside: 20 cos − 24 sin = 15 by 24 cos − 20 sin = 20 px.
    assert [tuple(c.shape[-2:]) for c in copies] == [(20, 24), (15, 20), (10, 12)]
    rotated = MRF(rotations=[10.0], scales=[0.5]).targets(encode_as_is, [style], [1.0], {"x"})["x"]
    assert len(rotated) == 18 * 22 + 13 * 18 + 8 * 10


def test_mean_std_targets_blend_the_styles_statistics_linearly():
    dark, light = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    (target,) = MeanStd().targets(encode_as_is, [dark, light], [0.25, 0.75], {"x"}).values()
    assert torch.allclose(target[0, 0], torch.full((2,), 0.75))  # means 0 and 1, blended 1:3


def test_sliced_wasserstein_targets_blend_styles_as_their_barycentre_along_directions_drawn_once():
    low, high = torch.zeros(1, 2, 4, 4), torch.full((1, 2, 4, 4), 2.0)
    statistic = SlicedWasserstein(levels=16, seed=5)
    (blended,) = statistic.targets(encode_as_is, [low, high], [0.5, 0.5], {"x"}).values()
    (middle,) = statistic.targets(encode_as_is, [torch.ones(1, 2, 4, 4)], [1.0], {"x"}).values()
    assert blended.shape == (1, 2, 16) and torch.allclose(blended, middle)
    assert torch.equal(statistic.directions(2, torch.device("cpu")), SlicedWasserstein(seed=5).directions(2, "cpu"))
    assert not torch.equal(statistic.directions(2, "cpu"), SlicedWasserstein(seed=6).directions(2, "cpu"))
    with pytest.raises(Exception, match=r"style_loss\.levels=0 must be an integer >= 1"):
        SlicedWasserstein(levels=0)
