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
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Convention = Literal["gatys", "johnson", "jcjohnson", "keras"]
CONVENTIONS: tuple[str, ...] = ("gatys", "johnson", "jcjohnson", "keras")
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
    sq = _squared_distance(style_gram(features, convention), target_gram)
    if convention in ("gatys", "keras"):
        return sq / (4 * c**2 * (h * w) ** 2)
    if convention == "johnson":
        return sq
    return sq / c**2


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
