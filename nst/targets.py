"""What the generated image is pulled towards: content features and blended style Grams, computed once."""

from collections.abc import Callable, Collection, Sequence

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.fastpath import Encode


def blend_weights(n_styles: int, blend: Sequence[float] | None) -> list[float]:
    """Normalised blend weights for `n_styles` style images (equal when `blend` is None)."""
    if blend is None:
        return [1.0 / n_styles] * n_styles
    blend = [float(w) for w in blend]
    if len(blend) != n_styles:
        raise NSTError(
            f"style_blend has {len(blend)} weights for {n_styles} style images: give one weight per style image"
        )
    if any(w < 0 for w in blend) or sum(blend) <= 0:
        raise NSTError(f"style_blend={blend}: weights must be >= 0 and not all zero")
    return [w / sum(blend) for w in blend]


@torch.no_grad()
def content_targets(encode: Encode, content: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
    """The content image's activations at `layers`."""
    return encode(content, layers)


@torch.no_grad()
def style_targets(
    encode: Encode,
    styles: Sequence[Tensor],
    weights: Sequence[float],
    layers: Collection[str],
    gram_fn: Callable[[Tensor], Tensor],
) -> dict[str, Tensor]:
    """Per layer, Σᵢ wᵢ G(sᵢ): several style images blended in Gram space (each at its own size)."""
    targets: dict[str, Tensor] = {}
    for style, weight in zip(styles, weights, strict=True):
        for name, features in encode(style, layers).items():
            term = weight * gram_fn(features)
            targets[name] = targets[name] + term if name in targets else term
    return targets
