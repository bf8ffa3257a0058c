"""Spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017): each region of the photo its own style.

A mask image drawn over the photo holds one flat colour per region. Each region takes
one style image (`region_styles`; by default region k takes style k) or none (it keeps
the content term alone). The style term is then taken per region: the paper's guidance
channels, each region's mask resized to every style layer, weigh the features before
the statistic is taken (`guided_gram`, `guided_mean_std` in nst/losses.py), and each
region is matched to its own style image, or to the region of the same colour in that
style image's own mask (`style_regions`: sky to sky).

Rules, each refused in one line where it does not hold:
- regions are the mask's distinct colours, in the order of their (R, G, B) values
  (black first; for a greyscale mask, darkest first), at most `MAX_REGIONS`;
- the mask may have another size than the photo (it is resized by area to each layer, and
  its colours are never blended into new ones); its aspect ratio must match;
- without `region_styles`, a mask with more regions than styles leaves the extra
  regions to the content term, and one with fewer regions than styles is refused
  (with `style_regions` and one style, every region takes that style);
- a style that no region takes is refused, as is a `region_styles` that styles nothing.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from nst.errors import NSTError
from nst.fastpath import Encode
from nst.images import open_rgb
from nst.statistics import RegionStatistic

MAX_REGIONS = 16  # a mask of more colours is anti-aliased or a JPEG, not a drawing of regions
ASPECT_TOLERANCE = 0.02  # a mask of another shape than its image was drawn over something else


@dataclass(frozen=True)
class Mask:
    """A mask image's regions: one-hot (R, H, W) at the mask's own size, and the colour of each."""

    regions: Tensor
    colours: tuple[tuple[int, int, int], ...]

    def index(self, colour: tuple[int, int, int]) -> int | None:
        return self.colours.index(colour) if colour in self.colours else None


def read_mask(path: str | Path, key: str = "regions", over: tuple[int, int] | None = None) -> Mask:
    """The regions of the mask image at `path` (the setting `key`), drawn over an image of `over` = (width, height)."""
    image = open_rgb(path)
    if over is not None:
        ratio, wanted = image.width / image.height, over[0] / over[1]
        if abs(ratio / wanted - 1) > ASPECT_TOLERANCE:
            raise NSTError(f"{key}={path} is {image.width}x{image.height} px, but the image it masks is "
                           f"{over[0]}x{over[1]}: draw the mask over that image (same aspect ratio)")  # fmt: skip
    pixels = torch.from_numpy(np.array(image)).reshape(-1, 3)
    colours, labels = torch.unique(pixels, dim=0, return_inverse=True)
    if len(colours) > MAX_REGIONS:
        raise NSTError(
            f"{key}={path} has {len(colours)} colours: a mask holds one flat colour per region (at most "
            f"{MAX_REGIONS}); save it as PNG without anti-aliasing (JPEG blurs edges into new colours)"
        )
    one_hot = F.one_hot(labels.reshape(image.height, image.width), len(colours)).permute(2, 0, 1).float()
    return Mask(one_hot, tuple((int(r), int(g), int(b)) for r, g, b in colours.tolist()))


def parse_region_styles(text: str) -> list[int | None]:
    """`region_styles` as a command line gives it, e.g. `[0,1]` or `[1,null]`."""
    items = [item.strip() for item in text.strip().strip("[]").split(",")]
    try:
        return [None if item.lower() in ("null", "none", "~") else int(item) for item in items]
    except ValueError:
        raise NSTError(f"region_styles={text} must be a list of style indices or null, e.g. [0,1]") from None


def hex_colour(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


@dataclass(frozen=True)
class Regions:
    """The photo's regions, the style image each takes (None: the content term alone) and the styles' own masks."""

    mask: Mask
    styles: tuple[int | None, ...]
    style_masks: tuple[Mask | None, ...]

    @property
    def styled(self) -> list[int]:
        """The regions that take a style, in order."""
        return [r for r, s in enumerate(self.styles) if s is not None]

    def guide(self, region: int, size: tuple[int, int]) -> Tensor:
        """The region's guidance channel at `size` = (H, W): its mask's share of each position (area resizing)."""
        return F.interpolate(self.mask.regions[None, region : region + 1], size=size, mode="area")[0, 0]

    def soft(self, size: tuple[int, int]) -> Tensor:
        """(R, H, W): every region's guidance at `size`, its borders softened over about 1% of the short side (a
        box blur): a network switching styles per pixel then blends them there instead of cutting."""
        guides = F.interpolate(self.mask.regions[None], size=size, mode="area")
        radius = max(1, round(min(size) / 100))
        return F.avg_pool2d(guides, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[0]

    def style_guide(self, region: int, size: tuple[int, int]) -> Tensor | None:
        """The guidance of the part of its style image `region` is matched to, at `size`; None: all of it."""
        style = self.styles[region]
        style_mask = self.style_masks[style] if style is not None else None
        if style_mask is None:
            return None
        index = style_mask.index(self.mask.colours[region])
        return F.interpolate(style_mask.regions[None, index : index + 1], size=size, mode="area")[0, 0]


def read_regions(
    mask_path: str | Path,
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    region_styles: Sequence[int | None] | None = None,
    style_regions: Sequence[str | Path | None] | None = None,
    every_style: bool = True,
) -> Regions:
    """The `regions`, `region_styles` and `style_regions` settings read and checked against the images' (width,
    height): `content_size` of the photo, `style_sizes` of each style image (module docstring: the rules).

    `every_style=False` for a network's built-in styles: a style no region takes is fine, and a mask of fewer
    regions than styles takes the first ones."""
    mask = read_mask(mask_path, "regions", content_size)
    n_styles = len(style_sizes)
    if style_regions is not None and len(style_regions) != n_styles:
        raise NSTError(f"style_regions has {len(style_regions)} entries for {n_styles} style images: give one mask "
                       "(or null) per style image")  # fmt: skip
    style_masks = tuple(
        None if path is None else read_mask(path, f"style_regions[{i}]", style_sizes[i])
        for i, path in enumerate(style_regions or [None] * n_styles)
    )
    styles = _region_styles(mask, n_styles, region_styles, any(m is not None for m in style_masks), every_style)
    for region, style in enumerate(styles):
        style_mask = style_masks[style] if style is not None else None
        if style_mask is not None and style_mask.index(mask.colours[region]) is None:
            raise NSTError(
                f"style_regions[{style}] has no region of colour {hex_colour(mask.colours[region])}, which region "
                f"{region} of the photo's mask has: paint the style's matching region that colour"
            )
    return Regions(mask, styles, style_masks)


def regions_of(cfg: DictConfig) -> Callable[..., Regions] | None:
    """`read_regions` with the `regions`, `region_styles` and `style_regions` settings, for the images' sizes."""
    if cfg.get("regions") is None:
        return None
    given = OmegaConf.to_container(cfg.style_regions) if cfg.style_regions is not None else None
    style_regions = None if given is None else [None if p is None else to_absolute_path(str(p)) for p in given]
    region_styles = OmegaConf.to_container(cfg.region_styles) if cfg.region_styles is not None else None
    return partial(read_regions, to_absolute_path(str(cfg.regions)), region_styles=region_styles,
                   style_regions=style_regions)  # fmt: skip


def _region_styles(
    mask: Mask, n_styles: int, given: Sequence[int | None] | None, style_masked: bool, every_style: bool
) -> tuple[int | None, ...]:
    """Each region's style index: `region_styles` checked, or the default rule."""
    n_regions = len(mask.colours)
    colours = ", ".join(f"{k}: {hex_colour(c)}" for k, c in enumerate(mask.colours))
    if given is None:
        if style_masked and n_styles == 1:
            return (0,) * n_regions
        if n_regions < n_styles and every_style:
            raise NSTError(f"regions has {n_regions} regions ({colours}) for {n_styles} styles: paint a region for "
                           "each style, or say which region takes which with region_styles=[…]")  # fmt: skip
        return tuple(r if r < n_styles else None for r in range(n_regions))
    styles = list(given)
    if len(styles) != n_regions:
        raise NSTError(f"region_styles has {len(styles)} entries for the mask's {n_regions} regions ({colours}): give "
                       "one style index (or null: content only) per region")  # fmt: skip
    for style in styles:
        if style is not None and (isinstance(style, bool) or not isinstance(style, int) or not 0 <= style < n_styles):
            raise NSTError(f"region_styles={styles}: each entry is a style index from 0 to {n_styles - 1}, or null")
    if all(s is None for s in styles):
        raise NSTError(f"region_styles={styles} gives no region a style: give at least one a style index")
    unused = sorted(set(range(n_styles)) - set(styles))
    if unused and every_style:
        raise NSTError(f"style {unused[0]} is in no region (region_styles={styles}): give it a region or drop it "
                       "from style")  # fmt: skip
    return tuple(styles)


@dataclass
class Guided:
    """A style statistic taken per region (Gatys et al. 2017), each region against its own style's.

    The style term at a layer is Σᵣ aᵣ Lᵣ over the regions that take a style, Lᵣ the
    statistic's loss of region r and aᵣ its share of the layer's positions. Differs from
    the paper, which sums the regions' terms unweighted: weighed by area, a mask of one
    region gives the unguided term, so the style weights keep their meaning.
    """

    statistic: RegionStatistic
    regions: Regions
    _guides: dict[tuple[int, int, int, str], tuple[Tensor, float]] = field(default_factory=dict, repr=False)

    @property
    def min_size(self) -> int:
        return self.statistic.min_size

    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]:
        """Per layer, (R', …): the target of each region that takes a style, from its style (or its part of it)."""
        features = {s: encode(styles[s], layers) for s in sorted({self.regions.styles[r] for r in self.regions.styled})}
        targets: dict[str, list[Tensor]] = {name: [] for name in layers}
        with torch.no_grad():
            for region in self.regions.styled:
                for name, style_features in features[self.regions.styles[region]].items():
                    guide = self.regions.style_guide(region, tuple(style_features.shape[-2:]))
                    guide = torch.ones(style_features.shape[-2:]) if guide is None else guide
                    targets[name].append(self.statistic.region_target(style_features, guide.to(style_features)))
        return {name: torch.cat(each) for name, each in targets.items()}

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        total = torch.zeros(features.shape[0], device=features.device)
        for i, region in enumerate(self.regions.styled):
            guide, share = self._guide(region, features)
            if share > 0:  # a region too small for this layer's grid has nothing to match here
                total = total + share * self.statistic.region_loss(features, guide, target[i : i + 1])
        return total

    def _guide(self, region: int, features: Tensor) -> tuple[Tensor, float]:
        """The region's guidance at this layer and its share of the layer's positions, worked out once."""
        h, w = features.shape[-2:]
        key = (region, h, w, str(features.device))
        if key not in self._guides:
            guide = self.regions.guide(region, (h, w))
            self._guides[key] = (guide.to(features.device, features.dtype), float(guide.mean()))
        return self._guides[key]
