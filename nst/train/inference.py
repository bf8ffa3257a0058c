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
from nst.adain import ENCODER_LAYER, STRIDE, encoder, transfer
from nst.errors import NSTError
from nst.images import load_image
from nst.losses import channel_mean_std
from nst.memory import free_memory
from nst.regions import Regions
from nst.train.kinds import kind_of
from nst.train.model_file import stylize
from nst.train.tiles import bytes_per_pixel, tile_side, tiled

DECODER_CONTEXT = 128  # px of context around an AdaIN decoder's tile: its encoder and decoder look ~100 px away
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
    decoder's with `styles`, a network of fixed styles' whole or in tiles; with `regions`, whole, each region in
    its own style (`by_region`)."""
    seen = photo if control.scale == 1 else F.interpolate(photo, scale_factor=1 / control.scale, mode="bilinear",
                                                          antialias=True)  # fmt: skip
    if min(seen.shape[-2:]) < MIN_SIDE:
        raise NSTError(f"content={name} gives {seen.shape[-1]}x{seen.shape[-2]} px, smaller than the "
                       f"{MIN_SIDE} px a network's downsampling needs: give a larger photo or size=")  # fmt: skip
    started = time.perf_counter()
    if styles is not None and regions is None:
        run = partial(decoded, network, styles=styles, alpha=control.strength)
        side = tile_of(tile, torch.nn.ModuleList([network, encoder()]), run, seen, device)  # both networks' memory
        image = decoded_tiles(network, seen, styles, control.strength, side) if side else run(seen)
    elif styles is not None:
        image = decoded(network, seen, styles, control.strength, regions)
    elif regions is not None:
        image = by_region(network, seen, regions)
    else:
        run = partial(stylize, network, mix=mix)
        side = tile_of(tile, network, run, seen, device)
        image = tiled(run, network, seen, side) if side else run(seen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return controlled(image.cpu(), photo, control, decoded=styles is not None), seconds


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


def decoded(decoder: torch.nn.Module, photo: Tensor, styles: list[Tensor], alpha: float = 1.0,
            regions: Regions | None = None) -> Tensor:  # fmt: skip
    """An AdaIN decoder's image of `photo` in the style of `styles` (blended equally, or one per region: region-wise
    AdaIN); `alpha` blends the features (Huang & Belongie). The photo is padded to the encoder's 8 px grid by
    reflection (`DecoderPass`: what tiles and an exported file run too)."""
    device = next(decoder.parameters()).device
    if regions is not None:
        with torch.no_grad():
            image = transfer(decoder, encoder().to(device), photo.to(device), [s.to(device) for s in styles],
                             [1 / len(styles)] * len(styles), alpha, regions)  # fmt: skip
        return image.clamp(0, 1)
    step = DecoderPass(decoder, encoder().to(device))
    with torch.no_grad():
        photo = photo.to(device)
        return step(photo, step.statistics(photo), step.style_statistics(styles), alpha).clamp(0, 1)


def decoded_tiles(decoder: torch.nn.Module, photo: Tensor, styles: list[Tensor], alpha: float, side: int) -> Tensor:
    """`decoded` over tiles (nst/train/tiles.py): each tile's features normalised with the whole photo's statistics
    (`streamed_statistics`) and given the styles', so that no tile's colours drift from its neighbours'."""
    device = next(decoder.parameters()).device
    step = DecoderPass(decoder, encoder().to(device))
    photo = photo.to(device)
    with torch.no_grad():
        whole, style = streamed_statistics(step, photo, side), step.style_statistics(styles)
    return tiled(lambda crop: step(crop, whole, style, alpha), decoder, photo, side, context=DECODER_CONTEXT,
                 stride=STRIDE).clamp(0, 1)  # fmt: skip


def streamed_statistics(step: "DecoderPass", photo: Tensor, side: int) -> Tensor:
    """The whole photo's relu4_1 mean and std, (1, 2, C), as `DecoderPass.statistics` gives them, from blocks of
    about `side` px (each with its context) that partition the feature grid: one encoder pass, bounded memory."""
    block = max(STRIDE, side // STRIDE * STRIDE)
    height, width = photo.shape[-2:]
    sums, squares, count = [], [], 0
    for top in range(0, height, block):
        for left in range(0, width, block):
            t0, l0 = max(0, top - DECODER_CONTEXT), max(0, left - DECODER_CONTEXT)
            t1, l1 = min(height, top + block + DECODER_CONTEXT), min(width, left + block + DECODER_CONTEXT)
            features = step.features(photo[..., t0:t1, l0:l1])
            h, w = min(block, height - top), min(block, width - left)
            rows, columns = (top - t0) // STRIDE, (left - l0) // STRIDE
            inside = features[..., rows : rows + -(-h // STRIDE), columns : columns + -(-w // STRIDE)].double()
            sums.append(inside.sum((2, 3)))
            squares.append((inside**2).sum((2, 3)))
            count += inside.shape[2] * inside.shape[3]
    mean = torch.stack(sums).sum(0) / count
    variance = (torch.stack(squares).sum(0) / count - mean**2).clamp_min(0)
    return torch.stack([mean, (variance + 1e-5).sqrt()], 1).float()


class DecoderPass(torch.nn.Module):
    """One pass of an AdaIN decoder with its encoder, given the content's and the style's relu4_1 statistics: the
    image padded by reflection to the encoder's 8 px grid, t = σ_s (f − μ_c) / σ_c + μ_s, α t + (1 − α) f decoded,
    the padding cut off. Statistics are `channel_mean_std`'s (B, 2, C)."""

    def __init__(self, decoder: torch.nn.Module, encode: torch.nn.Module):
        super().__init__()
        self.decoder, self.encode = decoder, encode

    def features(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        padded = F.pad(image, (0, (STRIDE - w % STRIDE) % STRIDE, 0, (STRIDE - h % STRIDE) % STRIDE), mode="reflect")
        return self.encode(padded, [ENCODER_LAYER])[ENCODER_LAYER]

    def statistics(self, image: Tensor) -> Tensor:
        return channel_mean_std(self.features(image))

    def style_statistics(self, styles: list[Tensor]) -> Tensor:
        """The styles' statistics, blended equally (AdaIN's interpolation of several styles)."""
        device = next(self.decoder.parameters()).device
        stats = [self.statistics(s.to(device)) for s in styles]
        return sum(stats) / len(stats)

    def forward(self, image: Tensor, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        h, w = image.shape[-2:]
        features = self.features(image)
        matched = style[:, 1, :, None, None] * (features - content[:, 0, :, None, None]) / content[:, 1, :, None, None]
        target = alpha * (matched + style[:, 0, :, None, None]) + (1 - alpha) * features
        return self.decoder(target)[..., :h, :w]


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
