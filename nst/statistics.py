"""What a run matches of the style image at each style layer: the `style_loss` config group.

Each statistic turns the style images into one target per layer, once per fit
(`targets`), and measures each generated image against it (`loss`, one value per
image). The maths are plain functions in nst/losses.py:

=========  ===========================================  =======================
statistic  target per layer                             paper
=========  ===========================================  =======================
gram       blended Gram matrix, under `loss.convention`  Gatys et al. 2015/2016
mean_std   blended per-channel mean and std              Li et al. 2017
mrf        every k x k feature patch of every style      Li & Wand 2016
swd        blended quantiles of random 1-D projections  Heitz et al. 2021
=========  ===========================================  =======================

Gram and mean/std can also be taken over one region of an image (`region_target`,
`region_loss`): the guided statistics of spatial control (nst/regions.py).
"""

import math
from collections.abc import Collection, Sequence
from typing import Protocol

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.fastpath import Encode
from nst.losses import (
    CONVENTIONS,
    Convention,
    channel_mean_std,
    guided_gram,
    guided_mean_std,
    guided_mean_std_loss,
    guided_style_loss,
    mean_std_loss,
    mrf_loss,
    patches,
    projected_quantiles,
    sliced_wasserstein_loss,
    style_gram,
    style_loss,
)
from nst.targets import style_targets


class StyleStatistic(Protocol):
    """One style statistic: its targets from the style images, and each image's loss against them."""

    min_size: int  # the fewest feature positions a side it needs at each style layer

    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]: ...

    def loss(self, features: Tensor, target: Tensor) -> Tensor: ...


class RegionStatistic(StyleStatistic, Protocol):
    """A statistic that can also be taken over one region (nst/regions.py): Gram and mean/std, not MRF's patches."""

    def region_target(self, features: Tensor, guide: Tensor) -> Tensor: ...

    def region_loss(self, features: Tensor, guide: Tensor, target: Tensor) -> Tensor: ...


class Gram:
    """Gatys et al.: the Gram matrices of the style layers, normalised as `convention` says (nst/losses.py)."""

    min_size = 1

    def __init__(self, convention: Convention = "jcjohnson"):
        if convention not in CONVENTIONS:
            raise NSTError(f"style_loss.convention={convention!r}: choose one of {', '.join(CONVENTIONS)}")
        self.convention = convention

    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]:
        return style_targets(encode, styles, blend, layers, lambda f: style_gram(f, self.convention))

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        return style_loss(features, target, self.convention)

    def region_target(self, features: Tensor, guide: Tensor) -> Tensor:
        return guided_gram(features, guide, self.convention)

    def region_loss(self, features: Tensor, guide: Tensor, target: Tensor) -> Tensor:
        return guided_style_loss(features, guide, target, self.convention)


class MeanStd:
    """Li et al. 2017 / Huang & Belongie 2017: each channel's mean and standard deviation, blended linearly."""

    min_size = 1

    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]:
        return style_targets(encode, styles, blend, layers, channel_mean_std)

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        return mean_std_loss(features, target)

    def region_target(self, features: Tensor, guide: Tensor) -> Tensor:
        return guided_mean_std(features, guide)

    def region_loss(self, features: Tensor, guide: Tensor, target: Tensor) -> Tensor:
        return guided_mean_std_loss(features, guide, target)


class SlicedWasserstein:
    """Heitz et al. 2021: the whole distribution of each style layer's features, compared along random directions.

    At a layer of C channels, C unit directions θₖ are drawn from `seed` (as many as
    the paper's); the target is the style's quantile function of the projections onto
    each, at `levels` levels (several styles blended as their Wasserstein barycentre,
    Σ wⱼ Qⱼ). The directions are drawn once, not at every step as in the paper, so
    that a run and a resumed run repeat exactly; `seed` defaults to another than the
    judge's, whose style SWD measures the same kind of distance along its own directions.
    """

    min_size = 1

    def __init__(self, levels: int = 1024, seed: int = 1):
        for key, value in (("levels", levels), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "levels" else 0):
                raise NSTError(f"style_loss.{key}={value!r} must be an integer >= {1 if key == 'levels' else 0}")
        self.levels, self.seed = levels, seed
        self._directions: dict[tuple[int, torch.device], Tensor] = {}

    def directions(self, channels: int, device: torch.device) -> Tensor:
        """(C, C): unit directions as columns, the same for every run with this seed."""
        key = (channels, device)
        if key not in self._directions:
            drawn = torch.randn(channels, channels, generator=torch.Generator().manual_seed(self.seed))
            self._directions[key] = (drawn / drawn.norm(dim=0, keepdim=True)).to(device)
        return self._directions[key]

    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]:
        return style_targets(encode, styles, blend, layers, self.target)

    def target(self, features: Tensor) -> Tensor:
        """(B, C, levels): one image's quantile functions along the directions of its layer."""
        return projected_quantiles(features, self.directions(features.shape[1], features.device), self.levels)

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        return sliced_wasserstein_loss(features, target, self.directions(features.shape[1], features.device))


class MRF:
    """Li & Wand 2016: each generated patch pulled towards its nearest style patch.

    The style patches come from every style image and, as in the paper, from copies
    of each rotated by `rotations` (degrees, cropped to the largest upright rectangle
    inside) and rescaled by `scales`. Patches have no weights to blend: a run with
    several style images matches against all of their patches alike.
    """

    def __init__(
        self, patch_size: int = 3, stride: int = 1, rotations: Sequence[float] = (), scales: Sequence[float] = ()
    ):
        for key, value in (("patch_size", patch_size), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NSTError(f"style_loss.{key}={value!r} must be an integer >= 1")
        if any(not 0 < float(s) <= 4 for s in scales):
            raise NSTError(f"style_loss.scales={list(scales)} must all be > 0 and at most 4, e.g. [0.95,1.05]")
        if any(not abs(float(a)) < 45 for a in rotations):
            raise NSTError(f"style_loss.rotations={list(rotations)}: give angles between -45 and 45 degrees")
        self.patch_size, self.stride, self.min_size = patch_size, stride, patch_size
        self.rotations, self.scales = [float(a) for a in rotations], [float(s) for s in scales]

    def variants(self, style: Tensor) -> list[Tensor]:
        """The style image, and its rotated and rescaled copies."""
        from torchvision.transforms import functional as F  # here: importing torchvision costs seconds

        copies = [style] + [_rotated(style, angle) for angle in self.rotations]
        for scale in self.scales:
            h, w = style.shape[-2:]
            size = [max(1, round(h * scale)), max(1, round(w * scale))]
            copies.append(F.resize(style, size, F.InterpolationMode.BILINEAR, antialias=True))
        return copies

    @torch.no_grad()
    def targets(
        self, encode: Encode, styles: Sequence[Tensor], blend: Sequence[float], layers: Collection[str]
    ) -> dict[str, Tensor]:
        found: dict[str, list[Tensor]] = {name: [] for name in layers}
        for style in styles:
            for copy in self.variants(style):
                for name, features in encode(copy, layers).items():
                    if min(features.shape[-2:]) < self.patch_size:
                        raise NSTError(
                            f"the style image is too small for {self.patch_size}x{self.patch_size} patches at {name}: "
                            "raise image.style_scale or image.size, or use shallower style layers"
                        )
                    found[name].append(patches(features, self.patch_size, self.stride)[0])
        return {name: torch.cat(parts) for name, parts in found.items()}

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        return mrf_loss(features, target, self.patch_size, self.stride)


def _rotated(image: Tensor, angle: float) -> Tensor:
    """`image` rotated by `angle` degrees, cropped to the centred upright rectangle that holds no corner fill."""
    h, w = image.shape[-2:]
    c, s = math.cos(math.radians(abs(angle))), math.sin(math.radians(abs(angle)))
    new_h, new_w = int(h * c - w * s), int(w * c - h * s)
    if min(new_h, new_w) < 1:
        raise NSTError(
            f"style_loss.rotations: a {w}x{h} px style image rotated by {angle} degrees leaves nothing uncropped: "
            "use smaller angles"
        )
    from torchvision.transforms import functional as F  # here: importing torchvision costs seconds

    turned = F.rotate(image, angle, F.InterpolationMode.BILINEAR)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return turned[..., top : top + new_h, left : left + new_w]
