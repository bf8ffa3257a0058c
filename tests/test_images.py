"""Reading images the way users' files come: rotated, transparent, grey, missing."""

import warnings

import pytest
import torch
from PIL import Image

from nst.configs import example
from nst.errors import NSTError
from nst.images import initial_image, load_image, save_image


def test_long_side_is_resized_and_aspect_ratio_kept(photo):
    image = load_image(photo(size=(80, 40)), 32)
    assert image.shape == (1, 3, 16, 32)
    assert 0 <= image.min() and image.max() <= 1 and image.is_contiguous()


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), "red")
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert load_image(path, 40).shape == (1, 3, 40, 20)


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert torch.allclose(load_image(path, 8), torch.ones(1, 3, 8, 8))


def test_greyscale_becomes_three_equal_channels(photo):
    image = load_image(photo(mode="L"), 16)
    assert image.shape[1] == 3 and torch.equal(image[:, 0], image[:, 2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.jpg", "does not exist or is not a file"),
        (lambda d: d, "does not exist or is not a file"),
        (lambda d: (d / "text.png").write_text("not an image") and d / "text.png", "cannot read image"),
    ],
    ids=["missing", "directory", "text-named-png"],
)
def test_unreadable_images_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(NSTError, match=message) as err:
        load_image(make(tmp_path), 32)
    assert "\n" not in str(err.value)


def test_save_image_writes_a_png_and_leaves_no_temp_files(tmp_path):
    save_image(torch.rand(1, 3, 6, 9), tmp_path / "out" / "final.png")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["final.png"]
    with Image.open(tmp_path / "out" / "final.png") as img:
        assert img.size == (9, 6)


def test_a_snapshot_of_a_blown_up_image_writes_nan_as_black_without_a_numpy_warning(tmp_path):
    image = torch.full((1, 3, 4, 4), 0.5)
    image[0, :, 0, 0] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_image(image, tmp_path / "snapshot.png")
    with Image.open(tmp_path / "snapshot.png") as saved:
        assert saved.getpixel((0, 0)) == (0, 0, 0) and saved.getpixel((1, 1)) == (128, 128, 128)


def test_initial_images():
    content, style = torch.rand(1, 3, 12, 16), torch.rand(1, 3, 30, 20)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(initial_image("content", content, style, generator), content)
    assert initial_image("style", content, style, generator).shape == content.shape
    noise = initial_image("random", content, style, generator)
    assert noise.shape == content.shape and abs(noise.mean().item() - 0.5) < 0.05
    with pytest.raises(NSTError, match="init='noise' is neither content, random, noisy, style, adain, network nor an"):
        initial_image("noise", content, style, generator)


def test_shipped_examples_exist_and_unknown_ones_are_named():
    assert load_image(example("starry_night.jpg"), 64).shape == (1, 3, 40, 64)
    with pytest.raises(NSTError, match=r"shipped examples are starry_night\.jpg, tubingen\.jpg"):
        example("mona_lisa.jpg")
