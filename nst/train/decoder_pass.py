"""One pass of an AdaIN decoder with its encoder, given the statistics AdaIN moves the photo's features to.

`nst stylize` with a decoder, its tiles, an exported decoder and a per-style AdaIN
network (nst/train/styled_decoder.py) all run this pass: the photo padded by
reflection to the encoder's 8 px grid, its relu4_1 features moved to the style's
mean and std, decoded. In tiles, the whole photo's statistics are streamed first
(`streamed_statistics`), so that no tile's colours drift from its neighbours'.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.adain import ENCODER_LAYER, STRIDE
from nst.losses import channel_mean_std

DECODER_CONTEXT = 128  # px of context around an AdaIN decoder's tile: its encoder and decoder look ~100 px away


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
        return self.decode(image, self.features(image), content, style, alpha)

    def decode(self, image: Tensor, features: Tensor, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0
               ) -> Tensor:  # fmt: skip
        """`forward` given the image's `features`: moved to the style's statistics, decoded, cut to the image's size."""
        h, w = image.shape[-2:]
        matched = style[:, 1, :, None, None] * (features - content[:, 0, :, None, None]) / content[:, 1, :, None, None]
        target = alpha * (matched + style[:, 0, :, None, None]) + (1 - alpha) * features
        return self.decoder(target)[..., :h, :w]
