r"""The losses of neural style transfer as plain functions of documented maths.

Every function takes a batch and returns one value per image (shape ``(B,)``) so a
batch of independent optimisations can share one forward pass. Feature maps are
``F`` of shape ``(B, C, H, W)``; ``N = C`` filters of ``M = H W`` positions.

Published weights only mean something under their own normalisation, so the
content and style terms take a ``convention``:

=============  ===============================  ==============================================
convention     content                          style, per layer
=============  ===============================  ==============================================
gatys          ½ Σ (F − P)²                     1/(4 N² M²) Σ (G − A)², G = F Fᵀ
johnson        1/(C H W) Σ (F − P)²             Σ (G − A)², G = F Fᵀ / (C H W)
jcjohnson      mean (F − P)²                    mean (G − A)², G = F Fᵀ / (C H W)
keras          1/(4 C H W) Σ (F − P)²           1/(4 N² M²) Σ (G − A)², G = F Fᵀ
=============  ===============================  ==============================================

(Johnson et al. 2016 and jcjohnson/neural-style agree on the content term; the
Keras/Ng-course style term is Gatys' formula.)

The Gram is one style statistic of three (nst/statistics.py chooses): the
per-channel mean and standard deviation (`mean_std_loss`, Li et al. 2017) and
nearest-neighbour feature patches (`mrf_loss`, Li & Wand 2016) and the sliced Wasserstein
distance of the feature distributions (`sliced_wasserstein_loss`, Heitz et al. 2021) bring
their own papers' normalisation, whatever the convention.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.settings import CONVENTIONS  # noqa: F401 - the normalisations below, described once for the checks

Convention = Literal["gatys", "johnson", "jcjohnson", "keras"]
_NORMALISED_GRAM = {"gatys": False, "johnson": True, "jcjohnson": True, "keras": False}


def gram(features: Tensor, normalise: bool = True) -> Tensor:
    """G = F Fᵀ over spatial positions, shape (B, C, C); divided by C H W when `normalise`."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    g = torch.bmm(flat, flat.transpose(1, 2))
    return g / (c * h * w) if normalise else g


def style_gram(features: Tensor, convention: Convention) -> Tensor:
    """The Gram matrix in the form `style_loss` compares under `convention`."""
    return gram(features, normalise=_NORMALISED_GRAM[convention])


def _sum(x: Tensor) -> Tensor:
    return x.flatten(1).sum(1)


def _squared_distance(x: Tensor, target: Tensor) -> Tensor:
    """Σ (x − t)² per image, t broadcast over the batch: one fused kernel forward and one back (unreduced MSE)."""
    return _sum(F.mse_loss(x, target.expand_as(x), reduction="none"))


def content_loss(features: Tensor, target: Tensor, convention: Convention) -> Tensor:
    """Feature reconstruction loss between `features` and the content's `target` features."""
    _, c, h, w = features.shape
    sq = _squared_distance(features, target)
    if convention == "gatys":
        return 0.5 * sq
    if convention in ("johnson", "jcjohnson"):
        return sq / (c * h * w)
    return sq / (4 * c * h * w)


def style_loss(features: Tensor, target_gram: Tensor, convention: Convention) -> Tensor:
    """Gram-matrix loss between `features` and the style's target Gram (from `style_gram`)."""
    _, c, h, w = features.shape
    return _scaled_gram_distance(_squared_distance(style_gram(features, convention), target_gram), c, h * w, convention)


def _scaled_gram_distance(sq: Tensor, c: int, m: int, convention: Convention) -> Tensor:
    """Σ (G − A)² of C channels over M positions, scaled as `convention` scales the style term."""
    if convention in ("gatys", "keras"):
        return sq / (4 * c**2 * m**2)
    if convention == "johnson":
        return sq
    return sq / c**2


def guided_gram(features: Tensor, guide: Tensor, convention: Convention) -> Tensor:
    """Gatys et al. 2017's guided Gram of one region, (B, C, C), in the units `style_gram` gives a whole image.

    With the guidance channel T (H, W) of the region at this layer (its mask resized to
    the layer, values in [0, 1]): G_T = (F∘T)(F∘T)ᵀ / Σ T², the mean outer product of the
    region's features, then divided by C (normalised conventions) or multiplied by H W
    (the raw Gram of gatys and keras). With T ≡ 1 it is exactly `style_gram`.
    Differs from the paper, whose G_T = (F∘T)(F∘T)ᵀ is not divided by the region's area:
    divided, a small region's Gram is comparable with a whole style image's.
    """
    b, c, h, w = features.shape
    weighted = (features * guide).reshape(b, c, h * w)
    g = torch.bmm(weighted, weighted.transpose(1, 2)) / (guide**2).sum().clamp_min(1e-12)
    return g / c if _NORMALISED_GRAM[convention] else g * (h * w)


def guided_style_loss(features: Tensor, guide: Tensor, target_gram: Tensor, convention: Convention) -> Tensor:
    """`style_loss` of one region: its `guided_gram` against its style's target, scaled as the whole image's is."""
    _, c, h, w = features.shape
    return _scaled_gram_distance(_squared_distance(guided_gram(features, guide, convention), target_gram), c, h * w,
                                 convention)  # fmt: skip


def channel_mean_std(features: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, 2, C): per channel μ = 1/M Σₘ Fₘ and σ = √(1/M Σₘ (Fₘ − μ)² + ε) over the M = H W positions.

    ε (1e-5, as in Huang & Belongie's code) keeps σ's gradient finite on channels ReLU switched off.
    """
    flat = features.flatten(2)
    return torch.stack([flat.mean(2), (flat.var(2, unbiased=False) + eps).sqrt()], 1)


def mean_std_loss(features: Tensor, target: Tensor) -> Tensor:
    """Li et al. 2017 ("Demystifying Neural Style Transfer"), per layer: 1/C Σᵢ (μᵢ − μᵢˢ)² + (σᵢ − σᵢˢ)².

    `target` is the style's `channel_mean_std`, (1, 2, C). Differs from Huang &
    Belongie 2017, whose AdaIN training loss sums unsquared norms ‖μ − μˢ‖₂ + ‖σ − σˢ‖₂.
    """
    return _squared_distance(channel_mean_std(features), target) / features.shape[1]


def guided_mean_std(features: Tensor, guide: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, 2, C): `channel_mean_std` of one region, each position weighted by its guidance T (H, W):
    μ = Σ T F / Σ T and σ = √(Σ T (F − μ)² / Σ T + ε). With T ≡ 1 it is `channel_mean_std`."""
    weights = guide.flatten() / guide.sum().clamp_min(1e-12)
    flat = features.flatten(2)
    mean = flat @ weights
    var = ((flat - mean[..., None]) ** 2) @ weights
    return torch.stack([mean, (var + eps).sqrt()], 1)


def guided_mean_std_loss(features: Tensor, guide: Tensor, target: Tensor) -> Tensor:
    """`mean_std_loss` of one region: its `guided_mean_std` against its style's target."""
    return _squared_distance(guided_mean_std(features, guide), target) / features.shape[1]


def patches(features: Tensor, size: int, stride: int) -> Tensor:
    """(B, L, C k²): each image's k x k feature patches, every `stride` positions, flattened."""
    return F.unfold(features, size, stride=stride).transpose(1, 2)


@torch.no_grad()
def nearest_patches(generated: Tensor, style: Tensor, chunk: int = 2048) -> Tensor:
    """(B, L): for each generated patch, the index of the style patch (rows of `style`, (P, D)) of highest
    normalised cross-correlation ⟨p, q⟩ / (|p| |q|).

    |p| does not change which q wins, so only the style patches are normalised; they
    are compared `chunk` at a time, so memory grows with L · chunk, not L · P.
    """
    unit = style / style.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = torch.full(generated.shape[:2], -torch.inf, device=generated.device)
    index = torch.zeros(generated.shape[:2], dtype=torch.long, device=generated.device)
    for start in range(0, len(unit), chunk):
        value, found = (generated @ unit[start : start + chunk].T).max(2)
        better = value > best
        best, index = torch.where(better, value, best), torch.where(better, found + start, index)
    return index


def mrf_loss(features: Tensor, style_patches: Tensor, size: int = 3, stride: int = 1) -> Tensor:
    """Li & Wand 2016, the MRF energy E_s = Σᵢ ‖Ψᵢ(F) − Ψ_NN(i)(S)‖², summed over the generated patches Ψᵢ(F).

    NN(i) = argmaxⱼ ⟨Ψᵢ(F), Ψⱼ(S)⟩ / (|Ψᵢ(F)| |Ψⱼ(S)|) (`nearest_patches`); the match is
    held fixed for the gradient, as in the paper. `style_patches` are the style's
    (`patches`, (P, C k²)), pooled over style images and their rotated or scaled
    copies. Differs from Li & Wand's code, which divides each feature's gradient by
    the number of patches it lies in and weighs the term 1e-4 (pystiche's notes).
    """
    generated = patches(features, size, stride)
    nearest = style_patches[nearest_patches(generated, style_patches)]
    return _sum((generated - nearest) ** 2)


def quantiles(sorted_values: Tensor, n: int) -> Tensor:
    """The empirical quantile function of each row of `sorted_values` (…, M) at the n levels (i + ½)/n, linearly
    interpolated: rows of different lengths become comparable."""
    m = sorted_values.shape[-1]
    position = ((torch.arange(n, device=sorted_values.device) + 0.5) * m / n - 0.5).clamp(0, m - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=m - 1)
    frac = position - low
    return sorted_values[..., low] * (1 - frac) + sorted_values[..., high] * frac


def projected_quantiles(features: Tensor, directions: Tensor, levels: int) -> Tensor:
    """(B, K, levels): the quantile function of the features' positions projected onto each column θₖ of
    `directions` (C, K), as the sliced Wasserstein loss's target."""
    return quantiles((features.flatten(2).transpose(1, 2) @ directions).transpose(1, 2).sort(2).values, levels)


def sliced_wasserstein_loss(features: Tensor, target: Tensor, directions: Tensor) -> Tensor:
    """Heitz et al. 2021, per layer: Σₖ Σₙ (sort(F θₖ)ₙ − Qₖ(n))² / Σₖ Σₙ Qₖ(n)² over the M = H W positions.

    `target` holds the style's quantile functions Qₖ (`projected_quantiles`, (1 or B, K, L)),
    read at the M levels of the image. Differs from the paper: divided by the style's
    second moment, as the judge's figure is (layers of any magnitude count alike), and
    the directions θₖ are drawn once, not at every step, so that a run repeats exactly.
    """
    projected = (features.flatten(2).transpose(1, 2) @ directions).transpose(1, 2).sort(2).values
    wanted = quantiles(target, projected.shape[-1])
    return _sum((projected - wanted) ** 2) / _sum(wanted**2)


def total_variation(image: Tensor, beta: float = 2.0) -> Tensor:
    """Mean over pixels of (Δx² + Δy²)^(β/2) on the RGB image in [0, 1] (Mahendran & Vedaldi 2015).

    β = 2 is the usual squared form; Keras tutorials use β = 1.25. A mean, not a
    sum, so the weight does not depend on the image size.
    """
    dx = image[..., :-1, 1:] - image[..., :-1, :-1]
    dy = image[..., 1:, :-1] - image[..., :-1, :-1]
    variation = dx**2 + dy**2
    if beta != 2:  # (·)^(β/2) has an infinite slope at 0 for β < 2
        variation = variation.clamp_min(1e-12) ** (beta / 2)
    return variation.flatten(1).mean(1)


def relative_error(x: Tensor, target: Tensor) -> Tensor:
    """|x − t|² / |t|² per image: a scale-free distance, used by the judge."""
    return _squared_distance(x, target) / _sum(target**2)
