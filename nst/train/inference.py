"""One image through a trained network, as `nst stylize` controls it: strength, colour, stroke scale, tiles.

For every network kind: `strength` blends the network's image with the photo (an
AdaIN decoder blends its features: Huang & Belongie's α); `colour=luminance` keeps
the photo's chrominance under the result's luminance, as image runs do, and
`colour=histogram` recolours the result to the photo's colour mean and covariance;
`scale` runs the network on the photo shrunk by that factor and resizes the result
back (larger strokes, as Johnson et al. suggest). Every kind runs in seam-free tiles
where the whole photo would not fit (nst/train/tiles.py): an AdaIN decoder's tiles share
the whole photo's feature statistics, streamed over the tiles first, as a network's
share its instance norms'. With
regions (nst/regions.py) each region takes its own style and the photo runs whole.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from nst import colour
from nst.adain import STRIDE, encoder, transfer
from nst.errors import NSTError
from nst.images import load_image
from nst.memory import free_memory
from nst.regions import Regions
from nst.train.decoder_pass import DECODER_CONTEXT, DecoderPass, streamed_statistics
from nst.train.kinds import kind_of
from nst.train.model_file import stylize
from nst.train.styled_decoder import StyledDecoder
from nst.train.tiles import bytes_per_pixel, tile_side, tiled

MIN_SIDE = 16  # the smallest side a network's two stride-2 convolutions (and AdaIN's encoder) run at


@dataclass(frozen=True)
class Control:
    """What `nst stylize` changes at inference: `strength` in [0, 1], `colour` None | luminance | histogram, `scale`
    the factor the photo is shrunk by before the pass (>= 1)."""

    strength: float = 1.0
    colour: str | None = None
    scale: float = 1.0

    @classmethod
    def of(cls, settings: dict[str, str]) -> "Control":
        """From the command line's settings; one line naming the key where a value is out of range."""
        values = {}
        for key, low, high in (("strength", 0.0, 1.0), ("scale", 1.0, 16.0)):
            given = settings.get(key)
            if given is None:
                continue
            try:
                value = float(given)
            except ValueError:
                value = math.nan
            if not low <= value <= high:
                raise NSTError(f"{key}={given} must be a number from {low:g} to {high:g}")
            values[key] = value
        mode = settings.get("colour")
        if mode is not None and mode not in colour.MODES:
            raise NSTError(f"colour={mode}: choose {' or '.join(colour.MODES)} (or leave it out)")
        return cls(**values, colour=mode)


def styled(
    network: torch.nn.Module,
    photo: Tensor,
    styles: list[Tensor] | None,
    tile: str,
    mix: list[float] | None,
    control: Control,
    device: torch.device,
    name: str,
    regions: Regions | None = None,
) -> tuple[Tensor, float]:
    """The network's image of `photo` (named `name` in errors) under `control`, and the pass's seconds: an AdaIN
    decoder's with `styles` or a per-style AdaIN network's, a Johnson network's, whole or in tiles; with `regions`,
    whole, each region in its own style (`decoded_regions`, `by_region`)."""
    seen = photo if control.scale == 1 else F.interpolate(photo, scale_factor=1 / control.scale, mode="bilinear",
                                                          antialias=True)  # fmt: skip
    if min(seen.shape[-2:]) < MIN_SIDE:
        raise NSTError(f"content={name} gives {seen.shape[-1]}x{seen.shape[-2]} px, smaller than the "
                       f"{MIN_SIDE} px a network's downsampling needs: give a larger photo or size=")  # fmt: skip
    started = time.perf_counter()
    adain = styles is not None or isinstance(network, StyledDecoder)  # its strength blends features
    if adain and regions is None:
        decoder, style = adain_target(network, styles)
        run = partial(decoded, decoder, style=style, alpha=control.strength)
        side = tile_of(tile, torch.nn.ModuleList([decoder, encoder()]), run, seen, device)  # both networks' memory
        image = decoded_tiles(decoder, seen, style, control.strength, side) if side else run(seen)
    elif styles is not None:
        image = decoded_regions(network, seen, styles, control.strength, regions)
    elif regions is not None:
        image = by_region(network, seen, regions)
    else:
        run = partial(stylize, network, mix=mix)
        side = tile_of(tile, network, run, seen, device)
        image = tiled(run, network, seen, side) if side else run(seen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return controlled(image.cpu(), photo, control, decoded=adain), seconds


def tile_of(given: str, network: torch.nn.Module, run: Callable[[Tensor], Tensor], photo: Tensor,
          device: torch.device) -> int:  # fmt: skip
    """The tile side: `tile=PX`, 0 for the whole photo, or `auto`: the whole photo where a quarter of the device's
    free memory takes it, else the largest tile that does (nst/train/tiles.py)."""
    if given != "auto":
        return int(given)
    height, width = photo.shape[-2:]
    return tile_side(height, width, bytes_per_pixel(run, network, device), free_memory(device))


def controlled(image: Tensor, photo: Tensor, control: Control, decoded: bool = False) -> Tensor:
    """The network's `image` of `photo` under `control`: back to the photo's size, blended with the photo by the
    strength (an AdaIN decoder has blended its features already), recoloured as `colour` asks."""
    if image.shape[-2:] != photo.shape[-2:]:
        image = F.interpolate(image, size=photo.shape[-2:], mode="bicubic").clamp(0, 1)
    if control.strength != 1 and not decoded:
        image = control.strength * image + (1 - control.strength) * photo
    if control.colour == "luminance":
        image = colour.finish("luminance", image, photo)
    elif control.colour == "histogram":
        image = colour.match_colour(image, photo)
    return image.clamp(0, 1)


def style_images(network: torch.nn.Module, style: str | None, size: int) -> list[Tensor] | None:
    """The `style=` image (or `[a.jpg,b.jpg]`: one per region, or blended) an any-style network needs, read at the
    photo's size; refused for a network of fixed styles."""
    if not kind_of(network).any_style:
        if style:
            raise NSTError("style= is for an AdaIN decoder; this network has its style built in: drop style=")
        return None
    if not style:
        raise NSTError("this model is an AdaIN decoder: give the style image with style=IMAGE")
    paths = [p.strip() for p in style.strip("[]").split(",")] if style.startswith("[") else [style]
    return [load_image(path, size) for path in paths]


def adain_target(network: torch.nn.Module, styles: list[Tensor] | None) -> tuple[torch.nn.Module, Tensor]:
    """The decoder and the relu4_1 statistics (1, 2, C) an AdaIN network moves the photo's features to: those of
    the `style=` images (blended equally) for an AdaIN decoder, the kept painting's for a per-style AdaIN network
    (nst/train/styled_decoder.py)."""
    if isinstance(network, StyledDecoder):
        return network.decoder, network.style
    device = next(network.parameters()).device
    with torch.no_grad():
        return network, DecoderPass(network, encoder().to(device)).style_statistics(styles or [])


def decoded(decoder: torch.nn.Module, photo: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
    """An AdaIN decoder's image of `photo` with its features moved to the `style` statistics (`adain_target`);
    `alpha` blends the features (Huang & Belongie). The photo is padded to the encoder's 8 px grid by reflection
    (`DecoderPass`: what tiles and an exported file run too)."""
    device = next(decoder.parameters()).device
    step = DecoderPass(decoder, encoder().to(device))
    with torch.no_grad():
        photo = photo.to(device)
        return step(photo, step.statistics(photo), style.to(device), alpha).clamp(0, 1)


def decoded_tiles(decoder: torch.nn.Module, photo: Tensor, style: Tensor, alpha: float, side: int) -> Tensor:
    """`decoded` over tiles (nst/train/tiles.py): each tile's features normalised with the whole photo's statistics
    (`streamed_statistics`) and given the style's, so that no tile's colours drift from its neighbours'."""
    device = next(decoder.parameters()).device
    step = DecoderPass(decoder, encoder().to(device))
    photo, style = photo.to(device), style.to(device)
    with torch.no_grad():
        whole = streamed_statistics(step, photo, side)
    return tiled(lambda crop: step(crop, whole, style, alpha), decoder, photo, side, context=DECODER_CONTEXT,
                 stride=STRIDE).clamp(0, 1)  # fmt: skip


def decoded_regions(decoder: torch.nn.Module, photo: Tensor, styles: list[Tensor], alpha: float, regions: Regions
                    ) -> Tensor:  # fmt: skip
    """An AdaIN decoder's image of `photo` with each region in its own style of `styles` (region-wise AdaIN)."""
    device = next(decoder.parameters()).device
    with torch.no_grad():
        image = transfer(decoder, encoder().to(device), photo.to(device), [s.to(device) for s in styles],
                         [1 / len(styles)] * len(styles), alpha, regions)  # fmt: skip
    return image.clamp(0, 1)


def by_region(network: torch.nn.Module, photo: Tensor, regions: Regions) -> Tensor:
    """A multi-style network's image with each region in its own style: the conditional instance norm's scale and
    shift chosen per pixel (a mix map over its styles, soft at the borders); the photo where no region takes one."""
    device = next(network.parameters()).device
    guides = regions.soft(tuple(photo.shape[-2:])).to(device)
    mix = torch.zeros(1, int(network.styles), *photo.shape[-2:], device=device)
    for region in regions.styled:
        mix[0, regions.styles[region]] += guides[region]
    covered = mix.sum(1, keepdim=True)
    mix = torch.where(covered > 0, mix / covered.clamp_min(1e-8), torch.full_like(mix, 1 / mix.shape[1]))
    with torch.no_grad():
        image = network(photo.to(device), mix).clamp(0, 1)
    return covered * image + (1 - covered) * photo.to(device)
