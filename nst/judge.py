"""One fixed yardstick for every run: quality figures under the caffe VGG-19 with max pooling.

Whatever backbone, layers and loss convention a run optimised, its final image is
measured here, so runs of different configs can be compared in one dashboard:

- content error: |F(x) − F(c)|² / |F(c)|² at relu4_2;
- style error: the mean over relu1_1 … relu5_1 of |G(x) − G(s)|² / |G(s)|², with
  Grams normalised by C H W (several style images blended as in the run);
- style SWD: the mean over the same layers of the relative sliced Wasserstein
  distance between the feature distributions of result and style (`sliced_wasserstein`).

With regions (spatial control, nst/regions.py), each region that takes a style is
also judged against its own style (`region_quality`).

The style error is a Gram distance, the very thing a Gram run optimises; the
sliced Wasserstein distance compares whole distributions, which the Gram, mean/std
and MRF losses do not optimise, so it is the fairer figure between them. A run
with `style_loss=swd` optimises the same kind of distance (along directions of
its own seed): for it the style error is the independent figure.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from nst.backbones import VGG, backbone
from nst.losses import gram, quantiles, relative_error
from nst.regions import Regions

CONTENT_LAYER = "relu4_2"
SWD_SEED = 0  # the projections are drawn from this seed, the same for every run: the figure repeats exactly
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def judge_network() -> VGG:
    """The judge's network: the process's caffe VGG-19, shared with runs whose backbone it is (`backbone`)."""
    return backbone("vgg19", weights="caffe", pooling="max", padding="zeros").trim((CONTENT_LAYER, *STYLE_LAYERS))


def sliced_wasserstein(features: Tensor, styles: Sequence[Tensor], blend: Sequence[float], seed: int) -> Tensor:
    """Relative SW₂² between the positions of `features` (1, C, H, W) and the blended style features, as vectors in Rᶜ.

    With C unit directions θₖ drawn from `seed` (Heitz et al. 2021 project onto as many
    as there are channels), and Qₖ the style's quantile function of the projections
    onto θₖ at the N = H W levels of the result (`quantiles`; several styles blended
    as their Wasserstein barycentre, Σ wⱼ Qₖʲ):

        SW = Σₖ Σₙ (sort(F θₖ)ₙ − Qₖ,ₙ)² / Σₖ Σₙ Qₖ,ₙ²

    Differs from Heitz et al.: divided by the style's second moment, so the figure is
    scale-free like the Gram error and layers of any magnitude count alike.
    """
    return _sliced_wasserstein(features.flatten(2)[0], [style.flatten(2)[0] for style in styles], blend, seed)


def _sliced_wasserstein(positions: Tensor, styles: Sequence[Tensor], blend: Sequence[float], seed: int) -> Tensor:
    """`sliced_wasserstein` of feature vectors as columns, (C, N) and each style's (C, Nⱼ)."""
    channels = positions.shape[0]
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(channels, channels, generator=generator).to(positions.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    result = (positions.T @ directions).T.sort(1).values  # (K, N)
    n = result.shape[1]
    target = sum(
        weight * quantiles((style.T @ directions).T.sort(1).values, n)
        for style, weight in zip(styles, blend, strict=True)
    )
    return ((result - target) ** 2).sum() / (target**2).sum()


@torch.no_grad()
def quality(image: Tensor, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float]) -> dict[str, float]:
    """The content error, style error and style SWD of the first image of `image` (lower is better)."""
    net = judge_network().to(image.device)
    layers = (CONTENT_LAYER, *STYLE_LAYERS)
    features = net(image[:1].float().clamp(0, 1), layers)
    content_target = net(content.to(image.device), (CONTENT_LAYER,))[CONTENT_LAYER]
    style_features = [net(s.to(image.device), STYLE_LAYERS) for s in styles]
    grams = {name: sum(w * gram(f[name]) for f, w in zip(style_features, blend, strict=True)) for name in STYLE_LAYERS}
    style_errors = [relative_error(gram(features[name]), grams[name]) for name in STYLE_LAYERS]
    swd = [
        sliced_wasserstein(features[name], [f[name] for f in style_features], blend, SWD_SEED + index)
        for index, name in enumerate(STYLE_LAYERS)
    ]
    return {
        "content_error": relative_error(features[CONTENT_LAYER], content_target).item(),
        "style_error": torch.stack(style_errors).mean().item(),
        "style_swd": torch.stack(swd).mean().item(),
    }


@torch.no_grad()
def region_quality(image: Tensor, styles: Sequence[Tensor], regions: Regions) -> dict[str, float]:
    """Each styled region's style error and SWD against its own style (its part of it, with `style_regions`).

    A region's features at a layer are those of the positions its guidance covers at
    least half; a layer where it covers none is left out of its mean. Keys
    `region_K/style_error` and `region_K/style_swd`, K the region's index.
    """
    net = judge_network().to(image.device)
    features = net(image[:1].float().clamp(0, 1), STYLE_LAYERS)
    style_features = [net(s.to(image.device), STYLE_LAYERS) for s in styles]
    figures: dict[str, float] = {}
    for region in regions.styled:
        style = style_features[regions.styles[region]]
        errors, swd = [], []
        for index, name in enumerate(STYLE_LAYERS):
            inside = _covered(features[name], regions.guide(region, tuple(features[name].shape[-2:])))
            guide = regions.style_guide(region, tuple(style[name].shape[-2:]))
            target = style[name].flatten(2)[0] if guide is None else _covered(style[name], guide)
            if inside.shape[1] == 0 or target.shape[1] == 0:
                continue
            grams = [x @ x.T / (x.shape[0] * x.shape[1]) for x in (inside, target)]
            errors.append(((grams[0] - grams[1]) ** 2).sum() / (grams[1] ** 2).sum())
            swd.append(_sliced_wasserstein(inside, [target], [1.0], SWD_SEED + index))
        if errors:
            figures[f"region_{region}/style_error"] = torch.stack(errors).mean().item()
            figures[f"region_{region}/style_swd"] = torch.stack(swd).mean().item()
    return figures


def _covered(features: Tensor, guide: Tensor) -> Tensor:
    """(C, N): the feature vectors of the first image at the positions `guide` covers at least half."""
    return features[0].flatten(1)[:, guide.flatten().to(features.device) >= 0.5]
