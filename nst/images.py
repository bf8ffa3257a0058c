"""Reading images into tensors, writing them back, and the initial image of a run."""

import io
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from nst.errors import NSTError
from nst.outputs import atomic_write

log = logging.getLogger(__name__)


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB, honouring EXIF orientation and compositing transparency on white.

    Greyscale, palette, CMYK and 16-bit images are converted; an image over Pillow's
    decompression-bomb limit (about 179 Mpx) is refused rather than decoded.
    """
    img, _ = _decoded(path, upright=True)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.convert("I").point(lambda v: v / 256).convert("L")  # 16-bit grey to 8-bit
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        log.info("image %s has transparency: composited on white", path)
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def check_image(path: str | Path, long_side: int) -> tuple[int, int]:
    """Refuse a file `open_rgb` would refuse, and give the (width, height) `load_image` will give it.

    Every byte is read as a load reads it, but a JPEG is decoded at an eighth of its
    size: cheap enough to run among a job's checks, before any run directory exists.
    """
    _, size = _decoded(path, upright=False)
    return scaled(size, long_side)


def _decoded(path: str | Path, upright: bool) -> tuple[Image.Image, tuple[int, int]]:
    """The image decoded (upright per its EXIF, or at a JPEG's cheapest draft scale) and its upright (width,
    height) at full size; or the line saying why not."""
    path = Path(path)
    if not path.is_file():
        raise NSTError(f"image {path} does not exist or is not a file: check the path")
    if path.stat().st_size == 0:
        raise NSTError(f"image {path} is an empty file (0 bytes): give a PNG or JPEG file")
    try:
        with Image.open(path) as img:
            if min(img.size) < 2:
                raise NSTError(f"image {path} is {img.width}x{img.height} px: too small to hold content or style")
            size = img.size[::-1] if img.getexif().get(0x0112) in (5, 6, 7, 8) else img.size  # turned by 90°
            if upright:
                img = ImageOps.exif_transpose(img)
            else:
                img.draft(img.mode, (1, 1))
            img.load()
    except Image.DecompressionBombError as exc:
        raise NSTError(f"image {path} is too large to decode safely ({exc}): downsize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NSTError(f"cannot read image {path} ({exc}): give a PNG or JPEG file") from None
    return img, size


def size_at(path: str | Path, long_side: int) -> tuple[int, int]:
    """(width, height) `load_image` will give, read from the header alone: what a memory check needs first."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF says: turned by 90 degrees
                width, height = height, width
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 0, 0  # `load_image` says what is wrong with it
    return scaled((width, height), long_side)


def scaled(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) resized so that the longer side is `long_side`, as `load_image` resizes."""
    scale = long_side / max(*size, 1)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def load_image(path: str | Path, long_side: int) -> Tensor:
    """An image as a (1, 3, H, W) tensor in [0, 1], resized so that max(H, W) = `long_side`."""
    if long_side <= 0:
        raise NSTError(f"image size {long_side} must be a positive number of pixels, e.g. image.size=256")
    img = open_rgb(path)
    img = img.resize(scaled(img.size, long_side), Image.Resampling.LANCZOS)
    return pil_to_tensor(img).float().div(255).unsqueeze(0).contiguous()


def pil_to_tensor(img: Image.Image) -> Tensor:
    """(3, H, W) uint8 of an RGB image, as torchvision's `pil_to_tensor` (not imported: it costs seconds)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def to_pil(image: Tensor) -> Image.Image:
    """The first image of a batch as an 8-bit PIL image: clamped to [0, 1], rounded, NaN (a blown-up step) as black.

    Rounded, not truncated as torchvision's `to_pil_image` does with floats: that would
    darken every saved image by half a level on average.
    """
    pixels = image.detach()[0].float().nan_to_num(0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(pixels.cpu().permute(1, 2, 0).numpy(), mode="RGB")


def save_image(image: Tensor, path: str | Path, rescue: bool = True) -> Path:
    """Write the first image of a batch as a PNG, atomically (see `atomic_write` for `rescue`); where it went."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return atomic_write(path, buffer.getvalue(), rescue)


INITS = ("content", "random", "noisy", "style", "adain", "network")  # adain, network: made by the pipeline


def check_init(init: str) -> None:
    """`init` names a start or an existing image file that decodes."""
    if init not in INITS and not Path(init).is_file():
        raise NSTError(f"init={init!r} is neither {', '.join(INITS)} nor an existing image file")
    if init not in INITS:
        _decoded(init, upright=False)


def initial_image(init: str, content: Tensor, style: Tensor, generator: torch.Generator, noise: float = 0.6) -> Tensor:
    """The starting point of the optimisation, at the content's size.

    `content` and `style` start from those images; `random` is white noise around
    mid-grey (N(0.5, 0.1²)), the Gatys et al. start; `noisy` is the content blended
    with a `noise` share of uniform noise around grey (±20/255), the Ng-course
    start; anything else is read as an image path and resized to the content's size.
    (`adain` needs the style images and a network: the pipeline makes it with nst/adain.py.)
    """
    _, _, h, w = content.shape
    if init == "content":
        return content.clone()
    if init == "noisy":
        uniform = 0.5 + (torch.rand(content.shape, generator=generator) * 2 - 1) * 20 / 255
        return (noise * uniform + (1 - noise) * content).clamp(0, 1)
    if init == "random":
        return (0.5 + 0.1 * torch.randn(content.shape, generator=generator)).clamp(0, 1)
    if init == "style":
        return torch.nn.functional.interpolate(style, size=(h, w), mode="bilinear", antialias=True)
    check_init(init)
    image = load_image(init, max(h, w))
    return torch.nn.functional.interpolate(image, size=(h, w), mode="bilinear", antialias=True)
