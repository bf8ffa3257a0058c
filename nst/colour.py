"""Colour preservation, after Gatys, Bethge, Hertzmann & Shechtman (2017), "Controlling perceptual
factors in neural style transfer", section 5.

- `luminance`: transfer style in the luminance channel only. Content and style are
  converted to YIQ; the style's luminance is shifted and scaled to the content's
  mean and standard deviation (their histogram matching, to first and second
  order); the optimisation sees grey images; the result's luminance is then
  recombined with the content's I and Q channels.
- `histogram`: recolour the style image before the transfer, so that its colour
  mean and covariance match the content's (the linear transform
  x' = Σc^½ Σs^-½ (x − μs) + μc, with symmetric matrix square roots).
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from nst import settings
from nst.errors import NSTError

MODES = tuple(mode for mode in settings.choices("colour") if mode)  # described once, in nst/settings.py
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rgb_to_yiq(image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def _matrix_power(cov: Tensor, power: float) -> Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.T


def match_colour(style: Tensor, content: Tensor) -> Tensor:
    """`style` recoloured so its pixel mean and covariance equal the content's."""
    s, c = style[0].flatten(1), content[0].flatten(1)
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    transform = _matrix_power(torch.cov(c), 0.5) @ _matrix_power(torch.cov(s), -0.5)
    return (transform @ (s - mu_s) + mu_c).reshape(style.shape).clamp(0, 1)


def _grey(luminance: Tensor) -> Tensor:
    return luminance.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def prepare(mode: str | None, content: Tensor, styles: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """The images the optimisation sees under colour-preservation `mode` (None: unchanged)."""
    if mode is None:
        return content, list(styles)
    if mode == "histogram":
        return content, [match_colour(s, content) for s in styles]
    if mode == "luminance":
        y_c = rgb_to_yiq(content)[:, :1]
        matched = []
        for style in styles:
            y_s = rgb_to_yiq(style)[:, :1]
            matched.append(_grey((y_s - y_s.mean()) / y_s.std().clamp_min(1e-6) * y_c.std() + y_c.mean()))
        return _grey(y_c), matched
    raise NSTError(f"colour={mode!r}: choose luminance, histogram or null")


def finish(mode: str | None, image: Tensor, content: Tensor) -> Tensor:
    """The result in colour: for `luminance`, its luminance with the content's chrominance."""
    if mode != "luminance":
        return image
    yiq = rgb_to_yiq(content.to(image))
    yiq[:, :1] = rgb_to_yiq(image)[:, :1]
    return yiq_to_rgb(yiq).clamp(0, 1)
