"""Johnson, Alahi & Fei-Fei 2016's image transformation network, as the authors' later code builds it.

    conv 9x9 (w) -> conv 3x3 stride 2 (2w) -> conv 3x3 stride 2 (4w) -> 5 residual blocks (4w)
    -> upsample x2 + conv 3x3 (2w) -> upsample x2 + conv 3x3 (w) -> conv 9x9 (3)

Every convolution but the last is followed by a normalisation and a ReLU. The later
code (and pytorch/examples `fast_neural_style`) uses reflection padding, instance
normalisation (Ulyanov et al. 2017) and nearest upsampling followed by a convolution,
which avoids the checkerboard artefacts of transposed convolutions. The paper's own
choices are options: `norm=batch`, `upsample=transposed`.

`norm=conditional_instance` with `styles=N` is Dumoulin, Shlens & Kudlur 2017's
multi-style network: every normalisation keeps one scale and shift per style, and
the image's style picks (or mixes) them; everything else is shared.

Differs from the paper: no 150·tanh at the output. The network works on RGB in
[0, 1] and outputs the image directly, as pytorch/examples does in 0-255; the
output is clamped to [0, 1] only when an image is saved. `output=residual` (not in
the paper) adds the network's output to the photo, its last convolution starting at
zero: the untrained network is the identity, so training starts from the photo and
adds the style, instead of starting from noise and having to learn the photo back.
"""

from typing import Literal

import torch
from torch import Tensor, nn

from nst import settings
from nst.errors import NSTError

Norm = Literal["instance", "batch", "conditional_instance"]
Upsample = Literal["resize", "transposed"]
Output = Literal["direct", "residual"]
NORMS, UPSAMPLES = settings.choices("network.norm"), settings.choices("network.upsample")  # described once
OUTPUTS = settings.choices("network.output")


class ConditionalInstanceNorm(nn.Module):
    """Dumoulin et al. 2017: x̂ = (x − μ(x)) / σ(x), then γ_s x̂ + β_s with the scale and shift of style s.

    `mix` (B, N) weighs the N styles' parameters per image: one-hot picks a style,
    any convex combination mixes them (the paper's interpolation, Fig. 7). A mix
    map (B, N, H, W) weighs them per pixel (spatial control: nst/regions.py), resized
    to each layer by area. γ starts at 1 and β at 0 for every style, as Magenta's code does.
    """

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.scale = nn.Parameter(torch.ones(styles, channels))
        self.shift = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: Tensor, mix: Tensor) -> Tensor:
        if mix.dim() == 4:
            mix = nn.functional.interpolate(mix, size=x.shape[-2:], mode="area")
            scale = torch.einsum("bnhw,nc->bchw", mix, self.scale)
            return self.norm(x) * scale + torch.einsum("bnhw,nc->bchw", mix, self.shift)
        scale, shift = mix @ self.scale, mix @ self.shift
        return self.norm(x) * scale[:, :, None, None] + shift[:, :, None, None]


def _norm(kind: Norm, channels: int, styles: int) -> nn.Module:
    if kind == "conditional_instance":
        return ConditionalInstanceNorm(channels, styles)
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.BatchNorm2d(channels)


def _through(layers: nn.Sequential, x: Tensor, mix: Tensor | None) -> Tensor:
    """`layers` in order, the style mix handed to the layers that take one."""
    for layer in layers:
        x = layer(x, mix) if isinstance(layer, ConditionalInstanceNorm | Residual) else layer(x)
    return x


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution: the border is continued, not zero-filled."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


class Residual(nn.Module):
    """Two 3x3 convolutions with a normalisation each and a ReLU between, added to the input."""

    def __init__(self, channels: int, norm: Norm, styles: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3), _norm(norm, channels, styles), nn.ReLU(),
            ConvLayer(channels, channels, 3), _norm(norm, channels, styles),
        )  # fmt: skip

    def forward(self, x: Tensor, mix: Tensor | None = None) -> Tensor:
        return x + _through(self.body, x, mix)


class Up(nn.Sequential):
    """Twice the size: nearest upsampling then a 3x3 convolution, or (the paper) a transposed convolution."""

    def __init__(self, cin: int, cout: int, upsample: Upsample):
        if upsample == "resize":
            super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(cin, cout, 3))
        else:
            super().__init__(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1))


class TransformNet(nn.Module):
    """A photo in, its stylised version out, the same size (sides multiple of 4; others are cropped back)."""

    def __init__(
        self,
        width: int = 32,
        norm: Norm = "instance",
        upsample: Upsample = "resize",
        residual_blocks: int = 5,
        styles: int = 1,
        output: Output = "direct",
    ):
        """`width`: channels of the first convolution (32 in the paper, 16 in the authors' later fast models);
        `styles`: how many styles a conditional network keeps apart (set from the run's style list); `output`:
        the image itself (direct, the paper) or what is added to the photo (residual)."""
        super().__init__()
        if norm not in NORMS:
            raise NSTError(f"network.norm={norm!r}: choose one of {', '.join(NORMS)}")
        if upsample not in UPSAMPLES:
            raise NSTError(f"network.upsample={upsample!r}: choose one of {', '.join(UPSAMPLES)}")
        if output not in OUTPUTS:
            raise NSTError(f"network.output={output!r}: choose one of {', '.join(OUTPUTS)}")
        for key, value in (("width", width), ("residual_blocks", residual_blocks), ("styles", styles)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NSTError(f"network.{key}={value!r} must be an integer >= 1")
        self.styles = styles if norm == "conditional_instance" else 0  # 0: one style, baked into the weights
        self.settings = {"width": width, "norm": norm, "upsample": upsample, "residual_blocks": residual_blocks}
        if self.styles:
            self.settings["styles"] = styles
        self.residual = output == "residual"
        if self.residual:  # files of direct networks keep the settings they always had
            self.settings["output"] = output
        w = width
        self.layers = nn.Sequential(
            ConvLayer(3, w, 9), _norm(norm, w, styles), nn.ReLU(),
            ConvLayer(w, 2 * w, 3, stride=2), _norm(norm, 2 * w, styles), nn.ReLU(),
            ConvLayer(2 * w, 4 * w, 3, stride=2), _norm(norm, 4 * w, styles), nn.ReLU(),
            *[Residual(4 * w, norm, styles) for _ in range(residual_blocks)],
            Up(4 * w, 2 * w, upsample), _norm(norm, 2 * w, styles), nn.ReLU(),
            Up(2 * w, w, upsample), _norm(norm, w, styles), nn.ReLU(),
            ConvLayer(w, 3, 9),
        )  # fmt: skip
        if self.residual:
            nn.init.zeros_(self.layers[-1][1].weight)
            nn.init.zeros_(self.layers[-1][1].bias)

    def forward(self, photo: Tensor, mix: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W); a side that is no multiple of 4 is padded by reflection, then cut.

        `mix` (B, N): a conditional network's weights over its N styles per image (`style_mix`), or (B, N, H, W)
        per pixel (regions); default style 0.
        """
        h, w = photo.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            photo = nn.functional.pad(photo, (0, pad_w, 0, pad_h), mode="reflect")
            if mix is not None and mix.dim() == 4:  # a mix map (B, N, H, W) covers the padding as its border does
                mix = nn.functional.pad(mix, (0, pad_w, 0, pad_h), mode="replicate")
        return self.run(photo, mix)[..., :h, :w]

    def run(self, photo: Tensor, mix: Tensor | None = None) -> Tensor:
        """The network on a photo whose sides are multiples of 4 (what `forward` and an exported file pad to)."""
        if self.styles and mix is None:
            mix = one_hot(torch.zeros(len(photo), dtype=torch.long, device=photo.device), self.styles)
        out = _through(self.layers, photo, mix)
        return photo + out if self.residual else out


def one_hot(index: Tensor, styles: int) -> Tensor:
    """(B,) style indices -> (B, N) mixes that pick one style each."""
    return nn.functional.one_hot(index, styles).float()
