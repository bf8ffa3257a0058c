"""`nst export model=RUN_DIR out=FILE.onnx|FILE.pt`: a trained network for use without nst.

ONNX (opset 17, checked with onnxruntime in the tests) or TorchScript (`.pt`,
`torch.jit.load`). Height, width and batch are dynamic; the input is RGB in [0, 1],
(B, 3, H, W) float32, named `photo`; a multi-style network takes `mix` (B, N) too,
its weights over its N styles; the output, `image`, is clamped to [0, 1] as
`nst stylize` clamps it. An AdaIN decoder exports with its VGG encoder: inputs
`photo`, `style` (B, 3, H', W', any size) and `alpha` (a scalar in [0, 1]), the pass
`nst stylize` runs (nst/train/decoder_pass.py); a per-style AdaIN network exports with
its encoder and its painting's statistics: input `photo` alone.
"""

import io
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.adain import encoder
from nst.errors import NSTError
from nst.outputs import atomic_write
from nst.train.decoder_pass import DecoderPass
from nst.train.kinds import kind_of
from nst.train.model_file import load_model
from nst.train.styled_decoder import StyledDecoder

USAGE = "usage: nst export model=RUN_DIR out=FILE.onnx|FILE.pt"
OPSET = 17


class Exported(nn.Module):
    """The network as `nst stylize` runs it, with its padding to a multiple of 4 traced as shape arithmetic (a
    Python branch would freeze the example's size into the file)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, photo: Tensor, mix: Tensor | None = None) -> Tensor:
        h, w = photo.shape[-2:]
        padded = nn.functional.pad(photo, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        image = self.network.run(padded, mix) if mix is not None else self.network.run(padded)
        return image[..., :h, :w].clamp(0, 1)


class ExportedDecoder(nn.Module):
    """An AdaIN decoder with its encoder: the photo in the style of `style`, features blended by `alpha`."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.step = DecoderPass(decoder, encoder())

    def forward(self, photo: Tensor, style: Tensor, alpha: Tensor) -> Tensor:
        return self.step(photo, self.step.statistics(photo), self.step.statistics(style), alpha).clamp(0, 1)


class ExportedStyledDecoder(nn.Module):
    """A per-style AdaIN network (nst/train/styled_decoder.py) with its encoder: the photo in its kept style."""

    def __init__(self, network: StyledDecoder):
        super().__init__()
        self.step = DecoderPass(network.decoder, encoder())
        self.register_buffer("style", network.style.detach().clone())

    def forward(self, photo: Tensor) -> Tensor:
        style = self.style.expand(len(photo), -1, -1)
        return self.step(photo, self.step.statistics(photo), style).clamp(0, 1)


def export(network: nn.Module, out: Path) -> Path:
    """Write `network` as ONNX or TorchScript, by `out`'s suffix."""
    photo = torch.rand(1, 3, 64, 64)
    if kind_of(network).any_style:
        module: nn.Module = ExportedDecoder(network.eval()).eval()
        inputs: tuple[Tensor, ...] = (photo, torch.rand(1, 3, 48, 64), torch.tensor(1.0))
        names = ["photo", "style", "alpha"]
    elif isinstance(network, StyledDecoder):
        module, inputs, names = ExportedStyledDecoder(network.eval()).eval(), (photo,), ["photo"]
    else:
        styles = int(getattr(network, "styles", 0))
        module = Exported(network.eval()).eval()
        inputs = (photo, torch.full((1, styles), 1.0 / styles)) if styles else (photo,)
        names = ["photo", "mix"][: len(inputs)]
    with warnings.catch_warnings():  # the exporters' notes on constant folding and deprecation: not the user's
        warnings.simplefilter("ignore")
        return atomic_write(out, _exported(module, inputs, names, out))


def _exported(module: nn.Module, inputs: tuple[Tensor, ...], names: list[str], out: Path) -> bytes:
    """The file's bytes: TorchScript for .pt, ONNX for .onnx."""
    if out.suffix == ".pt":
        with torch.no_grad():
            traced = torch.jit.trace(module, inputs)
        buffer = _saved(lambda f: torch.jit.save(traced, f))
    elif out.suffix == ".onnx":
        dynamic = {"photo": {0: "batch", 2: "height", 3: "width"}, "image": {0: "batch", 2: "height", 3: "width"},
                   "mix": {0: "batch"}, "style": {0: "batch", 2: "style_height", 3: "style_width"}}  # fmt: skip
        buffer = _saved(lambda f: torch.onnx.export(
            module, inputs, f, input_names=names, output_names=["image"], opset_version=OPSET,
            dynamic_axes={k: v for k, v in dynamic.items() if k in (*names, "image")}, dynamo=False,
        ))  # fmt: skip
    else:
        raise NSTError(f"out={out}: give a .onnx (ONNX) or .pt (TorchScript) file")
    return buffer


def _saved(write: Callable[[io.BytesIO], object]) -> bytes:
    """What `write` writes to a file object, as bytes (written to disk atomically after)."""
    buffer = io.BytesIO()
    write(buffer)
    return buffer.getvalue()


def main(argv: Sequence[str]) -> int:
    """`nst export model=… out=…`: 0 when the file is written, 2 with one line on bad input."""
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    settings = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in ("model", "out")]
    try:
        if unknown or not settings.get("model") or not settings.get("out"):
            raise NSTError(f"model= and out= are needed, nothing else: {USAGE}")
        out = Path(settings["out"])
        if not out.parent.is_dir():
            raise NSTError(f"out={out}: its folder {out.parent} does not exist: create it or give another path")
        network, _ = load_model(settings["model"])
        written = export(network, out)
    except NSTError as exc:
        print(f"nst export: error: {exc}", file=sys.stderr)
        return 2
    extra = ", mix (B, N)" if getattr(network, "styles", 0) else ""
    extra = ", style (B, 3, H', W'), alpha ()" if kind_of(network).any_style else extra
    print(f"nst export: {written} (inputs: photo (B, 3, H, W) in [0, 1]{extra}; output: image)", file=sys.stderr)
    return 0
