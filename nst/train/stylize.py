"""Using a trained network: `nst stylize model=RUN_DIR content=PHOTO out=FILE`, and `init=network`'s start image.

One forward pass per photo, at any size (the network is fully convolutional); the
photo is read at `size` px on its long side (default: as it is).
"""

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from nst.adain import encoder, transfer
from nst.errors import NSTError
from nst.images import load_image, open_rgb, save_image
from nst.train.kinds import kind_of
from nst.train.model_file import load_model, style_mix, stylize

USAGE = (
    "usage: nst stylize model=RUN_DIR content=PHOTO out=FILE [size=PX] [device=cpu|cuda] "
    "[style_index=K | style_mix=[W0,W1,...]] [style=IMAGE (an AdaIN decoder)]"
)
MIN_SIDE = 16  # the smallest side a network's two stride-2 convolutions (and AdaIN's encoder) run at
MAX_SIDE = 8192  # a photo's long side the network runs at whole; larger ones would not fit in memory
KEYS = {"model", "content", "out", "size", "device", "style_index", "style_mix", "style"}


class NetworkStart:
    """`init=network`: a trained network's image of the content photo, as the start of an optimisation."""

    def __init__(self, model: str | None = None, style_index: int | None = None, style_mix: list | None = None):
        if not model:
            raise NSTError("init=network needs network.model=RUN_DIR: the directory of an `nst train` run")
        self.network, _ = load_model(model)
        self.mix = style_mix_of(self.network, style_index, style_mix)

    def __call__(self, content: Tensor) -> Tensor:
        return stylize(self.network, content, self.mix).cpu()


def style_mix_of(network: torch.nn.Module, index: object, mix: object) -> list[float] | None:
    """`style_index` / `style_mix` as given on a command line or in a config, checked against the network."""
    if index is not None and (isinstance(index, bool) or not str(index).lstrip("-").isdigit()):
        raise NSTError(f"style_index={index} must be a whole number: a style of the network, from 0")
    weights = None
    if mix is not None:
        items = mix if isinstance(mix, list | tuple) else str(mix).strip("[]").split(",")
        try:
            weights = [float(w) for w in items]
        except (TypeError, ValueError):
            raise NSTError(f"style_mix={mix} must be a list of numbers, e.g. style_mix=[0.5,0.5]") from None
    return style_mix(int(getattr(network, "styles", 0)), None if index is None else int(str(index)), weights)


def main(argv: Sequence[str]) -> int:
    """`nst stylize KEY=VALUE …`: 0 when the image is written, 2 with one line on bad input."""
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv:
        print(f"nst stylize: error: model=, content= and out= are missing: {USAGE}", file=sys.stderr)
        return 2
    try:
        settings = _settings(argv)
        network, info = load_model(settings["model"])
        mix = style_mix_of(network, settings.get("style_index"), settings.get("style_mix"))
        device = torch.device(settings.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        image, seconds = _render(network.to(device), settings, mix, device)
        written = save_image(image, settings["out"])
    except NSTError as exc:
        print(f"nst stylize: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nst stylize: error: out={settings['out']} cannot be written ({exc.strerror or exc}): give a "
              "writable path", file=sys.stderr)  # fmt: skip
        return 2
    height, width = image.shape[-2:]
    names = [Path(s).name for s in ([settings["style"]] if settings.get("style") else info.get("style", []))]
    if mix is not None and len(names) == len(mix):
        names = [f"{w:g} {name}" for w, name in zip(mix, names, strict=True) if w]
    styles = ", ".join(names) or "its style"
    print(f"nst stylize: {written} ({width}x{height} px, {styles}) in {seconds:.3f} s on {device}", file=sys.stderr)
    return 0


def _render(
    network: torch.nn.Module, settings: dict[str, str], mix: list[float] | None, device: torch.device
) -> tuple[Tensor, float]:
    """The network's image of the content photo (read at `size`, default its own) and the seconds of its pass."""
    content = settings["content"]
    size = int(settings["size"]) if settings.get("size") else max(open_rgb(content).size)
    if size > MAX_SIDE:
        raise NSTError(f"content={content} is {size} px on its long side, more than the {MAX_SIDE} px a network "
                       f"stylises whole: give size={MAX_SIDE} or less")  # fmt: skip
    photo = load_image(content, size)
    if min(photo.shape[-2:]) < MIN_SIDE:
        raise NSTError(f"content={content} gives {photo.shape[-1]}x{photo.shape[-2]} px, smaller than the "
                       f"{MIN_SIDE} px a network's downsampling needs: give a larger photo or size=")  # fmt: skip
    style = _style_image(network, settings.get("style"), size)  # read before the timed pass
    started = time.perf_counter()
    image = _decoded(network, photo, style) if style is not None else stylize(network, photo, mix)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return image, time.perf_counter() - started


def _style_image(network: torch.nn.Module, style: str | None, size: int) -> Tensor | None:
    """The `style=` image an any-style network needs (read at the photo's size); refused for one of fixed styles."""
    if not kind_of(network).any_style:
        if style:
            raise NSTError("style= is for an AdaIN decoder; this network has its style built in: drop style=")
        return None
    if not style:
        raise NSTError("this model is an AdaIN decoder: give the style image with style=IMAGE")
    return load_image(style, size)


def _decoded(decoder: torch.nn.Module, photo: Tensor, style: Tensor) -> Tensor:
    """An AdaIN decoder's image of `photo` in the style of `style`."""
    device = next(decoder.parameters()).device
    encode = encoder().to(device)
    with torch.no_grad():
        image = transfer(decoder, encode, photo.to(device), [style.to(device)], [1.0])
    return image.clamp(0, 1)


def _settings(argv: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE arguments: model, content and out required, nothing unknown."""
    pairs = [a.split("=", 1) for a in argv]
    if any(len(p) != 2 for p in pairs):
        raise NSTError(f"arguments are KEY=VALUE: {USAGE}")
    settings = {k: v for k, v in pairs}
    unknown = sorted(set(settings) - KEYS)
    if unknown:
        raise NSTError(f"{unknown[0]} is not a setting of nst stylize: {USAGE}")
    missing = [k for k in ("model", "content", "out") if not settings.get(k)]
    if missing:
        raise NSTError(f"{missing[0]}= is missing: {USAGE}")
    if settings.get("size") and not (settings["size"].isdigit() and MIN_SIDE <= int(settings["size"]) <= MAX_SIDE):
        raise NSTError(f"size={settings['size']} must be a whole number of pixels from {MIN_SIDE} to {MAX_SIDE}")
    out = Path(settings["out"])
    if out.is_dir():
        raise NSTError(f"out={out} is a directory: give the file to write, e.g. out={out / 'styled.png'}")
    if not out.parent.is_dir():
        raise NSTError(f"out={out}: its folder {out.parent} does not exist: create it or give another path")
    if settings.get("device") not in (None, "cpu", "cuda"):
        raise NSTError(f"device={settings['device']}: choose cpu or cuda")
    if settings.get("device") == "cuda" and not torch.cuda.is_available():
        raise NSTError("device=cuda: no CUDA device here; leave device out or give device=cpu")
    return settings
