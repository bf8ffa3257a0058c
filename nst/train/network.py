"""Johnson, Alahi & Fei-Fei 2016's image transformation network, as the authors' later code builds it.

    conv 9x9 (w) -> conv 3x3 stride 2 (2w) -> conv 3x3 stride 2 (4w) -> 5 residual blocks (4w)
    -> upsample x2 + conv 3x3 (2w) -> upsample x2 + conv 3x3 (w) -> conv 9x9 (3)

Every convolution but the last is followed by a normalisation and a ReLU. The later
code (and pytorch/examples `fast_neural_style`) uses reflection padding, instance
normalisation (Ulyanov et al. 2017) and nearest upsampling followed by a convolution,
which avoids the checkerboard artefacts of transposed convolutions. The paper's own
choices are options: `norm=batch`, `upsample=transposed`.

Differs from the paper: no 150·tanh at the output. The network works on RGB in
[0, 1] and outputs the image directly, as pytorch/examples does in 0-255; the
output is clamped to [0, 1] only when an image is saved.
"""

from typing import Literal

from torch import Tensor, nn

from nst.errors import NSTError

Norm = Literal["instance", "batch"]
Upsample = Literal["resize", "transposed"]
NORMS, UPSAMPLES = ("instance", "batch"), ("resize", "transposed")


def _norm(kind: Norm, channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.BatchNorm2d(channels)


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution: the border is continued, not zero-filled."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


class Residual(nn.Module):
    """Two 3x3 convolutions with a normalisation each and a ReLU between, added to the input."""

    def __init__(self, channels: int, norm: Norm):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3), _norm(norm, channels), nn.ReLU(),
            ConvLayer(channels, channels, 3), _norm(norm, channels),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


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
        self, width: int = 32, norm: Norm = "instance", upsample: Upsample = "resize", residual_blocks: int = 5
    ):
        """`width`: channels of the first convolution (32 in the paper, 16 in the authors' later fast models)."""
        super().__init__()
        if norm not in NORMS:
            raise NSTError(f"network.norm={norm!r}: choose one of {', '.join(NORMS)}")
        if upsample not in UPSAMPLES:
            raise NSTError(f"network.upsample={upsample!r}: choose one of {', '.join(UPSAMPLES)}")
        for key, value in (("width", width), ("residual_blocks", residual_blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NSTError(f"network.{key}={value!r} must be an integer >= 1")
        self.settings = {"width": width, "norm": norm, "upsample": upsample, "residual_blocks": residual_blocks}
        w = width
        self.layers = nn.Sequential(
            ConvLayer(3, w, 9), _norm(norm, w), nn.ReLU(),
            ConvLayer(w, 2 * w, 3, stride=2), _norm(norm, 2 * w), nn.ReLU(),
            ConvLayer(2 * w, 4 * w, 3, stride=2), _norm(norm, 4 * w), nn.ReLU(),
            *[Residual(4 * w, norm) for _ in range(residual_blocks)],
            Up(4 * w, 2 * w, upsample), _norm(norm, 2 * w), nn.ReLU(),
            Up(2 * w, w, upsample), _norm(norm, w), nn.ReLU(),
            ConvLayer(w, 3, 9),
        )  # fmt: skip

    def forward(self, photo: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W); a side that is no multiple of 4 is padded by reflection, then cut."""
        h, w = photo.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            photo = nn.functional.pad(photo, (0, pad_w, 0, pad_h), mode="reflect")
        return self.layers(photo)[..., :h, :w]

