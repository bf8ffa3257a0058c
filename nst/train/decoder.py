"""Training an arbitrary-style network: Huang & Belongie 2017's AdaIN decoder (`network=adain_decoder`).

Each step takes a batch of photo crops and a batch of style crops (nst/train/data.py):

    t = AdaIN(f(c), f(s))          f: the frozen encoder, VGG-19 to relu4_1 (the criterion's own)
    g = decoder(t)
    loss = λ_c ‖f(g) − t‖² + λ_s Σ_l (‖μ(φ_l(g)) − μ(φ_l(s))‖² + ‖σ(φ_l(g)) − σ(φ_l(s))‖²)

The content term is the criterion's, at relu4_1, against t rather than the photo's
features; the style term is the criterion's mean/std statistic, each image against
its own style crop. Differs from the paper: the norms are squared and averaged over
channels (nst/losses.py `mean_std_loss`), as naoto0804/pytorch-AdaIN computes them.
Validation renders each held-out photo in each held-out style.
"""

import torch
from torch import Tensor

from nst.adain import ENCODER_LAYER, adain, transfer
from nst.train.module import StyleNetTraining


class DecoderTraining(StyleNetTraining):
    """Trains the decoder so that it inverts AdaIN'd features into images of any style."""

    conditional = 0  # no style index: the style comes with each image

    def on_fit_start(self) -> None:
        """The encoder on the fast path and the weights; no fixed style targets (every crop brings its own)."""
        self.criterion.prepare([], [], self.fast.encoder(self.criterion.encoder, self.device))

    def forward(self, photos: Tensor, styles: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """The decoder's images of `photos` in the styles of `styles`, one style crop per photo."""
        return self.network(self.encoded(photos, styles)[0])

    @torch.no_grad()
    def encoded(self, photos: Tensor, styles: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """t = AdaIN(f(c), f(s)), the features the decoder must turn into an image, and the style crops' features
        at every style layer: one encoder pass for the photos and one for the styles."""
        encode = self.criterion.encode
        style = encode(styles, {*self.criterion.style_layers, ENCODER_LAYER})
        return adain(encode(photos, [ENCODER_LAYER])[ENCODER_LAYER], style[ENCODER_LAYER]), style

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        photos, styles = batch["photos"], batch["style_images"]
        target, style = self.encoded(photos, styles)
        targets = self.criterion.style_features(styles, style)
        terms = self.criterion(self.network(target), {ENCODER_LAYER: target}, targets)
        return {name: value.mean() for name, value in terms.items()}

    def stylised(self, photo: Tensor) -> list[Tensor]:
        """The held-out photo in each held-out style, at any size (aligned to the encoder's stride)."""
        encode = self.criterion.encode
        return [transfer(self.network, encode, photo, [style.to(photo.device)], [1.0]) for style in self.style_images]

    def judged_against(self) -> list[tuple[list[Tensor], list[float]]]:
        return [([style], [1.0]) for style in self.style_images]
